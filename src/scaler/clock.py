"""Clocks: the only place that reads wall time.

``WallClock`` is real time. ``ManualClock`` is virtual time that tests and replays advance
explicitly; its ``sleep`` returns as soon as someone advances the clock past the deadline, so a
test of a two-second cooldown runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

from scaler.domain.types import NS_PER_S


class WallClock:
    """Real UTC time and real sleeping."""

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """Virtual time, advanced by ``advance``/``set``; sleepers wake when their deadline passes."""

    def __init__(self, start_ns: int = 1_600_000_000 * NS_PER_S) -> None:
        self._now_ns = start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now_ns(self) -> int:
        return self._now_ns

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now_ns + int(seconds * NS_PER_S)
        heapq.heappush(self._sleepers, (deadline, next(self._counter), future))
        await future

    def set(self, ts_ns: int) -> None:
        """Move time forward to ``ts_ns`` (never backward) and wake sleepers that are due."""
        self._now_ns = max(self._now_ns, ts_ns)
        while self._sleepers and self._sleepers[0][0] <= self._now_ns:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def advance(self, seconds: float) -> None:
        self.set(self._now_ns + int(seconds * NS_PER_S))
