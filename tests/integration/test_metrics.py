"""Metrics and log events: what an operator sees for each decision and event.

The first half drives :class:`Metrics` through the daemon's :class:`Observer` with hand-made
decision records; the second half runs the engine (fake clock, paper venue) and checks the log
events the loop emits, captured with ``structlog.testing.capture_logs``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from structlog.testing import capture_logs

from scaler.domain.risk import RiskLimits
from scaler.domain.types import InstrumentKey, Mode, TradingState
from scaler.observability.metrics import BREAKER_REASONS, ORDER_OUTCOMES, Metrics
from scaler.observability.telemetry import Observer
from tests.integration.conftest import START_MARK, Rig
from tests.integration.test_metrics_doc import record
from tests.support import KEY

pytestmark = pytest.mark.integration

NS = 1_000_000_000
ETH = InstrumentKey("paper", "ETH/USD:ETH")


def sample(metrics: Metrics, name: str, key: InstrumentKey = KEY, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(
        name, {"venue": key.venue, "symbol": key.symbol, **labels}
    )


# ------------------------------------------------------------------------------ gauges


def test_metrics_when_two_decisions_then_gauges_show_the_latest_and_decisions_count_both() -> None:
    """Gauges follow the latest record; the counter and the histogram see every decision."""
    metrics = Metrics()
    observer = Observer(metrics)
    observer.decision(record(mark_price=50_000.0, actual_usd=1_000.0), changed=True)
    observer.decision(
        record(ts_ns=1_700_000_001 * NS, mark_price=51_000.0, actual_usd=2_000.0), changed=False
    )

    assert sample(metrics, "scaler_mark_price_usd") == 51_000.0
    assert sample(metrics, "scaler_actual_position_usd") == 2_000.0
    assert sample(metrics, "scaler_last_decision_timestamp_seconds") == 1_700_000_001.0
    assert sample(metrics, "scaler_decisions_total") == 2.0
    assert sample(metrics, "scaler_tick_to_decision_seconds_count") == 2.0
    assert sample(metrics, "scaler_feed_age_seconds", feed="account") == 0.5


@pytest.mark.parametrize(
    ("recommended", "actual", "lot", "expected"),
    [
        (140_000.0, 100_000.0, 10.0, 40_000.0 / 140_000.0),
        (-50_000.0, -50_000.0, 10.0, 0.0),
        (0.0, 0.0, 10.0, 0.0),
        (0.0, 30.0, 10.0, 3.0),  # near flat, measured in lots
        (100.0, 0.0, 10.0, 1.0),
    ],
)
def test_metrics_position_deviation_is_distance_over_recommended_or_lot(
    recommended: float, actual: float, lot: float, expected: float
) -> None:
    """|actual - recommended| / max(|recommended|, lot)."""
    metrics = Metrics()
    metrics.register_instrument(KEY, lot)
    metrics.observe_decision(record(recommended_usd=recommended, actual_usd=actual))
    assert sample(metrics, "scaler_position_deviation_ratio") == pytest.approx(expected)


def test_metrics_when_instrument_unregistered_then_deviation_floors_at_one_usd() -> None:
    """Without a registered lot, the deviation near flat is measured in USD."""
    metrics = Metrics()
    metrics.observe_decision(record(recommended_usd=0.0, actual_usd=5.0))
    assert sample(metrics, "scaler_position_deviation_ratio") == 5.0


def test_metrics_trading_state_is_one_hot_and_since_moves_only_on_a_transition() -> None:
    """One state gauge is 1; the since-timestamp is the first decision of the current state."""
    metrics = Metrics()
    metrics.observe_decision(record(ts_ns=100 * NS, trading_state=TradingState.ACTIVE))
    metrics.observe_decision(record(ts_ns=101 * NS, trading_state=TradingState.ACTIVE))
    assert sample(metrics, "scaler_trading_state_since_timestamp_seconds") == 100.0

    metrics.observe_decision(record(ts_ns=105 * NS, trading_state=TradingState.FROZEN))
    metrics.observe_decision(record(ts_ns=109 * NS, trading_state=TradingState.FROZEN))
    assert sample(metrics, "scaler_trading_state_since_timestamp_seconds") == 105.0
    states = {s.value: sample(metrics, "scaler_trading_state", state=s.value) for s in TradingState}
    assert states == {"active": 0.0, "reducing": 0.0, "frozen": 1.0, "halted": 0.0}


def test_metrics_when_registered_then_the_risk_limits_are_exported_for_the_alerts() -> None:
    """Stale limits per feed, the margin floor and the liquidation floor come from RiskLimits."""
    limits = RiskLimits(
        stale_mark_after_s=7.0,
        stale_funding_after_s=900.0,
        stale_account_after_s=40.0,
        mm_buffer=2.5,
        min_liquidation_distance=0.2,
    )
    metrics = Metrics()
    metrics.register_instrument(KEY, 10.0, limits)
    stale = {
        feed: sample(metrics, "scaler_feed_stale_after_seconds", feed=feed)
        for feed in ("mark", "funding", "account")
    }
    assert stale == {"mark": 7.0, "funding": 900.0, "account": 40.0}
    assert sample(metrics, "scaler_margin_ratio_floor") == 2.5
    assert sample(metrics, "scaler_liquidation_distance_floor_ratio") == 0.2
    assert sample(metrics, "scaler_mark_price_usd") is None  # no decision yet: no gauges


def test_metrics_when_flat_then_margin_and_distance_are_inf_and_liquidation_price_nan() -> None:
    """A flat position exports +Inf margin ratio and distance and a NaN liquidation price."""
    metrics = Metrics()
    metrics.observe_decision(
        record(margin_ratio=math.inf, liquidation_distance=math.inf, liquidation_price=None)
    )
    assert sample(metrics, "scaler_margin_ratio") == math.inf
    assert sample(metrics, "scaler_liquidation_distance_ratio") == math.inf
    assert math.isnan(sample(metrics, "scaler_liquidation_price_usd") or 0.0)


def test_metrics_when_decision_then_funding_ema_venue_forecast_and_blend_are_three_series() -> None:
    """The EMA, the venue's forecast and the blend the size formula uses are exported apart."""
    metrics = Metrics()
    metrics.observe_decision(
        record(funding_ema=0.0001, funding_venue_predicted=0.0003, funding_predicted=0.0002)
    )
    assert sample(metrics, "scaler_funding_rate_ema_ratio") == 0.0001
    assert sample(metrics, "scaler_funding_rate_venue_predicted_ratio") == 0.0003
    assert sample(metrics, "scaler_funding_rate_predicted_ratio") == 0.0002


