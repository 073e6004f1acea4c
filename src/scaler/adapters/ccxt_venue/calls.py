"""Calls into ccxt with the project's error handling: reads retried with backoff, writes never.

Every ccxt call of the adapter goes through one :class:`Caller`, so the retry policy and the
translation of errors live in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from scaler.adapters.ccxt_venue.errors import translate
from scaler.errors import RateLimitedError, TransientError
from scaler.ports import Clock

T = TypeVar("T")


class Caller:
    """Runs ccxt coroutines; counts every failure through ``on_error(kind, detail)``."""

    def __init__(
        self,
        clock: Clock,
        read_retries: int = 3,
        retry_backoff_s: float = 0.25,
        on_error: Callable[[str, str], None] = lambda kind, detail: None,
    ) -> None:
        self._clock = clock
        self._retries = read_retries
        self._backoff_s = retry_backoff_s
        self._on_error = on_error

    async def read(self, action: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """An idempotent call: transient failures are retried with doubling backoff."""
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = translate(exc, action)
                if not isinstance(error, TransientError) or attempt >= self._retries:
                    raise error from exc
                self._on_error(_kind(error), str(error))
                delay = self._backoff_s * (2**attempt)
                if isinstance(error, RateLimitedError):
                    delay = max(delay, error.retry_after_s)
                await self._clock.sleep(delay)
                attempt += 1

    async def write(self, action: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A call that may change state at the venue: tried once; a failure that does not
        prove the venue refused it is :class:`~scaler.errors.OutcomeUnknownError`."""
        try:
            return await fn(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise translate(exc, action, mutating=True) from exc


def _kind(error: Exception) -> str:
    return "rate_limited" if isinstance(error, RateLimitedError) else "venue_transient"
