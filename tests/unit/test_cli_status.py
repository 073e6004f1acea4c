"""``scaler status``'s human view of /status."""

from __future__ import annotations

import pytest

from scaler.cli import format_status

pytestmark = pytest.mark.unit


def test_format_status_when_funding_components_then_one_line_shows_each() -> None:
    """Observed rate, EMA, venue forecast (- when none) and the blend the formula uses."""
    payload = {
        "mode": "auto",
        "trading_state": "active",
        "instruments": [
            {
                "venue": "paper",
                "symbol": "BTC/USD:BTC",
                "funding_observed": 0.0001,
                "funding_ema": 0.00011,
                "funding_venue_predicted": None,
                "funding_predicted": 0.00011,
            }
        ],
    }
    lines = format_status(payload).splitlines()
    assert "  funding observed 0.00010000  EMA 0.00011000  venue -  predicted 0.00011000" in lines
