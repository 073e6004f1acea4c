"""e2e: ``scaler exchange-sim`` as a real process, traded through the real ccxt deribit client."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from tests.e2e.conftest import STOP_TIMEOUT_S, clean_env, eventually, free_ports, run_cli

pytestmark = pytest.mark.e2e

SYMBOL = "BTC/USD:BTC"
START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 5.0


class SimProcess:
    """One ``scaler exchange-sim`` in ``cwd``, restartable on the same state directory."""

    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(
            SCALER_SIM__PORT=str(self.port),
            SCALER_STATE_DIR=str(cwd / "state"),
            SCALER_PAPER__TICK_INTERVAL_S="0.05",
            SCALER_LOG__FORMAT="json",
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> SimProcess:
        self.runs += 1
        with (
            (self.cwd / f"stdout-{self.runs}.log").open("wb") as out,
            (self.cwd / f"stderr-{self.runs}.log").open("wb") as err,
        ):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scaler.cli", "exchange-sim"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        eventually(self._healthy, START_TIMEOUT_S, "exchange-sim to answer /admin/healthz")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"exchange-sim exited: {self.output()[-2000:]}"
        try:
            with urllib.request.urlopen(f"{self.url}/admin/healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            raise AssertionError("exchange-sim ignored SIGTERM") from None

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.cwd.glob("std*.log")))

    def events(self) -> list[dict[str, Any]]:
        lines = "".join(p.read_text() for p in sorted(self.cwd.glob("stdout-*.log"))).splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def sims(tmp_path: Path) -> Any:
    started: list[SimProcess] = []

    def make(**env: str) -> SimProcess:
        cwd = tmp_path / f"sim{len(started)}"
        cwd.mkdir()
        started.append(SimProcess(cwd, **env))
        return started[-1]

    yield make
    for sim in started:
        sim.stop_quietly()


def client(kind: Any, url: str, key: str, secret: str) -> Any:
    exchange = kind({"apiKey": key, "secret": secret, "enableRateLimit": False, "timeout": 5_000})
    exchange.urls["api"] = {"rest": url, "ws": url.replace("http", "ws") + "/ws/api/v2"}
    return exchange


async def first_session(url: str, key: str, secret: str) -> dict[str, Any]:
    """Buy 1,000 USD at market, rest a bid far below, watch one ticker push."""
    rest = client(ccxt_async.deribit, url, key, secret)
    pro = client(ccxt_pro.deribit, url, key, secret)
    try:
        bought = await rest.create_order(SYMBOL, "market", "buy", 1_000, None, {"label": "e2e-buy"})
        resting = await rest.create_order(
            SYMBOL, "limit", "buy", 100, 1_000, {"label": "e2e-rest", "postOnly": True}
        )
        (position,) = await rest.fetch_positions()
        first = await asyncio.wait_for(pro.watch_ticker(SYMBOL), CALL_TIMEOUT_S)
        second = await asyncio.wait_for(pro.watch_ticker(SYMBOL), CALL_TIMEOUT_S)
    finally:
        await rest.close()
        await pro.close()
    assert (bought["id"], bought["status"], bought["info"]["label"]) == (
        "BTC-1",
        "closed",
        "e2e-buy",
    )
    assert resting["status"] == "open"
    assert position["contracts"] == 1_000.0
    assert second["timestamp"] > first["timestamp"]  # the feed moves at 20 ticks a second
    return {"entry": position["entryPrice"], "resting": resting["id"]}


async def second_session(url: str, key: str, secret: str) -> dict[str, Any]:
    rest = client(ccxt_async.deribit, url, key, secret)
    try:
        (position,) = await rest.fetch_positions()
        open_orders = await rest.fetch_open_orders(SYMBOL)
        found = await rest.privateGetGetOrderStateByLabel({"currency": "BTC", "label": "e2e-buy"})
        third = await rest.create_order(SYMBOL, "market", "sell", 100)
    finally:
        await rest.close()
    return {
        "position": (position["contracts"], position["entryPrice"]),
        "open": [order["id"] for order in open_orders],
        "by_label": [item["order_id"] for item in found["result"]],
        "third": third["id"],
    }


def test_exchange_sim_trades_through_ccxt_and_resumes_after_sigterm(sims: Any) -> None:
    """Generated credentials, a ccxt session, SIGTERM exits 0, a restart finds the account."""
    sim = sims().start()
    credentials_path = sim.cwd / "state" / "exchange-sim-credentials.json"
    assert stat.S_IMODE(credentials_path.stat().st_mode) == 0o600
    pair = json.loads(credentials_path.read_text())
    key, secret = pair["api_key"], pair["api_secret"]
    before = asyncio.run(first_session(sim.url, key, secret))
    assert sim.terminate() == 0

    sim.start()
    after = asyncio.run(second_session(sim.url, key, secret))
    assert after == {
        "position": (1_000.0, before["entry"]),
        "open": [before["resting"]],
        "by_label": ["BTC-1"],
        "third": "BTC-3",
    }
    assert sim.terminate() == 0

    started = [e for e in sim.events() if e["event"] == "exchange_sim_started"]
    assert [e["url"] for e in started] == [sim.url, sim.url]
    credentials = [(e["event"], e["path"]) for e in sim.events() if "path" in e]
    path = str(credentials_path)
    assert credentials == [("credentials_generated", path), ("credentials_loaded", path)]
    assert secret not in sim.output()


def test_exchange_sim_uses_configured_credentials_and_refuses_others(sims: Any) -> None:
    """With sim.api_key/api_secret set, no file is generated and only that pair trades."""
    key, secret = "configured-key", "configured-secret-0123456789"
    sim = sims(SCALER_SIM__API_KEY=key, SCALER_SIM__API_SECRET=secret).start()

    async def session() -> tuple[float, str]:
        good = client(ccxt_async.deribit, sim.url, key, secret)
        bad = client(ccxt_async.deribit, sim.url, key, "another-secret-0123456789")
        try:
            balance = await good.fetch_balance()
            try:
                await bad.fetch_balance()
            except ccxt_async.AuthenticationError as exc:
                refused = type(exc).__name__
            else:
                refused = "accepted"
        finally:
            await good.close()
            await bad.close()
        return balance["BTC"]["total"], refused

    assert asyncio.run(session()) == (1.0, "AuthenticationError")
    assert sim.terminate() == 0
    assert not (sim.cwd / "state" / "exchange-sim-credentials.json").exists()
    assert secret not in sim.output()


def test_exchange_sim_on_a_busy_port_exits_2_naming_the_setting(tmp_path: Path) -> None:
    """A port already taken is a configuration error: exit code 2, ``sim.port`` named."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(SCALER_SIM__PORT=str(port), SCALER_STATE_DIR=str(tmp_path / "state"))
        result = run_cli(tmp_path, env, "exchange-sim")
    assert result.returncode == 2, result.stderr
    assert "sim.port" in result.stderr
