"""Structured logs (structlog) and Prometheus metrics (prometheus-client)."""
