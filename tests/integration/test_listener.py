"""The HTTP listener both servers use: bounded connections, header timeout, accept errors, and
the metrics endpoint it serves (real sockets on free loopback ports)."""

from __future__ import annotations

import asyncio
import errno
import gzip
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from scaler.clock import ManualClock, WallClock
from scaler.observability.exposition import metrics_app
from scaler.service.control import build_control_app
from scaler.service.listener import AcceptErrorLog, Listener, ListenerLimits
from tests.integration.conftest import Rig
from tests.support import eventually

pytestmark = pytest.mark.integration

TOKEN = "listener-test-token-0123456789"
HALF_OPEN_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # never finished
LIMIT = 8
ATTACKERS = 5 * LIMIT

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def serving(
    app: web.Application, max_connections: int = LIMIT, header_timeout_s: float = 30.0
) -> AsyncIterator[Listener]:
    """``app`` behind a started listener on a free loopback port; closed afterwards."""
    listener = Listener(
        "test",
        app,
        "127.0.0.1",
        0,
        ListenerLimits(max_connections, header_timeout_s),
        WallClock(),
    )
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


async def connect(listener: Listener, first_bytes: bytes = b"") -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.ports[0])
    if first_bytes:
        writer.write(first_bytes)
        await writer.drain()
    return reader, writer


async def closed_by_server(connection: Connection, timeout_s: float = 5.0) -> bool:
    """True once the server has closed ``connection`` (EOF or reset), within ``timeout_s``."""
    reader, _ = connection
    try:
        async with asyncio.timeout(timeout_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def get(listener: Listener, path: str, **headers: str) -> tuple[int, bytes, str]:
    url = f"http://127.0.0.1:{listener.ports[0]}{path}"
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
        session.get(url, headers={"Accept-Encoding": "identity", **headers}) as response,
    ):
        return response.status, await response.read(), response.headers.get("Content-Type", "")


def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


AppFactory = Callable[[Rig], web.Application]
APPS: dict[str, tuple[AppFactory, str]] = {
    "control-api": (lambda rig: build_control_app(rig.engine, TOKEN, 600.0, 5.0), "/healthz"),
    "metrics": (lambda rig: metrics_app(rig.metrics.registry), "/metrics"),
}


@pytest.mark.parametrize("server", sorted(APPS))
async def test_listener_when_idle_connections_exceed_the_limit_then_it_answers_on_no_new_thread(
    rig: Rig, server: str
) -> None:
    """Five times the limit of half-open connections: the server still answers, holds at most
    the limit, and starts no thread (the old metrics server spent one per connection)."""
    make_app, path = APPS[server]
    async with serving(make_app(rig)) as listener:
        threads_before = threading.active_count()
        attackers = [await connect(listener, HALF_OPEN_HEAD) for _ in range(ATTACKERS)]
        try:
            status, _, _ = await get(listener, path)

            assert status == 200
            assert listener.open_connections <= LIMIT
            assert threading.active_count() == threads_before
            for oldest in attackers[: ATTACKERS - LIMIT]:  # each made room for a newer one
                assert await closed_by_server(oldest)
        finally:
            close_all(attackers)


@pytest.mark.parametrize(
    "first_bytes", [b"", HALF_OPEN_HEAD], ids=["silent", "head-never-finished"]
)
async def test_listener_when_no_complete_head_arrives_then_the_connection_closes_after_the_timeout(
    rig: Rig, first_bytes: bytes
) -> None:
    """A connection that never completes its request head is closed by the server."""
    async with serving(metrics_app(rig.metrics.registry), header_timeout_s=0.2) as listener:
        connection = await connect(listener, first_bytes)
        try:
            assert await closed_by_server(connection)
            await eventually(lambda: listener.open_connections == 0, message="forgotten")
        finally:
            close_all([connection])


