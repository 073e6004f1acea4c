"""``scaler exchange-sim`` and ``scaler run`` (venue deribit, through ccxt) as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Daemon, clean_env, eventually, free_ports

SIM_KEY = "e2e-sim-key"
SIM_SECRET = "e2e-sim-secret-7c41f0d2a9"
PREFIX = "e2e"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


class Sim:
    """One ``scaler exchange-sim`` with its own state directory, and its admin API."""

    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(
            SCALER_SIM__PORT=str(self.port),
            SCALER_SIM__API_KEY=SIM_KEY,
            SCALER_SIM__API_SECRET=SIM_SECRET,
            SCALER_STATE_DIR=str(cwd / "sim-state"),
            SCALER_PAPER__TICK_INTERVAL_S="0.1",
            SCALER_LOG__FORMAT="json",
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sim:
        with (self.cwd / "sim.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scaler.cli", "exchange-sim"],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        eventually(self._healthy, START_TIMEOUT_S, "exchange-sim to answer")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, (self.cwd / "sim.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{self.url}/admin/healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/admin/{path}",
            data=data,
            headers={"Authorization": f"Bearer {SIM_SECRET}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.admin("state")
        return state

    def faults(self, **changes: Any) -> dict[str, Any]:
        faults: dict[str, Any] = self.admin("faults", changes)
        return faults

    def push(self, mark: float) -> None:
        self.admin("market", {"mark_price": mark})

    def order_requests(self) -> int:
        return int(self.state()["counts"]["requests"])


def daemon_env(sim: Sim, **extra: str) -> dict[str, str]:
    """The daemon's settings for trading at ``sim`` through ccxt, credentials from env."""
    return {
        "SCALER_VENUE": "deribit",
        "SCALER_EXCHANGE__URL": sim.url,
        "SCALER_EXCHANGE__API_KEY": SIM_KEY,
        "SCALER_EXCHANGE__API_SECRET": SIM_SECRET,
        "SCALER_EXCHANGE__TIMEOUT_S": "2",
        "SCALER_EXCHANGE__ACCOUNT_INTERVAL_S": "1",
        "SCALER_EXCHANGE__RETRY_BACKOFF_S": "0.1",
        "SCALER_EXECUTION__CLIENT_ID_PREFIX": PREFIX,
        "SCALER_LOG__FORMAT": "json",
        **extra,
    }


def labels(state: dict[str, Any]) -> list[str]:
    return [str(order["label"]) for order in state["orders"]]


def open_labels(state: dict[str, Any]) -> list[str]:
    return [str(order["label"]) for order in state["open_orders"]]


def position_usd(state: dict[str, Any]) -> float:
    return float(state["account"]["position_usd"])


def converged_at_sim(daemon: Daemon, sim: Sim, tolerance: float = 0.02) -> bool:
    """The sim's position is within ``tolerance`` of what the daemon recommends."""
    item = daemon.instrument()
    recommended = item.get("recommended_usd")
    if not recommended:
        return False
    return abs(position_usd(sim.state()) - recommended) <= tolerance * abs(recommended)
