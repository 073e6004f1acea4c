"""e2e: the real ``scaler`` CLI and daemon as subprocesses, on the embedded paper defaults."""

from __future__ import annotations

import json
import math
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    KEY_LABELS,
    Daemon,
    clean_env,
    converged,
    eventually,
    free_ports,
    metric_samples,
    run_cli,
    sample_value,
)

pytestmark = pytest.mark.e2e

MakeDaemon = Callable[..., Daemon]
# No dead band: the target moves with the mark, so a daemon in auto mode trades continuously,
# and a low order rate keeps an order waiting on the rate limiter most of the time.
BUSY_ENV = {
    "SCALER_RISK__DEAD_BAND_FRACTION": "0",
    "SCALER_RISK__DEAD_BAND_MIN_USD": "0",
    "SCALER_EXECUTION__MAX_ORDERS_PER_S": "2",
}
KEY_SERIES = (
    "scaler_mark_price_usd",
    "scaler_index_price_usd",
    "scaler_target_position_usd",
    "scaler_recommended_position_usd",
    "scaler_actual_position_usd",
    "scaler_equity_coin",
    "scaler_decisions_total",
    "scaler_orders_total",
    "scaler_trading_state",
)


def _filled(daemon: Daemon) -> float:
    return sample_value(daemon.metrics(), "scaler_orders_total", outcome="filled", **KEY_LABELS)


def _decisions(daemon: Daemon) -> float:
    return sample_value(daemon.metrics(), "scaler_decisions_total", **KEY_LABELS)


