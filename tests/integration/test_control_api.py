"""The control API (aiohttp) in front of a running engine on the fake clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from scaler.domain.types import NS_PER_S, Mode, TradingState
from scaler.service.control import build_control_app
from tests.integration.conftest import START_MARK, Rig
from tests.support import eventually

pytestmark = pytest.mark.integration

TOKEN = "tok-Secr3t-9f2b7c1d-do-not-echo"
OVERRIDE_MAX_S = 3_600.0
BODY_TIMEOUT_S = 5.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INSTRUMENT_FIELDS = {
    "mark_price",
    "funding_predicted",
    "funding_ema",
    "funding_venue_predicted",
    "target_usd",
    "recommended_usd",
    "actual_usd",
    "equity_coin",
    "margin_ratio",
    "liquidation_price",
    "liquidation_distance",
    "reasons",
}
MUTATIONS: list[tuple[str, dict[str, Any] | None]] = [
    ("/mode", {"mode": "recommend"}),
    ("/halt", None),
    ("/resume", None),
    ("/override", {"duration_s": 60}),
]
BAD_TOKENS = {
    "none": {},
    "wrong": {"Authorization": "Bearer not-the-token"},
    "no_scheme": {"Authorization": TOKEN},
    "prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "longer": {"Authorization": f"Bearer {TOKEN}x"},
    "basic": {"Authorization": f"Basic {TOKEN}"},
}


class Api:
    """A test client that checks every answer for the token before handing it back."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
            kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
        response: ClientResponse = await self.client.request(method, path, **kwargs)
        text = await response.text()
        assert TOKEN not in text, f"{method} {path} echoed the token"
        assert all(TOKEN not in value for value in response.headers.values())
        body = await response.json() if text else None
        return response.status, body


@pytest.fixture
async def api(rig: Rig) -> AsyncIterator[Api]:
    """The control app around the rig's running engine."""
    app = build_control_app(rig.engine, TOKEN, OVERRIDE_MAX_S, body_timeout_s=BODY_TIMEOUT_S)
    async with TestClient(TestServer(app)) as client:
        yield Api(client)


async def test_healthz_when_running_then_200(api: Api) -> None:
    """GET /healthz answers 200 while the process runs, no token needed."""
    assert await api.call("GET", "/healthz") == (200, {"status": "ok"})


async def test_readyz_when_no_decision_yet_then_503_and_200_after_first(api: Api, rig: Rig) -> None:
    """GET /readyz is 503 after reconciliation until the first decision, then 200."""
    assert rig.engine.ready
    assert await api.call("GET", "/readyz") == (503, {"ready": False})
    await rig.push()
    assert await api.call("GET", "/readyz") == (200, {"ready": True})


async def test_status_when_deciding_then_reports_mode_state_and_instrument_values(
    api: Api, rig: Rig
) -> None:
    """GET /status carries the mode, trading state and every per-instrument decision value."""
    status, before = await api.call("GET", "/status")
    assert status == 200
    assert before["trading_state"] == "frozen"  # nothing decided yet: fail closed
    last = await rig.converge()

    status, body = await api.call("GET", "/status")

    assert status == 200
    assert body["mode"] == "auto"
    assert body["trading_state"] == "active"
    (instrument,) = body["instruments"]
    assert INSTRUMENT_FIELDS.issubset(instrument)
    assert instrument["mark_price"] == START_MARK
    assert instrument["funding_predicted"] == pytest.approx(0.0001)
    assert instrument["funding_ema"] == pytest.approx(0.0001)  # a constant rate: EMA = rate
    assert instrument["funding_venue_predicted"] is None  # the paper venue publishes none
    assert instrument["target_usd"] == last.target_usd
    assert instrument["recommended_usd"] == last.recommended_usd
    assert instrument["actual_usd"] == rig.position_usd() > 0.0
    assert instrument["equity_coin"] == pytest.approx(rig.exchange.equity_coin())
    assert instrument["margin_ratio"] > 1.0
    assert 0.0 < instrument["liquidation_price"] < START_MARK
    assert 0.0 < instrument["liquidation_distance"] < 1.0
    assert instrument["reasons"] == list(last.reasons)

    await rig.engine.halt()
    await eventually(lambda: rig.last.trading_state is TradingState.HALTED)
    status, halted = await api.call("GET", "/status")
    assert halted["trading_state"] == "halted"
    assert halted["instruments"][0]["reasons"] == ["operator_halt"]


@pytest.mark.parametrize("bad", sorted(BAD_TOKENS))
@pytest.mark.parametrize(("path", "payload"), MUTATIONS, ids=[p for p, _ in MUTATIONS])
async def test_post_when_token_missing_or_wrong_then_401_and_nothing_changes(
    api: Api, rig: Rig, path: str, payload: dict[str, Any] | None, bad: str
) -> None:
    """Every mutating route answers 401 without the right bearer token and changes nothing."""
    await rig.push()
    before = rig.runtime.risk

    status, body = await api.call("POST", path, json=payload, headers=BAD_TOKENS[bad])

    assert (status, body) == (401, {"error": "unauthorized"})
    assert rig.engine.mode is Mode.AUTO
    assert rig.runtime.risk.halted is before.halted is False
    assert rig.runtime.risk.override_until_ns is None
    assert rig.journal.load_state("mode") is None


