"""ccxt's exceptions translated into the project's, by what the caller should do next.

ccxt maps an unrecognised HTTP 400/403/404/5xx to ``ExchangeNotAvailable``, so a class alone
never makes an order-mutating call safe to repeat: for ``create_order`` every failure that is
not an explicit refusal means *outcome unknown*, and the order is looked up by client id.
"""

from __future__ import annotations

import ccxt.async_support as ccxt

from scaler.errors import (
    FatalVenueError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    TransientError,
    VenueError,
)

_FATAL = (
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended, AccountNotEnabled
    ccxt.NotSupported,
    ccxt.ArgumentsRequired,
    ccxt.BadSymbol,
    ccxt.InvalidProxySettings,
    ccxt.ExchangeClosedByUser,
)
_REFUSED = (
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,  # includes OrderNotFound, DuplicateOrderId, OrderImmediatelyFillable
    ccxt.OperationRejected,
    ccxt.BadRequest,
)
_TRANSIENT = (ccxt.OperationFailed,)  # NetworkError, BadResponse, NullResponse, CancelPending
RATE_LIMIT_WAIT_S = 1.0


def translate(exc: Exception, action: str, *, mutating: bool = False) -> VenueError:
    """The project error for a ccxt failure of ``action``; ``mutating`` for calls that may
    have changed state at the venue (placing an order)."""
    message = f"{action}: {type(exc).__name__}: {_short(exc)}"
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        if mutating:
            return OutcomeUnknownError(message)
        return RateLimitedError(message, retry_after_s=RATE_LIMIT_WAIT_S)
    if isinstance(exc, _FATAL):
        return FatalVenueError(message)
    if isinstance(exc, _REFUSED):
        return RejectedError(message)
    if isinstance(exc, _TRANSIENT):
        return OutcomeUnknownError(message) if mutating else TransientError(message)
    if isinstance(exc, ccxt.ExchangeError):
        return RejectedError(message)
    return OutcomeUnknownError(message) if mutating else TransientError(message)


def is_not_found(exc: BaseException | None) -> bool:
    """Whether a ccxt failure said the order does not exist."""
    return isinstance(exc, ccxt.OrderNotFound)


def _short(exc: Exception, limit: int = 300) -> str:
    """The first line of the message, bounded: ccxt puts whole response bodies in it."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