async def test_listener_when_a_keep_alive_connection_idles_then_it_closes_after_the_timeout(
    rig: Rig,
) -> None:
    """After an answer, a kept-alive connection has the header timeout for its next request."""
    async with serving(metrics_app(rig.metrics.registry), header_timeout_s=0.2) as listener:
        connection = await connect(listener, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            head = await asyncio.wait_for(connection[0].readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert await closed_by_server(connection)
        finally:
            close_all([connection])


def blocking_app(entered: asyncio.Event, release: asyncio.Event) -> web.Application:
    """``GET /block`` sets ``entered``, then answers once ``release`` is set."""

    async def block(_: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/block", block)
    return app


async def test_listener_when_full_then_the_oldest_idle_connection_goes_and_a_busy_one_stays() -> (
    None
):
    """At the limit, a new connection replaces the oldest idle one, never one mid-request."""
    entered, release = asyncio.Event(), asyncio.Event()
    app = blocking_app(entered, release)
    async with serving(app, max_connections=2) as listener:
        busy = await connect(listener, b"GET /block HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.wait_for(entered.wait(), 5)
        idle = await connect(listener)
        await eventually(lambda: listener.open_connections == 2, message="idle accepted")
        newcomer = await connect(listener)
        try:
            assert await closed_by_server(idle)
            release.set()
            answer = await asyncio.wait_for(busy[0].readuntil(b"done"), 5)
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert not await closed_by_server(newcomer, timeout_s=0.1)
        finally:
            close_all([busy, idle, newcomer])


async def test_listener_when_every_connection_is_busy_then_a_new_one_is_closed_at_once() -> None:
    """With every connection handling a request, a connection beyond the limit is refused."""
    entered, release = asyncio.Event(), asyncio.Event()
    app = blocking_app(entered, release)
    async with serving(app, max_connections=1) as listener:
        busy = await connect(listener, b"GET /block HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.wait_for(entered.wait(), 5)
        refused = await connect(listener)
        try:
            assert await closed_by_server(refused)
            release.set()
            assert (await asyncio.wait_for(busy[0].readuntil(b"done"), 5)).startswith(b"HTTP")
        finally:
            close_all([busy, refused])


def test_accept_error_log_when_errors_repeat_then_one_event_per_interval_with_the_count() -> None:
    """A storm of ``EMFILE`` is one structured event per interval, counting the unlogged ones."""
    clock = ManualClock()
    errors = AcceptErrorLog("api", clock, interval_s=30.0)
    emfile = OSError(errno.EMFILE, "Too many open files")
    with structlog.testing.capture_logs() as events:
        for _ in range(1_000):
            errors.report(emfile)
        clock.advance(29.9)
        errors.report(emfile)
        clock.advance(0.1)
        errors.report(emfile)

    assert [(e["event"], e["server"], e["errno"], e["unlogged_since_last"]) for e in events] == [
        ("http_accept_failed", "api", errno.EMFILE, 0),
        ("http_accept_failed", "api", errno.EMFILE, 1_000),
    ]
    assert events[0]["error"] == "Too many open files"


# ------------------------------------------------------------------ the metrics endpoint


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry with two counters, one incremented."""
    registry = CollectorRegistry()
    Counter("scaler_things", "Things.", registry=registry).inc(3)
    Counter("scaler_others", "Others.", registry=registry)
    return registry


def samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


async def test_metrics_app_serves_the_text_format_on_the_metrics_path(
    registry: CollectorRegistry,
) -> None:
    """``GET /metrics`` is the Prometheus text format with its content type; other paths 404."""
    async with serving(metrics_app(registry)) as listener:
        status, body, content_type = await get(listener, "/metrics")
        missing, _, _ = await get(listener, "/")

    assert (status, content_type) == (200, CONTENT_TYPE_PLAIN_0_0_4)
    assert samples(body.decode()) == {"scaler_things_total": 3.0, "scaler_others_total": 0.0}
    assert missing == 404


async def test_metrics_app_negotiates_openmetrics_gzip_and_name_selection(
    registry: CollectorRegistry,
) -> None:
    """What prometheus_client's own server answered: OpenMetrics on request, gzip, ``name[]``."""
    async with serving(metrics_app(registry)) as listener:
        _, openmetrics, open_type = await get(
            listener, "/metrics", Accept="application/openmetrics-text; version=1.0.0"
        )
        _, zipped, _ = await get(listener, "/metrics", **{"Accept-Encoding": "gzip"})
        _, selected, _ = await get(listener, "/metrics?name[]=scaler_things_total")

    assert open_type.startswith("application/openmetrics-text")
    assert openmetrics.endswith(b"# EOF\n")
    assert samples(gzip.decompress(zipped).decode())["scaler_things_total"] == 3.0
    assert samples(selected.decode()) == {"scaler_things_total": 3.0}
