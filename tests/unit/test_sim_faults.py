"""Fault knobs and draws: validated updates, and the even split of injected errors by kind."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from scaler.adapters.sim import rpc
from scaler.adapters.sim.faults import ERROR_CYCLE, ErrorKind, FaultInjector, Faults
from scaler.config import SimFaultSettings

pytestmark = pytest.mark.unit


def test_faults_start_from_the_settings() -> None:
    """Every ``sim.faults`` setting becomes the knob of the same name."""
    settings = SimFaultSettings(
        latency_ms=5,
        error_rate=0.2,
        timeout_s=3,
        reject_order_rate=0.1,
        drop_ws_after_s=30,
        stall_feed=True,
    )
    faults = Faults.from_settings(settings)
    assert (faults.latency_ms, faults.error_rate, faults.timeout_s) == (5, 0.2, 3)
    assert (faults.reject_order_rate, faults.drop_ws_after_s, faults.stall_feed) == (0.1, 30, True)
    assert (faults.paused, faults.error_kinds) == (False, tuple(ErrorKind))


def test_an_update_changes_only_what_it_names() -> None:
    faults = Faults(latency_ms=5).updated(
        {"error_rate": 0.5, "paused": True, "error_kinds": ["rate_limit"]}
    )
    assert (faults.latency_ms, faults.error_rate, faults.paused) == (5, 0.5, True)
    assert faults.error_kinds == (ErrorKind.RATE_LIMIT,)
    assert faults.to_dict()["error_kinds"] == ["rate_limit"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"reject_order_rate": -0.1}, "reject_order_rate"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"drop_ws_after_s": 0}, "drop_ws_after_s"),
        ({"typo": 1}, "typo"),
        ({"paused": 1}, "paused"),
        ({"error_kinds": "rate_limit"}, "error_kinds"),
        ({"error_kinds": ["gremlins"]}, "error_kinds"),
    ],
)
def test_an_invalid_update_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Faults().updated(changes)


def test_no_errors_are_drawn_at_rate_zero() -> None:
    injector = FaultInjector(Faults(), random.Random(1))
    assert {injector.draw_error() for _ in range(1_000)} == {None}
    assert {injector.draw_rejection() for _ in range(1_000)} == {None}


def test_errors_split_evenly_between_429_5xx_and_timeouts() -> None:
    """At rate 1, a third each: rate limits, 5xx (two kinds) and timeouts (two kinds)."""
    injector = FaultInjector(Faults(error_rate=1.0), random.Random(1))
    drawn = [injector.draw_error() for _ in range(600)]
    assert drawn[: len(ERROR_CYCLE)] == list(ERROR_CYCLE)
    counts = Counter(drawn)
    assert counts[ErrorKind.RATE_LIMIT] == 200
    assert counts[ErrorKind.UNAVAILABLE] + counts[ErrorKind.SERVER_ERROR] == 200
    assert counts[ErrorKind.TIMEOUT_UNEXECUTED] + counts[ErrorKind.TIMEOUT_EXECUTED] == 200


def test_allowed_kinds_restrict_the_draw() -> None:
    injector = FaultInjector(Faults(error_rate=1.0, error_kinds=(ErrorKind.TIMEOUT_EXECUTED,)))
    assert {injector.draw_error() for _ in range(50)} == {ErrorKind.TIMEOUT_EXECUTED}


def test_the_error_rate_is_a_fraction_of_requests() -> None:
    injector = FaultInjector(Faults(error_rate=0.2), random.Random(3))
    failed = sum(injector.draw_error() is not None for _ in range(10_000))
    assert 1_800 < failed < 2_200


def test_order_rejections_alternate_between_two_codes() -> None:
    """10009 not_enough_funds, then 10012 book_closed, and so on."""
    injector = FaultInjector(Faults(reject_order_rate=1.0))
    drawn = [injector.draw_rejection() for _ in range(4)]
    assert drawn == [rpc.NOT_ENOUGH_FUNDS, rpc.BOOK_CLOSED, rpc.NOT_ENOUGH_FUNDS, rpc.BOOK_CLOSED]


def test_update_is_all_or_nothing() -> None:
    injector = FaultInjector(Faults())
    with pytest.raises(ValueError, match="error_rate"):
        injector.update({"latency_ms": 10, "error_rate": 3})
    assert injector.faults == Faults()
