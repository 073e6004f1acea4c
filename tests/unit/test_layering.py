"""Architecture rules: the domain stays pure, only the ccxt adapter imports ccxt, imports run
one way through the layers (domain, ports, adapters, service, app) and no two modules import each
other."""

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


# Layer of every module, by its dotted name's longest matching prefix. A module may import its own
# layer and the layers below it, never one above.
LAYERS = {
    "scaler": 0,  # the package root: ``__version__`` only
    "scaler.errors": 0,
    "scaler.domain": 0,
    "scaler.ports": 1,
    "scaler.clock": 2,  # implements the Clock port
    "scaler.config": 2,  # settings, read by adapters built from them
    "scaler.adapters": 2,
    "scaler.observability": 2,  # implements the Telemetry port
    "scaler.service": 3,
    "scaler.app": 4,
    "scaler.cli": 4,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["scaler", *parts])


def _project_modules() -> dict[str, Path]:
    modules = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}
    assert "scaler.service.engine" in modules, "source tree not found"
    return modules


def _project_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (``TYPE_CHECKING`` included);
    ``from package import module`` counts as importing the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return {imported for imported in found if imported in modules and imported != name}


def _layer(name: str) -> int:
    prefixes = [p for p in LAYERS if name == p or name.startswith(p + ".")]
    assert prefixes, f"{name} has no layer: add it to LAYERS"
    return LAYERS[max(prefixes, key=len)]


def _import_graph() -> dict[str, set[str]]:
    modules = _project_modules()
    return {name: _project_imports(name, path, modules) for name, path in modules.items()}


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} -> {imported}"
        for name, imported_names in graph.items()
        for imported in imported_names
        if _layer(imported) > _layer(name)
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the path that closes it (depth-first search)."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append([*trail[trail.index(name) :], name])
            return
        if name in done:
            return
        for imported in sorted(graph.get(name, ())):
            visit(imported, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    return cycles


def test_imports_run_one_way_through_the_layers() -> None:
    """No module imports a layer above its own: domain, ports, adapters, service, app."""
    assert _upward_imports(_import_graph()) == []


def test_no_two_project_modules_import_each_other() -> None:
    """The project's import graph has no cycle, not even one hidden behind ``TYPE_CHECKING``."""
    assert _cycles(_import_graph()) == []


def test_layer_checks_catch_an_upward_import_and_a_cycle() -> None:
    """The checkers themselves see a port importing the service and a two-module cycle."""
    graph = {
        "scaler.ports": {"scaler.service.records"},
        "scaler.service.engine": {"scaler.service.snapshot"},
        "scaler.service.snapshot": {"scaler.service.engine"},
        "scaler.service.records": set(),
    }
    assert _upward_imports(graph) == ["scaler.ports -> scaler.service.records"]
    assert _cycles(graph) == [
        ["scaler.service.engine", "scaler.service.snapshot", "scaler.service.engine"]
    ]


def test_import_graph_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    """An import under ``if TYPE_CHECKING:`` and a relative one both count."""
    module = tmp_path / "snapshot.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import execution\n"
        "if TYPE_CHECKING:\n"
        "    from scaler.service.engine import Engine\n"
    )
    modules = {
        "scaler.service.engine": module,
        "scaler.service.execution": module,
        "scaler.service.snapshot": module,
    }
    assert _project_imports("scaler.service.snapshot", module, modules) == {
        "scaler.service.engine",
        "scaler.service.execution",
    }