async def test_post_when_token_right_then_each_route_acts(api: Api, rig: Rig) -> None:
    """With the token, /mode, /halt, /resume and /override change the engine and persist."""
    await rig.push()

    assert await api.call("POST", "/mode", json={"mode": "recommend"}, headers=AUTH) == (
        200,
        {"mode": "recommend"},
    )
    assert rig.engine.mode is Mode.RECOMMEND
    assert rig.journal.load_state("mode") == {"mode": "recommend"}
    assert await api.call("POST", "/mode", json={"mode": "auto"}, headers=AUTH) == (
        200,
        {"mode": "auto"},
    )
    assert rig.journal.load_state("mode") == {"mode": "auto"}
    assert (await api.call("GET", "/status"))[1]["mode"] == "auto"

    assert await api.call("POST", "/halt", headers=AUTH) == (200, {"halted": True})
    halted = rig.runtime.risk
    assert halted.halted
    await eventually(lambda: rig.last.trading_state is TradingState.HALTED)

    assert await api.call("POST", "/resume", headers=AUTH) == (200, {"halted": False})
    resumed = rig.runtime.risk
    assert not resumed.halted
    await eventually(lambda: rig.last.trading_state is TradingState.ACTIVE)

    now = rig.clock.now_ns()
    status, body = await api.call("POST", "/override", json={"duration_s": 600}, headers=AUTH)
    assert status == 200
    assert body == {"override_until_ns": now + 600 * NS_PER_S}
    assert rig.runtime.risk.override_until_ns == now + 600 * NS_PER_S
    status, body = await api.call("POST", "/override", headers=AUTH)  # the default, 600 s
    assert status == 200
    assert body == {"override_until_ns": now + 600 * NS_PER_S}


@pytest.mark.parametrize(
    ("payload", "raw"),
    [
        ({"mode": "manual"}, None),
        ({"mode": "AUTO"}, None),
        ({"mode": ""}, None),
        ({"mode": 1}, None),
        ({"mode": None}, None),
        ({}, None),
        (["auto"], None),
        (None, "not json"),
        (None, None),
    ],
    ids=["unknown", "upper", "empty", "number", "null", "missing", "list", "garbage", "no-body"],
)
async def test_mode_when_value_bad_then_400_and_mode_unchanged(
    api: Api, rig: Rig, payload: object, raw: str | None
) -> None:
    """POST /mode with anything but "auto" or "recommend" is a 400 and changes nothing."""
    status, body = await api.call("POST", "/mode", json=payload, data=raw, headers=AUTH)
    assert status == 400
    assert "mode" in body["error"]
    assert rig.engine.mode is Mode.AUTO
    assert rig.journal.load_state("mode") is None


@pytest.mark.parametrize(
    "raw",
    [
        str(OVERRIDE_MAX_S + 1),
        "1e9",
        "0",
        "-60",
        '"600"',
        "null",
        "NaN",
        "Infinity",
        "true",
    ],
)
async def test_override_when_duration_out_of_range_then_400_and_no_override(
    api: Api, rig: Rig, raw: str
) -> None:
    """POST /override outside (0, override_max_s] seconds, or not a number, is a 400."""
    await rig.push()
    status, body = await api.call(
        "POST", "/override", data=f'{{"duration_s": {raw}}}', headers=AUTH
    )
    assert status == 400
    assert "duration_s" in body["error"]
    assert rig.runtime.risk.override_until_ns is None


async def test_override_when_duration_is_the_max_then_accepted(api: Api, rig: Rig) -> None:
    """POST /override at exactly override_max_s is accepted."""
    now = rig.clock.now_ns()
    status, body = await api.call(
        "POST", "/override", json={"duration_s": OVERRIDE_MAX_S}, headers=AUTH
    )
    assert status == 200
    assert body == {"override_until_ns": now + int(OVERRIDE_MAX_S * NS_PER_S)}


# ------------------------------------------------------------------ strict bodies


def _nothing_applied(rig: Rig) -> None:
    assert rig.engine.mode is Mode.AUTO
    assert rig.journal.load_state("mode") is None
    assert not rig.runtime.risk.halted
    assert rig.runtime.risk.override_until_ns is None


