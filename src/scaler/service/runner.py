"""Process lifecycle: servers up, loop running, graceful shutdown on SIGTERM/SIGINT.

The first signal lets the loop finish its current step, cancels own resting orders when
configured, flushes state and exits 0 within ``shutdown_deadline_s``; after the deadline the
loop is cancelled. A second signal exits at once with code 130.

The control API and the metrics endpoint are both served on this event loop, each by a
:class:`~scaler.service.listener.Listener` that bounds its connections and times out half-open
ones (no thread per connection).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry

from scaler.observability.exposition import metrics_app
from scaler.ports import Clock
from scaler.service.control import build_control_app
from scaler.service.engine import Engine
from scaler.service.listener import Listener, ListenerLimits

log = structlog.get_logger("scaler.runner")


@dataclass
class Service:
    """Everything the composition root built for ``scaler run``."""

    engine: Engine
    token: str
    api_host: str
    api_port: int
    metrics_host: str
    metrics_port: int | None
    registry: CollectorRegistry
    override_max_s: float
    shutdown_deadline_s: float
    clock: Clock
    api_limits: ListenerLimits
    metrics_limits: ListenerLimits
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def serve(service: Service) -> int:
    """Run until signalled; returns the process exit code."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    metrics_server = await _start_metrics(service)
    api = await _start_api(service)
    log.info(
        "started",
        api=f"http://{service.api_host}:{service.api_port}",
        metrics_port=service.metrics_port,
        mode=service.engine.mode.value,
    )
    engine_task = asyncio.create_task(service.engine.run(stop), name="engine")
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    code = 0
    try:
        await asyncio.wait({engine_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        code = await _finish(engine_task, stop, service.shutdown_deadline_s)
    finally:
        stop_task.cancel()
        for close in service.closers:
            await close()
        await api.close()
        if metrics_server is not None:
            await metrics_server.close()
    log.info("stopped", exit_code=code)
    return code


async def _finish(engine_task: asyncio.Task[None], stop: asyncio.Event, deadline_s: float) -> int:
    if engine_task.done():
        exc = engine_task.exception()
        if exc is not None:
            log.error("engine_failed", error=f"{type(exc).__name__}: {exc}")
            return 1
        return 0
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(engine_task), timeout=deadline_s)
    except TimeoutError:
        log.error("shutdown_deadline_passed", deadline_s=deadline_s)
        engine_task.cancel()
        return 1
    except Exception as exc:  # noqa: BLE001 - reported, and the exit code says it failed
        log.error("engine_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    seen = {"count": 0}

    def on_signal(signum: int) -> None:
        seen["count"] += 1
        if seen["count"] == 1:
            log.warning("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()
        else:
            log.error("forced_exit", signal=signal.Signals(signum).name)
            os._exit(130)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def _start_api(service: Service) -> Listener:
    app = build_control_app(
        service.engine,
        service.token,
        service.override_max_s,
        body_timeout_s=service.api_limits.header_timeout_s,
    )
    api = Listener(
        "api", app, service.api_host, service.api_port, service.api_limits, service.clock
    )
    await api.start()
    return api


async def _start_metrics(service: Service) -> Listener | None:
    if service.metrics_port is None:
        return None
    server = Listener(
        "metrics",
        metrics_app(service.registry),
        service.metrics_host,
        service.metrics_port,
        service.metrics_limits,
        service.clock,
    )
    await server.start()
    return server
