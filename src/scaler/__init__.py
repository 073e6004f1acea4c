"""scaler: keeps an inverse (coin-margined) perpetual position at a target size and keeps it safe."""

__version__ = "0.1.0"
