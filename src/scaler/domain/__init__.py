"""The pure core: inverse-contract maths, funding prediction, sizing, risk rules, order planning.

Nothing in this package performs I/O, reads a clock, logs, touches metrics or uses asyncio.
Time is always an argument (integer nanoseconds since the Unix epoch, UTC, named ``ts_*_ns``).
"""
