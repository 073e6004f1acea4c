"""The replay's PNG plots, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each plot reads the policies' bucketed series (at most 5,000 points per channel, see
:mod:`scaler.service.replay_recorder`), so a year of ticks draws as fast as a day:

- ``equity.png``: equity in coin and in USD, every policy, liquidations marked;
- ``position.png``: target (the size formula), allowed (after the risk layer) and actual
  position, one panel per policy;
- ``leverage.png``: effective leverage (the highest per bucket), with the configured target and
  cap;
- ``margin.png``: margin ratio (the lowest per bucket; 1 is liquidation) and liquidation
  distance (the closest per bucket), with the configured buffer and floor;
- ``funding.png``: the funding rate observed vs the configured policy's prediction;
- ``states.png``: the mark, and the configured policy's trading state (the worst per bucket),
  with breaker trips, freezes and every policy's liquidations marked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scaler.domain.types import NS_PER_S
from scaler.service.replay import ReplayOutcome
from scaler.service.replay_recorder import Channel
from scaler.service.replay_report import PlotGuides

DPI = 100
STATE_NAMES = ("active", "reducing", "frozen", "halted")


NS_PER_DAY = 86_400 * NS_PER_S


def _time(ts_ns: int) -> float:
    """matplotlib's date number: days since 1970-01-01 UTC (its default epoch)."""
    return ts_ns / NS_PER_DAY


@dataclass(frozen=True, slots=True)
class Lines:
    """One policy's plot data: bucket times, channels, and its events."""

    name: str
    color: str
    times: list[float]
    columns: dict[Channel, list[float]]
    trips: list[float]
    liquidations: list[float]

    def at(self, channel: Channel) -> list[float]:
        return self.columns[channel]


def _lines(outcome: ReplayOutcome) -> list[Lines]:
    lines = []
    for index, policy in enumerate(outcome.policies):
        series = policy.recorder.series
        lines.append(
            Lines(
                name=policy.name,
                color=f"C{index}",
                times=[_time(ts) for ts in series.timestamps_ns()],
                columns={channel: series.column(channel) for channel in Channel},
                trips=[_time(ts) for ts in policy.recorder.breaker_trips_ns],
                liquidations=[_time(item.ts_ns) for item in policy.exchange.liquidations],
            )
        )
    return lines


def _dates(ax: Axes) -> None:
    ax.xaxis_date(tz=UTC)
    ax.grid(visible=True, alpha=0.3)


def _mark_liquidations(ax: Axes, policies: Sequence[Lines]) -> None:
    for policy in policies:
        for index, moment in enumerate(policy.liquidations):
            label = f"{policy.name} liquidated" if index == 0 else None
            ax.axvline(moment, color=policy.color, linestyle=":", linewidth=1.5, label=label)


def _has_positive(values: Sequence[float]) -> bool:
    return any(math.isfinite(v) and v > 0.0 for v in values)


def _equity(fig: Figure, policies: Sequence[Lines], guides: PlotGuides) -> None:
    coin, usd = fig.subplots(2, 1, sharex=True)
    for policy in policies:
        coin.plot(policy.times, policy.at(Channel.EQUITY_COIN), color=policy.color)
        usd.plot(policy.times, policy.at(Channel.EQUITY_USD), color=policy.color, label=policy.name)
    for ax in (coin, usd):
        _mark_liquidations(ax, policies)
        _dates(ax)
    coin.set_ylabel("equity (coin)")
    usd.set_ylabel("equity (USD)")
    coin.set_title("Equity")
    usd.legend(loc="best", fontsize="small")


def _position(fig: Figure, policies: Sequence[Lines], guides: PlotGuides) -> None:
    axes = fig.subplots(len(policies), 1, sharex=True, squeeze=False)[:, 0]
    for ax, policy in zip(axes, policies, strict=True):
        ax.plot(policy.times, policy.at(Channel.TARGET_USD), "--", color="0.5", label="target")
        ax.plot(policy.times, policy.at(Channel.ALLOWED_USD), color="C1", label="allowed")
        ax.plot(policy.times, policy.at(Channel.ACTUAL_USD), color="C0", label="actual")
        _mark_liquidations(ax, [policy])
        ax.set_ylabel(f"{policy.name}\n(USD)")
        _dates(ax)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_title("Target vs actual position")


