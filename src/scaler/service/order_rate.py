"""The order-rate cap (risk rule 8), on the injected clock.

At most ``burst`` orders in any window of ``burst / rate_per_s`` seconds, where ``burst`` is the
whole part of the rate (at least 1, at most :data:`MAX_BURST`). An integer rate keeps the rule
asyncio-throttle applied before (5 orders/s: at most 5 in any second); a fractional rate is
honoured instead of truncated: 0.5 orders/s is one order every 2 s, 1.9 orders/s one every
0.526 s, 2.5 orders/s two in any 0.8 s.

asyncio-throttle cannot do this on the daemon's clock: it reads ``time.monotonic()`` and polls
``asyncio.sleep`` itself, so a test on the fake clock could not drive it, and its limit is a whole
number of tasks per period.
"""

from __future__ import annotations

import math
from collections import deque

from scaler.domain.types import NS_PER_S
from scaler.ports import Clock

MAX_BURST = 1_000
"""Orders allowed back to back at the highest rates (only benchmarks and tests set those)."""


class OrderRateLimit:
    """Waits, on ``clock``, until one more order keeps within the rate; see the module docstring."""

    def __init__(self, rate_per_s: float, clock: Clock) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"order rate must be a positive number, not {rate_per_s!r}")
        self.burst = min(MAX_BURST, max(1, math.floor(rate_per_s)))
        self.window_ns = max(1, round(self.burst * NS_PER_S / rate_per_s))
        self._clock = clock
        self._slots_ns: deque[int] = deque(maxlen=self.burst)
        """When each of the last ``burst`` orders was (or will be) let through."""

    def reserve(self) -> int:
        """Book the next slot; returns its time (now, or later when the window is full)."""
        now_ns = self._clock.now_ns()
        slot_ns = now_ns
        if len(self._slots_ns) == self.burst:
            slot_ns = max(now_ns, self._slots_ns[0] + self.window_ns)
        self._slots_ns.append(slot_ns)
        return slot_ns

    async def __aenter__(self) -> None:
        wait_ns = self.reserve() - self._clock.now_ns()
        if wait_ns > 0:
            await self._clock.sleep(wait_ns / NS_PER_S)

    async def __aexit__(self, *_: object) -> None:
        return None
