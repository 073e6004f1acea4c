"""docs/metrics.md documents exactly the series the daemon exports, no more, no fewer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scaler.domain.orders import OrderSide, OrderStatus, OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.risk import RiskLimits
from scaler.domain.types import Mode, TradingState
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from tests.support import KEY

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
DOCUMENTED = re.compile(r"^\| `((?:scaler|process)_[a-z0-9_]+)` \|", re.MULTILINE)
SUFFIX = {"counter": "_total", "info": "_info"}


def record(**changes: object) -> DecisionRecord:
    """A decision with every optional field filled in, as the daemon publishes one."""
    fields: dict[str, object] = {
        "key": KEY,
        "ts_ns": 1_700_000_000_000_000_000,
        "mode": Mode.AUTO,
        "trading_state": TradingState.ACTIVE,
        "mark_price": 50_000.0,
        "index_price": 49_990.0,
        "funding_observed": 0.0001,
        "funding_predicted": 0.00012,
        "target_usd": 150_000.0,
        "recommended_usd": 140_000.0,
        "actual_usd": 100_000.0,
        "equity_coin": 1.0,
        "margin_ratio": 60.0,
        "effective_leverage": 2.0,
        "liquidation_price": 34_000.0,
        "liquidation_distance": 0.32,
        "reasons": ("gap_breaker",),
        "rules": ("gap_breaker",),
        "details": ("mark moved 3 %",),
        "latency_s": 0.0004,
        "feed_age_s": {"mark": 0.2, "funding": 0.2, "account": 0.5},
        "funding_ema": 0.00011,
        "funding_venue_predicted": 0.00014,
    }
    fields.update(changes)
    return DecisionRecord(**fields)  # type: ignore[arg-type]


def exported_families(metrics: Metrics) -> dict[str, str]:
    """Family name -> type, named as a scrape shows them: counters with ``_total``, info with
    ``_info`` (the daemon exports no ``_created`` series, so they are not families here)."""
    return {
        family.name + SUFFIX.get(family.type, ""): family.type
        for family in metrics.registry.collect()
    }


def fed_metrics() -> Metrics:
    """Metrics() fed one decision and one of each event, through the daemon's Observer."""
    metrics = Metrics()
    metrics.register_instrument(KEY, 10.0, RiskLimits())
    observer = Observer(metrics)
    observer.decision(record(), changed=True)
    update = OrderUpdate(KEY, "scl-000000000001", "v1", OrderStatus.FILLED, OrderSide.BUY,
                         100.0, 100.0, 50_000.0, 1)  # fmt: skip
    observer.order_event(KEY, "filled", update)
    observer.order_round_trip(KEY, 0.002)
    observer.bad_input(KEY, "market", "duplicate")
    observer.error("feed", "connection reset")
    observer.state_changed(KEY, "active", "frozen", "stale_mark")
    return metrics


def test_metrics_doc_lists_every_exported_family_and_nothing_else() -> None:
    """Every family a fed Metrics() exports has a row in docs/metrics.md, and every row exists."""
    exported = set(exported_families(fed_metrics()))
    documented = set(DOCUMENTED.findall(DOC.read_text()))
    assert exported - documented == set(), "exported but not in docs/metrics.md"
    assert documented - exported == set(), "in docs/metrics.md but not exported"


def test_metrics_doc_rows_have_type_labels_meaning_and_action() -> None:
    """Each row has five cells and names the type the registry reports for the family."""
    types = exported_families(fed_metrics())
    for line in DOC.read_text().splitlines():
        match = DOCUMENTED.match(line)
        if match is None:
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 5, line
        _name, kind, _labels, meaning, action = cells
        assert kind.split()[0] == {"info": "gauge"}.get(types[match[1]], types[match[1]]), line
        assert meaning, line
        assert action, line