def _strict_json(text: str) -> Any:
    """Parse RFC 8259 JSON: ``NaN`` / ``Infinity`` are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def _converged_item(daemon: Daemon) -> dict[str, Any] | None:
    item = daemon.instrument()
    return item if converged(item) else None


def test_daemon_with_no_configuration_converges_and_exports_metrics(
    make_daemon: MakeDaemon,
) -> None:
    """With no configuration the daemon reaches its target within 30 s and exports metrics."""
    started = time.monotonic()
    daemon = make_daemon().start()
    daemon.wait_ready(timeout_s=30.0)
    item = eventually(
        lambda: _converged_item(daemon),
        30.0 - (time.monotonic() - started),
        "actual position within 2 % of the recommended target",
    )
    assert item["venue"] == "paper"
    assert item["symbol"] == "BTC/USD:BTC"
    assert item["actual_usd"] > 0  # the default side is long

    text = daemon.metrics()
    assert sample_value(text, "scaler_orders_total", outcome="filled", **KEY_LABELS) > 0
    samples = metric_samples(text)
    labelled = {name for name, labels, _ in samples if KEY_LABELS.items() <= labels.items()}
    for series in KEY_SERIES:
        assert series in labelled, f"{series} with venue/symbol labels is missing"
    for name, labels, _ in samples:
        if "venue" in labels or "symbol" in labels:
            assert name.startswith("scaler_"), name
            assert {labels.get("venue"), labels.get("symbol")} <= set(KEY_LABELS.values()), name


def test_mode_recommend_stops_orders_keeps_deciding_and_survives_restart(
    make_daemon: MakeDaemon,
) -> None:
    """`scaler mode recommend` stops fills but not decisions; auto resumes; recommend persists."""
    daemon = make_daemon(**BUSY_ENV).start()
    daemon.wait_ready()
    eventually(lambda: _filled(daemon) >= 2, 20.0, "the daemon to trade in auto mode")

    result = daemon.cli("mode", "recommend")
    filled = _filled(daemon)  # the daemon has answered: from here on nothing may be sent
    decisions = _decisions(daemon)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"mode": "recommend"}
    assert daemon.status()["mode"] == "recommend"
    first_ts = daemon.instrument()["ts_ns"]
    eventually(lambda: _decisions(daemon) >= decisions + 15, 15.0, "decisions in recommend mode")
    eventually(lambda: daemon.instrument()["ts_ns"] > first_ts, 10.0, "a fresh recommendation")
    item = daemon.instrument()
    assert item["mode"] == "recommend"
    assert item["recommended_usd"] != 0
    assert _filled(daemon) == filled, "orders were filled in recommend mode"

    result = daemon.cli("mode", "auto")
    assert result.returncode == 0, result.stderr
    assert daemon.status()["mode"] == "auto"
    eventually(lambda: _filled(daemon) > filled, 15.0, "fills again in auto mode")

    assert daemon.cli("mode", "recommend").returncode == 0
    assert daemon.terminate() == 0
    daemon.start()
    status = daemon.wait_ready()
    assert status["mode"] == "recommend"
    decisions = _decisions(daemon)
    eventually(lambda: _decisions(daemon) >= decisions + 10, 15.0, "decisions after restart")
    assert _filled(daemon) == 0, "a daemon restarted in recommend mode sent orders"


def test_halt_and_resume_change_the_trading_state(make_daemon: MakeDaemon) -> None:
    """`scaler halt` makes the state halted and stops orders; `scaler resume` makes it active."""
    daemon = make_daemon(**BUSY_ENV).start()
    daemon.wait_ready()
    eventually(lambda: daemon.status()["trading_state"] == "active", 20.0, "state active")
    eventually(lambda: _filled(daemon) >= 2, 20.0, "the daemon to trade")

    result = daemon.cli("halt")
    filled = _filled(daemon)  # the daemon has answered: from here on nothing may be sent
    decisions = _decisions(daemon)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"halted": True}
    eventually(lambda: daemon.status()["trading_state"] == "halted", 10.0, "state halted")
    assert daemon.instrument()["trading_state"] == "halted"
    eventually(lambda: _decisions(daemon) >= decisions + 10, 10.0, "decisions while halted")
    assert _filled(daemon) == filled, "orders were filled after the halt"

    result = daemon.cli("resume")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"halted": False}
    eventually(lambda: daemon.status()["trading_state"] == "active", 10.0, "state active again")


def test_sigterm_exits_zero_within_the_shutdown_deadline(make_daemon: MakeDaemon) -> None:
    """SIGTERM on a trading daemon exits 0 within execution.shutdown_deadline_s."""
    deadline_s = 5.0
    daemon = make_daemon(SCALER_EXECUTION__SHUTDOWN_DEADLINE_S=str(deadline_s), **BUSY_ENV)
    daemon.start().wait_ready()
    eventually(lambda: _filled(daemon) > 0, 20.0, "the daemon to trade")

    assert daemon.proc is not None
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(timeout=deadline_s + 5.0)
    elapsed = time.monotonic() - started
    assert code == 0, daemon.stderr_text()[-2000:]
    assert elapsed < deadline_s + 1.0, f"took {elapsed:.1f} s to stop"
    assert daemon.get("/healthz")[0] == 0, "the control API still answers after exit"


def test_control_token_is_required_private_and_never_leaked(make_daemon: MakeDaemon) -> None:
    """Mutating calls need the token; the token file is 0600; no output ever shows the token."""
    daemon = make_daemon().start()
    daemon.wait_ready()
    token_file = daemon.cwd / "var" / "control-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 16

    url = f"http://127.0.0.1:{daemon.api_port}/halt"
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": token}):
        request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        caught.value.close()
    assert daemon.status()["trading_state"] != "halted"

    # Exercise the token through the CLI so that every mutating path has seen it.
    for command in (("mode", "recommend"), ("halt",), ("resume",), ("mode", "auto")):
        result = daemon.cli(*command)
        assert result.returncode == 0, result.stderr
        assert token not in result.stdout + result.stderr

    status_code, status_body = daemon.get("/status")
    assert status_code == 200
    assert token not in status_body.decode()
    assert token not in daemon.metrics()
    assert daemon.terminate() == 0
    logs = daemon.stdout_text() + daemon.stderr_text()
    assert '"event": "started"' in logs  # the logs were captured at all
    assert token not in logs


def test_check_rejects_an_invalid_env_value_with_one_line_naming_the_field(
    tmp_path: Path,
) -> None:
    """`SCALER_RISK__MAX_LEVERAGE=-1 scaler check` exits 2 with one stderr line naming the field."""
    result = run_cli(tmp_path, clean_env(SCALER_RISK__MAX_LEVERAGE="-1"), "check")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "risk.max_leverage" in lines[0]
    assert result.stdout == ""


def test_check_rejects_a_typo_key_in_the_toml_file(tmp_path: Path) -> None:
    """A misspelt key in the --config TOML file exits 2 with one line naming the key."""
    config = tmp_path / "scaler.toml"
    config.write_text("[risk]\nmax_leverag = 3\n")
    result = run_cli(tmp_path, clean_env(), "--config", str(config), "check")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "risk.max_leverag" in lines[0]
    assert result.stdout == ""


def test_check_rejects_an_unknown_scaler_env_var(tmp_path: Path) -> None:
    """An unknown SCALER_FOO variable exits 2 naming the variable."""
    result = run_cli(tmp_path, clean_env(SCALER_FOO="1"), "check")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "SCALER_FOO" in lines[0]


def test_check_prints_strict_json_with_the_token_redacted(tmp_path: Path) -> None:
    """`scaler check` prints valid JSON settings with the API token redacted, never the secret."""
    secret = "e2e-secret-token-7f3a9c"
    result = run_cli(tmp_path, clean_env(SCALER_API__TOKEN=secret), "check")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    settings = _strict_json(result.stdout)
    assert settings["api"]["token"] == "**********"
    assert settings["venue"] == "paper"
    assert settings["risk"]["max_leverage"] == 10.0
    # "no cap" must survive as something a JSON consumer can read back.
    assert settings["risk"]["max_position_usd"] is None or not math.isfinite(
        float(settings["risk"]["max_position_usd"])
    )


def test_status_without_a_daemon_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    """`scaler status` with no daemon listening exits 1 and says it cannot reach the daemon."""
    (api_port,) = free_ports(1)
    result = run_cli(tmp_path, clean_env(SCALER_API__PORT=str(api_port)), "status")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach the daemon" in lines[0]
    assert str(api_port) in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_mutating_call_without_a_daemon_exits_1(tmp_path: Path) -> None:
    """`scaler halt` with no daemon listening exits 1 with a one-line message, no traceback."""
    (api_port,) = free_ports(1)
    env = clean_env(SCALER_API__PORT=str(api_port))
    result = subprocess.run(
        [Path(__file__).resolve().parents[2] / ".venv" / "bin" / "scaler", "halt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "cannot reach the daemon" in result.stderr
