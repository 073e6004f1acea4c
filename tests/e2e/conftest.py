"""Fixtures for the e2e tier: real ``scaler`` processes on free loopback ports in a tmp dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

KEY_LABELS = {"venue": "paper", "symbol": "BTC/USD:BTC"}
FAST_ENV = {"SCALER_PAPER__TICK_INTERVAL_S": "0.05", "SCALER_TICK_INTERVAL_S": "0.2"}
STOP_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 20.0


def eventually(
    probe: Callable[[], T | None], timeout_s: float, message: str, interval_s: float = 0.1
) -> T:
    """Poll ``probe`` until it returns a truthy value and return it; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")
        time.sleep(interval_s)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (the sockets are held until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def clean_env(**extra: str) -> dict[str, str]:
    """The test process environment without any ``SCALER_`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SCALER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    cwd: Path, env: dict[str, str], *args: str, timeout_s: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """One ``scaler`` client command as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "scaler.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition as ``(name, labels, value)``."""
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample ``name`` whose labels include ``labels``; 0 when absent."""
    found = [
        value
        for sample_name, sample_labels, value in metric_samples(text)
        if sample_name == name and labels.items() <= sample_labels.items()
    ]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else 0.0


class Daemon:
    """One ``scaler run`` process in its own directory; restartable in the same directory."""

    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        self.api_port, self.metrics_port = free_ports(2)
        self.env = clean_env(
            SCALER_API__PORT=str(self.api_port),
            SCALER_METRICS__PORT=str(self.metrics_port),
            **FAST_ENV,
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    # ---- lifecycle

    def start(self, **env: str) -> Daemon:
        """Start ``scaler run`` (``env`` adds to this daemon's environment for this run)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        with (
            (self.cwd / f"stdout-{self.runs}.log").open("wb") as out,
            (self.cwd / f"stderr-{self.runs}.log").open("wb") as err,
        ):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scaler.cli", "run"],
                cwd=self.cwd,
                env={**self.env, **env},
                stdout=out,
                stderr=err,
            )
        return self

    def wait_ready(self, timeout_s: float = 20.0) -> dict[str, Any]:
        """Wait until /readyz answers 200 and /status has a decision; return the status."""

        def probe() -> dict[str, Any] | None:
            self.assert_alive()
            if self.get("/readyz")[0] != 200:
                return None
            status = self.status()
            return status if "target_usd" in status["instruments"][0] else None

        return eventually(probe, timeout_s, "the daemon to be ready")

    def assert_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        assert code is None, f"daemon exited with {code}: {self.stderr_text()[-2000:]}"

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait up to ``timeout_s``; SIGKILL (and fail) if it does not stop."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon ignored SIGTERM for {timeout_s} s") from None

    def kill(self) -> int:
        """SIGKILL and reap."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop_quietly(self) -> None:
        """Fixture teardown: SIGTERM, then SIGKILL after a bounded wait; never raises."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    # ---- talking to it

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.cwd, {**self.env, **env}, *args)

    def get(self, path: str, port: int | None = None) -> tuple[int, bytes]:
        """GET on the control API (or ``port``); ``(0, b"")`` when nothing answers."""
        url = f"http://127.0.0.1:{port or self.api_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""

    def status(self) -> dict[str, Any]:
        """``scaler status --json`` through the real CLI."""
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def instrument(self) -> dict[str, Any]:
        (item,) = self.status()["instruments"]
        result: dict[str, Any] = item
        return result

    def metrics(self) -> str:
        code, body = self.get("/metrics", port=self.metrics_port)
        assert code == 200, f"/metrics answered {code}"
        return body.decode()

    def stdout_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.cwd.glob("stdout-*.log")))

    def stderr_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.cwd.glob("stderr-*.log")))


def converged(item: dict[str, Any], tolerance: float = 0.02) -> bool:
    """A non-zero position within ``tolerance`` of the recommended target."""
    actual, recommended = item.get("actual_usd"), item.get("recommended_usd")
    if not actual or not recommended:
        return False
    return bool(abs(actual - recommended) <= tolerance * abs(recommended))


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory of daemons, each in its own directory under ``tmp_path``; all stopped after."""
    daemons: list[Daemon] = []

    def make(**env: str) -> Daemon:
        cwd = tmp_path / f"d{len(daemons)}"
        cwd.mkdir()
        daemon = Daemon(cwd, **env)
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop_quietly()