def _leverage(fig: Figure, policies: Sequence[Lines], guides: PlotGuides) -> None:
    ax = fig.subplots()
    for policy in policies:
        ax.plot(policy.times, policy.at(Channel.LEVERAGE), color=policy.color, label=policy.name)
    ax.axhline(guides.target_leverage, color="0.4", linestyle="--", label="target leverage")
    ax.axhline(guides.max_leverage, color="C3", linestyle="--", label="risk max leverage")
    _mark_liquidations(ax, policies)
    ax.set_ylabel("effective leverage (max per bucket)")
    ax.set_title("Effective leverage")
    _dates(ax)
    ax.legend(loc="best", fontsize="small")


def _margin(fig: Figure, policies: Sequence[Lines], guides: PlotGuides) -> None:
    ratio, distance = fig.subplots(2, 1, sharex=True)
    for policy in policies:
        ratio.plot(policy.times, policy.at(Channel.MARGIN_RATIO), color=policy.color)
        distance.plot(
            policy.times,
            policy.at(Channel.LIQUIDATION_DISTANCE),
            color=policy.color,
            label=policy.name,
        )
    if any(_has_positive(policy.at(Channel.MARGIN_RATIO)) for policy in policies):
        ratio.set_yscale("log")
    ratio.axhline(1.0, color="C3", linestyle="--", label="liquidation (1)")
    ratio.axhline(guides.mm_buffer, color="0.4", linestyle="--", label="maintenance buffer")
    distance.axhline(
        guides.min_liquidation_distance, color="0.4", linestyle="--", label="distance floor"
    )
    for ax in (ratio, distance):
        _mark_liquidations(ax, policies)
        _dates(ax)
        ax.legend(loc="best", fontsize="small")
    ratio.set_ylabel("equity / maintenance\n(min per bucket)")
    distance.set_ylabel("liquidation distance\n(min per bucket)")
    ratio.set_title("Margin ratio and liquidation distance")


def _funding(fig: Figure, policies: Sequence[Lines], guides: PlotGuides) -> None:
    ax = fig.subplots()
    configured = policies[0]
    observed = [v * 100.0 for v in configured.at(Channel.FUNDING_OBSERVED)]
    predicted = [v * 100.0 for v in configured.at(Channel.FUNDING_PREDICTED)]
    ax.step(configured.times, observed, where="post", color="C0", label="observed (in force)")
    ax.plot(configured.times, predicted, color="C1", label=f"predicted ({configured.name})")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.set_ylabel("funding rate per interval (%)")
    ax.set_title("Funding: observed vs predicted")
    _dates(ax)
    ax.legend(loc="best", fontsize="small")


def _states(fig: Figure, policies: Sequence[Lines], guides: PlotGuides) -> None:
    mark, state = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    configured = policies[0]
    mark.plot(configured.times, configured.at(Channel.MARK), color="0.2", label="mark")
    levels = configured.at(Channel.STATE)
    state.step(configured.times, levels, where="post", color="C0", label=configured.name)
    frozen = [level >= 2.0 for level in levels]
    for ax in (mark, state):
        ax.fill_between(
            configured.times, 0, 1, where=frozen, step="post", color="C3", alpha=0.15,
            transform=ax.get_xaxis_transform(), label="frozen or halted" if ax is state else None,
        )  # fmt: skip
        for index, moment in enumerate(configured.trips):
            label = "breaker trip" if index == 0 and ax is mark else None
            ax.axvline(moment, color="C3", linewidth=0.8, alpha=0.7, label=label)
        _mark_liquidations(ax, policies)
        _dates(ax)
    state.set_yticks(range(len(STATE_NAMES)), STATE_NAMES)
    state.set_ylim(-0.5, len(STATE_NAMES) - 0.5)
    mark.set_ylabel("mark (USD)")
    mark.set_title(f"Trading state of {configured.name}: trips, freezes, liquidations")
    mark.legend(loc="best", fontsize="small")
    state.legend(loc="best", fontsize="small")


PLOTS: tuple[tuple[str, Callable[[Figure, Sequence[Lines], PlotGuides], None], float], ...] = (
    ("equity", _equity, 7.0),
    ("position", _position, 0.0),
    ("leverage", _leverage, 5.0),
    ("margin", _margin, 7.0),
    ("funding", _funding, 5.0),
    ("states", _states, 6.0),
)
"""Each plot's file name, drawing function and height in inches (0: 2.5 per policy)."""


def write_plots(outcome: ReplayOutcome, out_dir: Path, guides: PlotGuides) -> list[Path]:
    """Draw every plot of :data:`PLOTS` into ``out_dir``; the paths written, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    policies = _lines(outcome)
    if not policies or not policies[0].times:
        return []
    written = []
    for name, draw, height in PLOTS:
        fig = Figure(figsize=(12.0, height or 2.5 * len(policies) + 1.0), layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig, policies, guides)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=DPI)
        written.append(path)
    return written
