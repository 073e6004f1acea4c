"""The project's error types, named by what the caller should do with them.

    ScalerError
    ├── ConfigError              bad settings: fatal at start, exit code 2
    ├── VenueError               anything a venue (ccxt or paper) reported
    │   ├── TransientError       a read may be retried with backoff
    │   │   └── RateLimitedError wait (``retry_after_s``) before the next call
    │   ├── RejectedError        the venue refused the request: do not retry it
    │   ├── OutcomeUnknownError  an order may or may not exist: never resend blind,
    │   │                        look it up by client order id first
    │   └── FatalVenueError      credentials, permissions, unsupported venue: stop
    ├── BadInputError            bad market data or payload: count, log, drop
    └── InvariantViolation       our own assumptions broke: crash, let the supervisor restart

Domain code raises only ``ValueError`` for invalid arguments (a programming or data error at a
pure function's door) and never any of the I/O errors above.
"""

from __future__ import annotations


class ScalerError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ScalerError):
    """A setting is missing, malformed or inconsistent; the process must not start."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class VenueError(ScalerError):
    """Something a venue reported or failed to report."""


class TransientError(VenueError):
    """A temporary failure (network, 5xx, a read timing out): retry idempotent calls."""


class RateLimitedError(TransientError):
    """The venue asked us to slow down."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RejectedError(VenueError):
    """The venue refused the request (margin, price, post-only cross): do not retry."""


class OutcomeUnknownError(VenueError):
    """The request may have taken effect: look it up by client order id before anything else."""


class FatalVenueError(VenueError):
    """Authentication, permission or configuration failure at the venue: stop trading."""


class BadInputError(ScalerError):
    """Market data or an exchange payload failed validation; it is counted and dropped."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InvariantViolation(ScalerError):  # noqa: N818 - named as the STYLE error tree names it
    """An internal invariant broke; continuing would be unsafe."""
