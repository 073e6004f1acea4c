"""``GET /metrics``: the Prometheus exposition of a registry, as an aiohttp application.

Served on the daemon's own event loop (see :mod:`scaler.service.listener`), not by
prometheus_client's threaded server, which spends an OS thread on every open connection. It
answers what that server answered: the text format (or OpenMetrics when the scraper's ``Accept``
asks for it), gzip when ``Accept-Encoding`` allows it, and ``name[]`` to select series.
"""

from __future__ import annotations

import gzip

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

METRICS_PATH = "/metrics"
MAX_BODY_BYTES = 1024
"""Scrapes carry no body."""


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """An application serving ``registry`` on :data:`METRICS_PATH` (GET and HEAD)."""

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        names = request.query.getall("name[]", [])
        output = encoder(registry.restricted_registry(names) if names else registry)
        headers = {"Content-Type": content_type}
        if gzip_accepted(request.headers.get("Accept-Encoding", "")):
            output = gzip.compress(output)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=output, headers=headers)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get(METRICS_PATH, metrics)
    return app
