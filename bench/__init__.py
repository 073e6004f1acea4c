"""Benchmarks against the targets of DESIGN.md section 9; run them with ``python -m bench``.

- :mod:`bench.decision`: decision latency, the pure decision path and ``Engine.step``;
- :mod:`bench.replay_throughput`: full-loop replay of the 2021 bars, ticks/s and peak RSS;
- :mod:`bench.multi_symbol`: 50 symbols at 20 ticks/s in wall time, CPU share and lag;
- :mod:`bench.hotspots`: the top entries of a cProfile dump (see ``bench/PROFILE.md``);
- ``bench/daemon_latency.py``: the running daemon's own tick-to-decision histogram;
- ``bench/metrics_overhead.py``: what the Prometheus metrics cost per engine step.
"""
