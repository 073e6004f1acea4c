"""Argument guards shared by the domain modules: invalid input raises a clear ``ValueError``."""

from __future__ import annotations

import math


def require_finite(name: str, value: float) -> None:
    """``value`` must be a real, finite number (``bool`` is refused, it is not a quantity)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def require_positive(name: str, value: float) -> None:
    """``value`` must be a finite number above zero."""
    require_finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