def test_metrics_when_venue_publishes_no_forecast_then_its_series_is_nan() -> None:
    """Without a venue forecast the series reads NaN (it exists, so the dashboard finds it)."""
    metrics = Metrics()
    metrics.observe_decision(record(funding_venue_predicted=None))
    assert math.isnan(sample(metrics, "scaler_funding_rate_venue_predicted_ratio") or 0.0)
    assert sample(metrics, "scaler_funding_rate_ema_ratio") == 0.00011


def test_metrics_mode_is_set_before_the_first_decision_and_follows_decisions() -> None:
    """set_mode publishes the persisted mode at start; each decision's mode wins afterwards."""
    metrics = Metrics()
    assert metrics.registry.get_sample_value("scaler_mode", {"mode": "auto"}) is None
    metrics.set_mode(Mode.AUTO)
    assert metrics.registry.get_sample_value("scaler_mode", {"mode": "auto"}) == 1.0
    metrics.observe_decision(record(mode=Mode.RECOMMEND))
    assert metrics.registry.get_sample_value("scaler_mode", {"mode": "auto"}) == 0.0
    assert metrics.registry.get_sample_value("scaler_mode", {"mode": "recommend"}) == 1.0


# ------------------------------------------------------------------------------ counters


def test_metrics_counters_exist_at_zero_from_the_first_decision_of_each_instrument() -> None:
    """Order outcomes and breaker reasons start at 0, so increase() sees the first event."""
    metrics = Metrics()
    metrics.observe_decision(record(key=ETH, reasons=(), rules=(), details=()))
    for outcome in ORDER_OUTCOMES:
        assert sample(metrics, "scaler_orders_total", ETH, outcome=outcome) == 0.0
    for reason in BREAKER_REASONS:
        assert sample(metrics, "scaler_breaker_trips_total", ETH, reason=reason) == 0.0
    assert sample(metrics, "scaler_orders_total", KEY, outcome="filled") is None


