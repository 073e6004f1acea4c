"""The replay report: every figure as JSON, and a summary table for the terminal.

The JSON is a pure function of the inputs and the configuration: no wall-clock time, no
absolute path (files are named by their base name), keys sorted, numbers rounded to fixed
decimals before ``json.dumps`` (coin to 1e-10, the paper ledger's unit; USD to 1e-4; ratios to
1e-8), non-finite numbers as ``null``. Two runs on the same inputs write the same bytes.

Money figures come from each policy's paper exchange (its exact ledger, funding settlements,
fills and liquidations); drawdowns, state times and extremes from its recorder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scaler.adapters.paper.replay import ReplayStats
from scaler.domain.types import NS_PER_S, TradingState
from scaler.service.replay import ConstantLeveragePolicy, Policy, ReplayOptions, ReplayOutcome, Tape
from scaler.service.replay_recorder import Drawdown, PolicyRecorder

REPORT_FORMAT = 1
COIN_DIGITS = 10
USD_DIGITS = 4
RATIO_DIGITS = 8


@dataclass(frozen=True, slots=True)
class PlotGuides:
    """Configured thresholds the plots draw as reference lines."""

    target_leverage: float
    max_leverage: float
    mm_buffer: float
    min_liquidation_distance: float


def iso(ts_ns: int | None) -> str | None:
    """``2020-03-12T10:15:30Z``; sub-second parts are dropped (ticks are whole seconds)."""
    if ts_ns is None:
        return None
    moment = datetime.fromtimestamp(ts_ns // NS_PER_S, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def num(value: float | None, digits: int) -> float | None:
    """``value`` rounded to ``digits`` decimals; ``None`` for ``None``, NaN and infinities."""
    if value is None or not math.isfinite(value):
        return None
    rounded = round(value, digits)
    return 0.0 if rounded == 0 else rounded  # no "-0.0" in the report


def _drawdown(drawdown: Drawdown, digits: int) -> dict[str, Any]:
    return {
        "fraction": num(drawdown.max_fraction, RATIO_DIGITS),
        "amount": num(drawdown.max_amount, digits),
        "peak_at": iso(drawdown.ts_max_peak_ns),
        "trough_at": iso(drawdown.ts_max_trough_ns),
    }


def _orders(recorder: PolicyRecorder) -> dict[str, int]:
    return {event: recorder.orders[event] for event in sorted(recorder.orders)}


def _state_times(recorder: PolicyRecorder) -> dict[str, float | None]:
    return {
        state.value: num(recorder.time_in_state_ns[state] / NS_PER_S, 3) for state in TradingState
    }


def _money(policy: Policy) -> dict[str, Any]:
    """Ledger figures of the policy's exchange, exact, with USD valued at each event's price."""
    exchange = policy.exchange
    counters = exchange.counters()
    funding_usd = sum(p.amount_coin * p.mark_price for p in exchange.funding_payments)
    fees_usd = sum(f.fee_coin * f.price for f in exchange.fills)
    return {
        "funding_paid_coin": num(counters.funding_paid_coin, COIN_DIGITS),
        "funding_paid_usd": num(funding_usd, USD_DIGITS),
        "funding_settlements": counters.funding_settlements,
        "fees_paid_coin": num(counters.fees_paid_coin, COIN_DIGITS),
        "fees_paid_usd": num(fees_usd, USD_DIGITS),
        "realised_pnl_coin": num(counters.realised_pnl_coin, COIN_DIGITS),
        "insurance_fund_absorbed_coin": num(
            counters.insurance_fund_absorbed_units / 10**10, COIN_DIGITS
        ),
        "fills": counters.fills,
        "balance_identity_holds": exchange.ledger.is_balanced(),
    }


def _liquidations(policy: Policy) -> list[dict[str, Any]]:
    return [
        {
            "at": iso(liquidation.ts_ns),
            "size_usd": liquidation.size_usd,
            "mark_price": num(liquidation.mark_price, USD_DIGITS),
            "close_price": num(liquidation.close_price, USD_DIGITS),
            "equity_coin": num(liquidation.equity_coin, COIN_DIGITS),
            "shortfall_coin": num(liquidation.shortfall_units / 10**10, COIN_DIGITS),
        }
        for liquidation in policy.exchange.liquidations
    ]


def _recorded(recorder: PolicyRecorder) -> dict[str, Any]:
    """What the recorder saw over every decision."""
    return {
        "max_drawdown_coin": _drawdown(recorder.drawdown_coin, COIN_DIGITS),
        "max_drawdown_usd": _drawdown(recorder.drawdown_usd, USD_DIGITS),
        "max_effective_leverage": num(recorder.max_leverage, RATIO_DIGITS),
        "min_margin_ratio": num(recorder.min_margin_ratio, RATIO_DIGITS),
        "min_liquidation_distance": num(recorder.min_liquidation_distance, RATIO_DIGITS),
        "orders_sent": recorder.orders["intended"],
        "orders_by_outcome": _orders(recorder),
        "decisions": recorder.decisions,
        "time_in_state_s": _state_times(recorder),
        "freezes": recorder.entries[TradingState.FROZEN],
        "halts": recorder.entries[TradingState.HALTED],
        "reasons": dict(sorted(recorder.reasons.items())),
        "breaker_trips": len(recorder.breaker_trips_ns),
        "breaker_trips_at": [iso(ts) for ts in recorder.breaker_trips_ns],
        "bad_inputs": dict(sorted(recorder.bad_inputs.items())),
        "errors": dict(sorted(recorder.errors.items())),
    }


def policy_figures(policy: Policy, tape: Tape) -> dict[str, Any]:
    """Every figure of one policy at the end of the replay."""
    recorder, exchange = policy.recorder, policy.exchange
    key = exchange.instruments[0].key
    initial_coin = exchange.config.initial_balance_coin
    equity_coin = exchange.equity_coin()
    liquidations = _liquidations(policy)
    figures: dict[str, Any] = {
        "name": policy.name,
        "kind": policy.kind,
        "initial_equity_coin": num(initial_coin, COIN_DIGITS),
        "initial_equity_usd": num(initial_coin * tape.first_mark, USD_DIGITS),
        "final_equity_coin": num(equity_coin, COIN_DIGITS),
        "final_equity_usd": num(equity_coin * tape.last_mark, USD_DIGITS),
        "return_coin": num(equity_coin / initial_coin - 1.0, RATIO_DIGITS),
        "return_usd": num(
            equity_coin * tape.last_mark / (initial_coin * tape.first_mark) - 1.0, RATIO_DIGITS
        ),
        "final_position_usd": exchange.position(key).size_usd,
        "liquidations": len(liquidations),
        "liquidations_at": liquidations,
        **_recorded(recorder),
        **_money(policy),
    }
    if isinstance(policy, ConstantLeveragePolicy):
        figures["leverage"] = policy.leverage
    return figures


def _inputs(options: ReplayOptions, stats: ReplayStats, tape: Tape) -> dict[str, Any]:
    return {
        "bars": options.bars_path.name,
        "funding": options.funding_path.name if options.funding_path else None,
        "from": iso(options.from_ns),
        "to": iso(options.to_ns),
        "rows_read": stats.rows_ok,
        "rows_skipped": stats.rows_skipped,
        "rows_skipped_by_reason": dict(sorted(stats.skipped_by_reason.items())),
        "rows_skipped_examples": list(stats.examples),
        "ticks": tape.ticks,
        "first_tick": iso(tape.first_ns),
        "last_tick": iso(tape.last_ns),
        "first_mark": num(tape.first_mark, USD_DIGITS),
        "last_mark": num(tape.last_mark, USD_DIGITS),
        "low_mark": num(tape.low_mark, USD_DIGITS),
        "high_mark": num(tape.high_mark, USD_DIGITS),
    }


def build_report(
    outcome: ReplayOutcome,
    stats: ReplayStats,
    options: ReplayOptions,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The whole report as plain data (what ``report.json`` holds)."""
    return {
        "format": REPORT_FORMAT,
        "inputs": _inputs(options, stats, outcome.tape),
        "config": dict(config),
        "policies": [policy_figures(policy, outcome.tape) for policy in outcome.policies],
    }


