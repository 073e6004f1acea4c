"""A plain one-line progress bar for ``scaler replay`` (stderr, only on a terminal).

    [##########--------------------]  33.4%  2021-05-12 04:31  701,440 ticks  61,233 ticks/s

The fraction is simulated time elapsed over the span of the replay (``--from``/``--to``, else the
first tick and the end of the bar file's last bar). Wall time, read from the injected clock, only
paces the redraws (at most ten a second) and the ticks/s figure.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from scaler.domain.types import NS_PER_S
from scaler.ports import Clock

REDRAW_INTERVAL_NS = NS_PER_S // 10
BAR_WIDTH = 30


def format_ts(ts_ns: int, seconds: bool = False) -> str:
    """``2020-03-12 10:15`` (UTC), or with seconds."""
    moment = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def render(fraction: float, ts_ns: int, ticks: int, ticks_per_s: float) -> str:
    """One line of the bar, without the carriage return."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    return (
        f"[{bar}] {fraction:6.1%}  {format_ts(ts_ns)}  {ticks:,} ticks  {ticks_per_s:,.0f} ticks/s"
    )


class Progress:
    """Redraws the bar in place on ``stream`` as the replay reports simulated time."""

    def __init__(self, stream: TextIO, wall: Clock, start_ns: int | None, end_ns: int | None):
        self._stream = stream
        self._wall = wall
        self._start_ns = start_ns
        self._end_ns = end_ns
        self._started_ns = wall.now_ns()
        self._drawn_ns = 0
        self._drawn = False

    def update(self, ts_ns: int, ticks: int, *, force: bool = False) -> None:
        """Redraw for simulated time ``ts_ns``, unless drawn less than 0.1 s ago (or forced)."""
        now_ns = self._wall.now_ns()
        if not force and now_ns - self._drawn_ns < REDRAW_INTERVAL_NS:
            return
        self._drawn_ns = now_ns
        if self._start_ns is None:
            self._start_ns = ts_ns
        span_ns = (self._end_ns or ts_ns) - self._start_ns
        fraction = (ts_ns - self._start_ns) / span_ns if span_ns > 0 else 0.0
        rate = ticks / max((now_ns - self._started_ns) / NS_PER_S, 1e-9)
        self._stream.write("\r" + render(fraction, ts_ns, ticks, rate))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line, if one was drawn."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def bars_end_ns(path: Path) -> int | None:
    """The end of the last minute bar in a bar file (its open time + 60 s), or ``None``.

    Only the first column of the last line is parsed (raw lines: a year of gzip in 0.2 s); the
    bar itself is validated later, by the replay's reader.
    """
    with path.open("rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    last = ""
    with (
        gzip.open(path, "rt", encoding="utf-8") if is_gzip else path.open(encoding="utf-8") as text
    ):
        for line in text:
            last = line
    try:
        moment = datetime.fromisoformat(last.split(",", 1)[0])
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_S + 60 * NS_PER_S
