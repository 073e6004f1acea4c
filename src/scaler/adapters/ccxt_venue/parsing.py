"""Defensive number parsing for venue payloads: anything unusable becomes ``None``."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, text, NaN, infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def positive(value: Any) -> float | None:
    """``value`` as a finite float above zero, or ``None``."""
    number = finite(value)
    return number if number is not None and number > 0.0 else None
