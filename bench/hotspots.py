"""Print the top entries of a cProfile dump by cumulative and by own time (``bench/PROFILE.md``).

    .venv/bin/python -m cProfile -o bench/results/decision_path.prof \\
        -m bench.decision --only path --ticks 200000
    .venv/bin/python -m bench.hotspots bench/results/decision_path.prof --top 15
"""

from __future__ import annotations

import argparse
import io
import pstats
import sys
import sysconfig
from pathlib import Path

WRAPPERS = (
    "{built-in method builtins.exec}",
    "<string>:1(<module>)",
    "<frozen runpy>",
    "runners.py:",
    "base_events.py:",
    "events.py:78(_run)",
    "{method 'run' of '_contextvars.Context' objects}",
    "(<module>)",
    "(main)",
)
"""Frames that only wrap the benchmark (``-m`` start-up, ``asyncio.run``): left out."""


def _prefixes() -> list[str]:
    root = Path(__file__).resolve().parents[1]
    paths = sysconfig.get_paths()
    found = [str(root / "src"), str(root), paths["purelib"], paths["platlib"], paths["stdlib"]]
    return [prefix.rstrip("/") + "/" for prefix in sorted(set(found), key=len, reverse=True)]


def shorten(line: str) -> str:
    """Paths relative to ``src/``, the repository, site-packages or the standard library."""
    for prefix in _prefixes():
        line = line.replace(prefix, "")
    return line


def top(path: Path, sort: str, count: int) -> str:
    """``pstats`` rows sorted by ``sort`` without the wrapper frames, paths shortened."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats(sort).print_stats(count + 20)
    lines = [shorten(line) for line in out.getvalue().splitlines()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    total = next((line.strip() for line in lines if "function calls" in line), "")
    rows = [line for line in lines[start + 1 :] if line.strip()]
    kept = [row for row in rows if not any(marker in row for marker in WRAPPERS)][:count]
    return "\n".join([total, lines[start], *kept]).rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    for sort in ("cumulative", "tottime"):
        print(f"## {args.profile.name}: top {args.top} by {sort}\n")
        print(top(args.profile, sort, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
