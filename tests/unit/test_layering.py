"""Architecture rules: the domain stays pure, and only the ccxt adapter imports ccxt."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[2] / "src" / "scaler"

# Anything that does I/O, reads a clock, schedules work, logs or exports metrics.
FORBIDDEN_IN_DOMAIN = {
    "asyncio",
    "time",
    "datetime",
    "logging",
    "structlog",
    "prometheus_client",
    "socket",
    "sqlite3",
    "os",
    "sys",
    "subprocess",
    "threading",
    "io",
    "pathlib",
    "random",
    "ccxt",
    "aiohttp",
    "requests",
    "httpx",
    "urllib",
    "http",
    "json",
    "pydantic",
    "pydantic_settings",
    "signal",
    "shutil",
    "tempfile",
    "select",
    "selectors",
    "multiprocessing",
    "concurrent",
}
ALLOWED_PROJECT_IMPORTS_IN_DOMAIN = ("scaler.domain", "scaler.errors")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append("scaler.domain." + (node.module or ""))
            elif node.module:
                names.append(node.module)
    return names


def _domain_files() -> list[Path]:
    files = sorted((SRC / "domain").rglob("*.py"))
    assert files, "domain package not found"
    return files


@pytest.mark.parametrize("path", _domain_files(), ids=lambda p: p.name)
def test_domain_module_imports_no_io_clock_logging_or_metrics(path: Path) -> None:
    """Every domain module imports only the standard library's pure parts and the domain."""
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN_IN_DOMAIN, f"{path.name} imports {name}"
        if top == "scaler":
            assert name.startswith(ALLOWED_PROJECT_IMPORTS_IN_DOMAIN), f"{path.name} imports {name}"


def test_only_the_ccxt_adapter_imports_ccxt() -> None:
    """ccxt stays behind the venue adapter (``adapters/ccxt*``)."""
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if not path.relative_to(SRC).as_posix().startswith("adapters/ccxt")
        and any(name.split(".")[0] == "ccxt" for name in _imports(path))
    ]
    assert offenders == []


def test_layering_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself sees an ``import time`` hidden inside a function."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import time\n    return time.time()\n")
    assert "time" in _imports(bad)