def report_json(report: Mapping[str, Any]) -> str:
    """The report as JSON text: sorted keys, two-space indent, a final newline."""
    return json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n"


def write_report(report: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_json(report), encoding="utf-8")
    return path


# --- the terminal table ----------------------------------------------------------------------

_COLUMNS = (
    ("policy", "<", 16),
    ("equity BTC", ">", 12),
    ("equity USD", ">", 12),
    ("max DD BTC", ">", 10),
    ("max DD USD", ">", 10),
    ("funding BTC", ">", 12),
    ("fees BTC", ">", 11),
    ("orders", ">", 7),
    ("trips", ">", 5),
    ("frozen", ">", 9),
    ("liquidated", ">", 20),
)


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(policy: Mapping[str, Any]) -> tuple[str, ...]:
    frozen_s = (policy["time_in_state_s"]["frozen"] or 0.0) + (
        policy["time_in_state_s"]["halted"] or 0.0
    )
    liquidated = policy["liquidations_at"]
    first_liquidation = liquidated[0]["at"][:16].replace("T", " ") if liquidated else "no"
    if len(liquidated) > 1:
        first_liquidation += f" (+{len(liquidated) - 1})"
    return (
        str(policy["name"]),
        _cell(policy["final_equity_coin"], ",.6f"),
        _cell(policy["final_equity_usd"], ",.2f"),
        _cell(policy["max_drawdown_coin"]["fraction"], ".1%"),
        _cell(policy["max_drawdown_usd"]["fraction"], ".1%"),
        _cell(policy["funding_paid_coin"], ",.6f"),
        _cell(policy["fees_paid_coin"], ",.6f"),
        str(policy["orders_sent"]),
        str(policy["breaker_trips"]),
        _duration(frozen_s),
        first_liquidation,
    )


def _duration(seconds: float) -> str:
    if seconds < 3_600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3_600:.1f} h"


def format_table(report: Mapping[str, Any]) -> str:
    """The summary a person reads first: one line per policy, then the window replayed."""
    inputs = report["inputs"]
    header = "  ".join(format(name, f"{align}{width}") for name, align, width in _COLUMNS)
    lines = [header, "-" * len(header)]
    for policy in report["policies"]:
        cells = _row(policy)
        lines.append(
            "  ".join(
                format(cell, f"{align}{width}")
                for cell, (_, align, width) in zip(cells, _COLUMNS, strict=True)
            )
        )
    if not inputs["ticks"]:
        lines.append("no ticks in the window: nothing was replayed")
    else:
        lines.append(
            f"{inputs['ticks']:,} ticks from {inputs['first_tick']} to {inputs['last_tick']}; "
            f"mark {inputs['first_mark']:,} -> {inputs['last_mark']:,} "
            f"(low {inputs['low_mark']:,}, high {inputs['high_mark']:,})"
        )
    lines.append("frozen = time FROZEN or HALTED; DD = max drawdown from peak equity")
    return "\n".join(lines)
