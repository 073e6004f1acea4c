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

Mutating calls need ``Authorization: Bearer <token>`` and answer 401 without it (a header that is
not UTF-8 included). The token is compared in constant time and never echoed. Each mutating route
declares its body below (:class:`ModeBody`, :class:`OverrideBody`, :class:`NoBody`); a body that
is unreadable, not an object, or has an unknown key, a wrong type or an out-of-range value is a
400 naming the problem, and nothing is applied (see :mod:`scaler.service.request_body`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from scaler.domain.types import Mode
from scaler.service.engine import Engine
from scaler.service.request_body import MAX_BODY_BYTES, Body, read_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BodyT = TypeVar("BodyT", bound=Body)
DEFAULT_OVERRIDE_S = 600.0


@dataclass(frozen=True, slots=True)
class BodyBounds:
    """Bounds of request bodies that come from the settings (the validators' context)."""

    override_max_s: float


class NoBody(Body):
    """``POST /halt`` and ``POST /resume``: no key (an empty body or ``{}``)."""


class ModeBody(Body):
    """``POST /mode``."""

    mode: Mode


class OverrideBody(Body):
    """``POST /override``: seconds to proceed on the last known funding rate."""

    duration_s: Annotated[
        float, Field(strict=True, gt=0, allow_inf_nan=False, validate_default=True)
    ] = DEFAULT_OVERRIDE_S

    @field_validator("duration_s")
    @classmethod
    def _at_most_the_configured_maximum(cls, value: float, info: ValidationInfo) -> float:
        bounds = info.context
        if not isinstance(bounds, BodyBounds):
            raise TypeError("OverrideBody is validated with the BodyBounds of the settings")
        if value > bounds.override_max_s:
            raise PydanticCustomError(
                "too_long",
                "must be at most {maximum} s (risk.override_max_s)",
                {"maximum": f"{bounds.override_max_s:g}"},
            )
        return value


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


def build_control_app(
    engine: Engine, token: str, override_max_s: float, body_timeout_s: float
) -> web.Application:
    """The aiohttp application; ``token`` guards every mutating route, and a request body must
    arrive within ``body_timeout_s`` of its headers."""
    expected = f"Bearer {token}".encode()
    bounds = BodyBounds(override_max_s=override_max_s)

    async def body(request: web.Request, schema: type[BodyT]) -> BodyT:
        return await read_body(request, schema, timeout_s=body_timeout_s, context=bounds)

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "GET":
            supplied = _header_bytes(request.headers.get("Authorization", ""))
            if not hmac.compare_digest(supplied, expected):
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
        await engine.set_mode((await body(request, ModeBody)).mode)
        return _json({"mode": engine.mode.value})

    async def halt(request: web.Request) -> web.Response:
        await body(request, NoBody)
        await engine.halt()
        return _json({"halted": True})

    async def resume(request: web.Request) -> web.Response:
        await body(request, NoBody)
        engine.resume()
        return _json({"halted": False})

    async def override(request: web.Request) -> web.Response:
        until_ns = engine.override_funding((await body(request, OverrideBody)).duration_s)
        return _json({"override_until_ns": until_ns})

    app = web.Application(middlewares=[require_token], client_max_size=MAX_BODY_BYTES)
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


def _header_bytes(value: str) -> bytes:
    """A header as the bytes the client sent: aiohttp keeps bytes that are not UTF-8 as
    surrogate escapes, which ``str.encode()`` refuses (a 500 where a 401 belongs)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b""