UNREADABLE_BODIES: dict[str, tuple[bytes, str]] = {
    "not-json": (b"not json", "body is not JSON"),
    "array": (b"[60]", "must be a JSON object, not an array"),
    "string": (b'"60"', "must be a JSON object, not a string"),
    "number": (b"60", "must be a JSON object, not a number"),
    "null": (b"null", "must be a JSON object, not null"),
    "not-utf8": (b"\xff\xfe", "not UTF-8"),
    "latin1-in-object": (b'{"duration_s": 60, "note": "\xe9"}', "not UTF-8"),
    "trailing-garbage": (b'{"duration_s": 60} x', "body is not JSON"),
    "nan-literal": (b'{"duration_s": NaN}', "NaN is not a JSON number"),
    "duplicate-key": (b'{"duration_s": 60, "duration_s": 3000}', "'duration_s' appears twice"),
    "deeply-nested": (b"[" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE_BODIES))
@pytest.mark.parametrize("path", ["/override", "/mode", "/halt", "/resume"])
async def test_post_when_body_unreadable_then_400_naming_the_problem_and_nothing_applied(
    api: Api, rig: Rig, path: str, case: str
) -> None:
    """A body that is not a UTF-8 JSON object is a 400 saying why, never the defaults."""
    await rig.push()
    raw, problem = UNREADABLE_BODIES[case]

    status, body = await api.call("POST", path, data=raw, headers=AUTH)

    assert status == 400
    assert problem in body["error"]
    _nothing_applied(rig)


@pytest.mark.parametrize(
    ("path", "payload", "problem"),
    [
        ("/override", {"duration": 60}, "unknown key 'duration'"),
        ("/override", {"duration_s": 60, "force": True}, "unknown key 'force'"),
        ("/mode", {"mode": "recommend", "until": 5}, "unknown key 'until'"),
        ("/halt", {"reason": "manual"}, "unknown key 'reason'"),
        ("/resume", {"now": True}, "unknown key 'now'"),
        ("/halt", {"x" * 500: 1}, "unknown key 'xxxx"),
    ],
    ids=["override-typo", "override-extra", "mode-extra", "halt-key", "resume-key", "long-key"],
)
async def test_post_when_body_has_an_unknown_key_then_400_naming_it_and_nothing_applied(
    api: Api, rig: Rig, path: str, payload: dict[str, Any], problem: str
) -> None:
    """A key the endpoint does not declare is a 400 naming it (cut short), nothing applied."""
    await rig.push()

    status, body = await api.call("POST", path, json=payload, headers=AUTH)

    assert status == 400
    assert problem in body["error"]
    assert len(body["error"]) < 200
    _nothing_applied(rig)


async def test_override_when_body_is_too_large_then_413_and_no_override(api: Api, rig: Rig) -> None:
    """A body above the size cap is refused with a JSON 413 before it is parsed."""
    raw = b'{"duration_s": 60, "pad": "' + b"x" * 200_000 + b'"}'
    status, body = await api.call("POST", "/override", data=raw, headers=AUTH)
    assert status == 413
    assert "body larger than" in body["error"]
    _nothing_applied(rig)


async def test_override_when_body_is_empty_or_an_empty_object_then_the_default_applies(
    api: Api, rig: Rig
) -> None:
    """No body and ``{}`` both stand for "every key at its default" (600 s)."""
    now = rig.clock.now_ns()
    for raw in (b"", b"{}", b" { } "):
        status, body = await api.call("POST", "/override", data=raw, headers=AUTH)
        assert (status, body) == (200, {"override_until_ns": now + 600 * NS_PER_S})


# ------------------------------------------------------------------ raw bytes on the wire


async def _exchange(port: int, request: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``request`` as it is; the answer's head and its ``Content-Length`` body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            return head + await reader.readexactly(length)
    finally:
        writer.close()


def _post_bytes(path: str, authorization: bytes, body: bytes = b"{}") -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: " + authorization + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff\xfe", b"Bearer " + TOKEN.encode() + b"\xff", b"\xc3\x28"],
    ids=["not-utf8", "token-then-bad-byte", "invalid-sequence"],
)
async def test_post_when_authorization_is_not_utf8_then_401_and_no_server_error(
    api: Api, rig: Rig, caplog: pytest.LogCaptureFixture, authorization: bytes
) -> None:
    """Bytes that are not UTF-8 in ``Authorization`` are a 401, with nothing logged as an error."""
    port = api.client.server.port
    assert port is not None

    answer = await _exchange(port, _post_bytes("/halt", authorization))

    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b'{"error": "unauthorized"}' in answer
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not rig.runtime.risk.halted


async def test_post_when_body_never_completes_then_408_and_nothing_applied(rig: Rig) -> None:
    """A body announced but not sent within the body timeout is a 408 (and ``Connection:
    close``), not a request held open for as long as the client likes."""
    app = build_control_app(rig.engine, TOKEN, OVERRIDE_MAX_S, body_timeout_s=0.05)
    async with TestClient(TestServer(app)) as client:
        port = client.server.port
        assert port is not None
        request = _post_bytes("/override", f"Bearer {TOKEN}".encode(), b'{"duration_s": 60}')

        answer = await _exchange(port, request[:-5])

    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"body not received within 0.05 s" in answer
    assert b"connection: close" in answer.lower()
    assert rig.runtime.risk.override_until_ns is None
