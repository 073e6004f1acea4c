"""The control API (aiohttp), bound to 127.0.0.1 by default.

=========  ===========  =====  ==================================================================
method     path         auth   what it does
=========  ===========  =====  ==================================================================
GET        /healthz     no     200 while the process runs
GET        /readyz      no     200 once reconciled with the venue and deciding, else 503
GET        /status      no     mode, trading state and per-instrument decision values (JSON)
POST       /mode        yes    ``{"mode": "auto" | "recommend"}``
POST       /halt        yes    HALTED until resumed; own resting orders cancelled
POST       /resume      yes    leave HALTED (and clear a breaker; accept an unconfirmed jump)
POST       /override    yes    ``{"duration_s": 600}``: proceed on the last known funding rate
=========  ===========  =====  ==================================================================

Mutating calls need ``Authorization: Bearer <token>`` and answer 401 without it. The token is
compared in constant time and never echoed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from scaler.domain.types import Mode
from scaler.service.engine import Engine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


def build_control_app(engine: Engine, token: str, override_max_s: float) -> web.Application:
    """The aiohttp application; ``token`` guards every mutating route."""

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "GET":
            supplied = request.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            if not hmac.compare_digest(supplied.encode(), expected.encode()):
                return _json({"error": "unauthorized"}, status=401)
        return await handler(request)

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = engine.ready and any(r.last is not None for r in engine.runtimes.values())
        return _json({"ready": ready}, status=200 if ready else 503)

    async def status(_: web.Request) -> web.Response:
        return _json(engine.status())

    async def set_mode(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            mode = Mode(str(body.get("mode", "")))
        except ValueError:
            return _json({"error": "mode must be 'auto' or 'recommend'"}, status=400)
        await engine.set_mode(mode)
        return _json({"mode": engine.mode.value})

    async def halt(_: web.Request) -> web.Response:
        await engine.halt()
        return _json({"halted": True})

    async def resume(_: web.Request) -> web.Response:
        engine.resume()
        return _json({"halted": False})

    async def override(request: web.Request) -> web.Response:
        body = await _body(request)
        duration = body.get("duration_s", 600)
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 < duration <= override_max_s
        ):
            return _json({"error": f"duration_s must be in (0, {override_max_s:g}]"}, status=400)
        until_ns = engine.override_funding(float(duration))
        return _json({"override_until_ns": until_ns})

    app = web.Application(middlewares=[require_token])
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/status", status),
            web.post("/mode", set_mode),
            web.post("/halt", halt),
            web.post("/resume", resume),
            web.post("/override", override),
        ]
    )
    return app


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
