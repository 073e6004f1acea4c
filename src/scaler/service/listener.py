"""HTTP listeners on the daemon's own event loop, with bounded connections and a header timeout.

The control API and the metrics endpoint are each served by a :class:`Listener`. It accepts
connections itself (``loop.sock_accept``, then ``loop.connect_accepted_socket`` hands the socket
to aiohttp) instead of through ``loop.create_server``, which lets it

- hold at most ``max_connections`` at once: a connection beyond that replaces the oldest one
  not in the middle of a request (idle keep-alive or half-open), or is closed at once when every
  connection is busy, so idle connections never lock ``/healthz`` out;
- close a connection that has not sent a complete request head within ``header_timeout_s`` of
  opening or of its previous response;
- survive accept errors (``EMFILE``: no file descriptor left): each closes the oldest idle
  connection to free a descriptor and accepts again at once (after :data:`ACCEPT_RETRY_S` when
  none is idle); they are logged through structlog at most once per
  :data:`ACCEPT_ERROR_LOG_INTERVAL_S`, with the number left unlogged (asyncio's default handler
  would print a traceback for every one).

No thread is started: every connection is a transport on the one event loop.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from scaler.domain.types import NS_PER_S
from scaler.ports import Clock

log = structlog.get_logger("scaler.listener")

ACCEPT_RETRY_S = 0.5
ACCEPT_ERROR_LOG_INTERVAL_S = 30.0
BACKLOG = 128
SWEEPS_PER_TIMEOUT = 4
"""The idle sweep runs this often per header timeout: a connection goes within 1.25 timeouts."""


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """What one HTTP server allows a client."""

    max_connections: int
    header_timeout_s: float


@dataclass(slots=True)
class _Connection:
    transport: asyncio.BaseTransport
    idle_since_ns: int | None
    """When it last finished a request (or opened); ``None`` while a request is handled."""


class AcceptErrorLog:
    """Logs accept errors at most once per interval, with how many went unlogged since."""

    def __init__(
        self, name: str, clock: Clock, interval_s: float = ACCEPT_ERROR_LOG_INTERVAL_S
    ) -> None:
        self._name = name
        self._clock = clock
        self._interval_ns = int(interval_s * NS_PER_S)
        self._last_ns: int | None = None
        self._unlogged = 0

    def report(self, exc: OSError) -> None:
        now_ns = self._clock.now_ns()
        if self._last_ns is not None and now_ns - self._last_ns < self._interval_ns:
            self._unlogged += 1
            return
        log.warning(
            "http_accept_failed",
            server=self._name,
            error=exc.strerror or str(exc),
            errno=exc.errno,
            unlogged_since_last=self._unlogged,
        )
        self._last_ns = now_ns
        self._unlogged = 0


class Listener:
    """Serves one aiohttp application on ``host:port`` within ``limits``.

    It adds its own middleware to ``app`` (which must not be frozen yet) to know which
    connections are handling a request.
    """

    def __init__(
        self,
        name: str,
        app: web.Application,
        host: str,
        port: int,
        limits: ListenerLimits,
        clock: Clock,
    ) -> None:
        self._host = host
        self._port = port
        self._limits = limits
        self._clock = clock
        self._accept_errors = AcceptErrorLog(name, clock)
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self._sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        app.middlewares.insert(0, self._tracking_middleware())
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=limits.header_timeout_s,
            lingering_time=limits.header_timeout_s,
        )

    @property
    def ports(self) -> list[int]:
        """The bound ports (the configured one, or the ones chosen for port 0)."""
        return [sock.getsockname()[1] for sock in self._sockets]

    @property
    def open_connections(self) -> int:
        return len(self._open())

    async def start(self) -> None:
        """Bind and start accepting; raises ``OSError`` when the address cannot be bound."""
        await self._runner.setup()
        try:
            self._sockets = await _bind(self._host, self._port)
        except BaseException:
            await self._runner.cleanup()
            raise
        for sock in self._sockets:
            self._tasks.append(asyncio.create_task(self._accept(sock), name="http-accept"))
        self._tasks.append(asyncio.create_task(self._expire_idle(), name="http-idle-expiry"))

    async def close(self) -> None:
        """Stop accepting, close the connections, release the ports."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        await self._runner.cleanup()

    # ------------------------------------------------------------------ connections

    def _tracking_middleware(self) -> Middleware:
        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            transport = request.transport
            connection = self._connections.get(transport) if transport is not None else None
            if connection is None:
                return await handler(request)
            connection.idle_since_ns = None
            try:
                return await handler(request)
            finally:
                connection.idle_since_ns = self._clock.now_ns()

        return track

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                accepted, _ = await loop.sock_accept(sock)
            except OSError as exc:
                self._accept_errors.report(exc)
                # A closed connection frees its descriptor on the next loop iteration.
                freed = self._close_oldest_idle()
                await self._clock.sleep(0.0 if freed else ACCEPT_RETRY_S)
                continue
            await self._admit(accepted)

    async def _admit(self, accepted: socket.socket) -> None:
        full = len(self._open()) >= self._limits.max_connections
        if full and not self._close_oldest_idle():
            accepted.close()  # every connection is handling a request: no room
            return
        server = self._runner.server
        assert server is not None  # set up in start()
        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                server, accepted
            )
        except OSError:
            accepted.close()
            return
        self._connections[transport] = _Connection(transport, self._clock.now_ns())

    def _open(self) -> list[_Connection]:
        """The connections still open, oldest first (closed ones are forgotten here)."""
        for transport in [t for t in self._connections if t.is_closing()]:
            del self._connections[transport]
        return list(self._connections.values())

    def _close_oldest_idle(self) -> bool:
        for connection in self._open():
            if connection.idle_since_ns is not None:
                connection.transport.close()
                del self._connections[connection.transport]
                return True
        return False

    async def _expire_idle(self) -> None:
        timeout_ns = int(self._limits.header_timeout_s * NS_PER_S)
        while True:
            await self._clock.sleep(self._limits.header_timeout_s / SWEEPS_PER_TIMEOUT)
            now_ns = self._clock.now_ns()
            for connection in self._open():
                since = connection.idle_since_ns
                if since is not None and now_ns - since >= timeout_ns:
                    connection.transport.close()


async def _bind(host: str, port: int) -> list[socket.socket]:
    """A listening socket on every address ``host`` resolves to."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