def test_metrics_rules_count_per_decision_and_breaker_reasons_count_as_trips() -> None:
    """Each acting rule counts by (rule, reason); gap and divergence reasons count as trips."""
    metrics = Metrics()
    both = record(
        reasons=("gap_breaker", "max_leverage"),
        rules=("gap_breaker", "caps"),
        details=("gap", "cap"),
    )
    metrics.observe_decision(both)
    metrics.observe_decision(record(reasons=("max_leverage",), rules=("caps",), details=("c",)))
    adjustments = "scaler_risk_adjustments_total"
    assert sample(metrics, adjustments, rule="caps", reason="max_leverage") == 2.0
    assert sample(metrics, adjustments, rule="gap_breaker", reason="gap_breaker") == 1.0
    assert sample(metrics, "scaler_breaker_trips_total", reason="gap_breaker") == 1.0
    assert sample(metrics, "scaler_breaker_trips_total", reason="index_divergence") == 0.0


def test_observer_order_outcomes_outside_the_closed_set_count_as_other() -> None:
    """Label values stay bounded: an unknown event name is counted as ``other``."""
    metrics = Metrics()
    observer = Observer(metrics)
    with capture_logs():
        observer.order_event(KEY, "filled", None)
        observer.order_event(KEY, "something-new", None)
    assert sample(metrics, "scaler_orders_total", outcome="filled") == 1.0
    assert sample(metrics, "scaler_orders_total", outcome="other") == 1.0
    assert sample(metrics, "scaler_orders_total", outcome="something-new") is None


# ------------------------------------------------------------------------------ log events


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def test_observer_logs_a_changed_decision_once_with_reason_codes_and_an_unchanged_one_never() -> (
    None
):
    """``decision`` events carry state, mode, reasons and rules; unchanged decisions are silent."""
    observer = Observer(Metrics())
    with capture_logs() as logs:
        observer.decision(record(), changed=True)
        observer.decision(record(), changed=False)
    (event,) = events(logs, "decision")
    assert event["reasons"] == ["gap_breaker"]
    assert event["rules"] == ["gap_breaker"]
    assert (event["state"], event["mode"]) == ("active", "auto")
    assert (event["venue"], event["symbol"]) == (KEY.venue, KEY.symbol)


def test_observer_logs_every_rejected_input_error_and_state_transition_with_codes() -> None:
    """One event each for a bad input, an error and a transition, with their codes."""
    observer = Observer(Metrics())
    with capture_logs() as logs:
        observer.bad_input(KEY, "funding", "out_of_order")
        observer.bad_input(None, "market", "unknown_instrument")
        observer.error("order_lookup", "timeout")
        observer.state_changed(KEY, "active", "frozen", "stale_mark,stale_funding")
    bad = events(logs, "bad_input")
    assert [(e["feed"], e["reason"], e["venue"]) for e in bad] == [
        ("funding", "out_of_order", "paper"),
        ("market", "unknown_instrument", "unknown"),
    ]
    (error,) = events(logs, "error")
    assert (error["kind"], error["log_level"]) == ("order_lookup", "error")
    (transition,) = events(logs, "trading_state_changed")
    assert transition["previous"] == "active"
    assert transition["current"] == "frozen"
    assert transition["reasons"] == ["stale_mark", "stale_funding"]


async def test_engine_logs_each_order_event_with_its_client_order_id(rig: Rig) -> None:
    """Every order event, the journaled intent included, is one ``order`` event naming the order."""
    with capture_logs() as logs:
        await rig.converge()
    orders = events(logs, "order")
    intended = [e for e in orders if e["outcome"] == "intended"]
    filled = [e for e in orders if e["outcome"] == "filled"]
    assert intended
    assert len(filled) == len(intended)
    assert {e["client_order_id"] for e in intended} == {e["client_order_id"] for e in filled}
    assert all(e["amount_usd"] > 0 and e["side"] == "buy" for e in intended)
    assert rig.sample("scaler_orders_total", outcome="intended") == len(intended)


async def test_engine_logs_a_decision_event_when_only_the_mode_changes(rig: Rig) -> None:
    """Switching to recommend is a change an operator sees in the log, with the new mode."""
    await rig.converge()
    await rig.push(START_MARK)
    with capture_logs() as logs:
        await rig.engine.set_mode(Mode.RECOMMEND)
        decision = await rig.push(START_MARK)
    assert decision.mode is Mode.RECOMMEND
    assert [e["mode"] for e in events(logs, "decision")] == ["recommend"]


async def test_engine_logs_a_halt_as_a_state_transition_with_the_operator_reason(rig: Rig) -> None:
    """``scaler halt`` shows up as ``trading_state_changed`` to halted, reason operator_halt."""
    await rig.converge()
    with capture_logs() as logs:
        await rig.engine.halt()
        await rig.push(START_MARK)
    (transition,) = events(logs, "trading_state_changed")
    assert (transition["previous"], transition["current"]) == ("active", "halted")
    assert "operator_halt" in transition["reasons"]
