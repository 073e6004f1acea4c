"""scaler: keeps an inverse (coin-margined) perpetual position at a target size, safely."""

__version__ = "0.1.0"
