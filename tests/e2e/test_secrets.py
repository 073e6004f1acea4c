"""e2e: a known secret never appears in anything the daemon or the CLI prints or serves.

The real daemon runs with ``SCALER_API__TOKEN`` set to a fresh random value and debug logging;
the test uses the token (every mutating call through the CLI), knocks with wrong ones, then
searches all of stdout and stderr, every HTTP answer, ``/metrics``, ``/status``, the output of
``scaler check`` (with and without ``--connect``) and ``scaler status``, and the state files
(the SQLite journal) for the secret.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Daemon, eventually, sample_value

pytestmark = pytest.mark.e2e

MakeDaemon = Callable[..., Daemon]
REDACTED = "**********"


def _post(daemon: Daemon, path: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{daemon.api_port}{path}", data=b"{}", headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        exc.close()
        return exc.code, body


def test_secret_token_never_appears_in_logs_metrics_status_or_check_output(
    make_daemon: MakeDaemon,
) -> None:
    """With SCALER_API__TOKEN=<random>, no output of the daemon or the CLI contains it."""
    secret = f"sek-{secrets.token_urlsafe(24)}"
    daemon = make_daemon(SCALER_API__TOKEN=secret, SCALER_LOG__LEVEL="debug").start()
    daemon.wait_ready()
    eventually(
        lambda: sample_value(daemon.metrics(), "scaler_orders_total", outcome="filled") > 0,
        20.0,
        "the daemon to trade",
    )
    seen: dict[str, str] = {}

    for label, headers in (
        ("no token", {}),
        ("wrong token", {"Authorization": "Bearer not-the-token"}),
        ("secret without Bearer", {"Authorization": secret}),
        ("secret with a typo", {"Authorization": f"Bearer {secret}x"}),
    ):
        code, body = _post(daemon, "/halt", headers)
        assert code == 401, label
        seen[f"POST /halt ({label})"] = body

    for command in (
        ("mode", "recommend"),
        ("halt",),
        ("resume",),
        ("override", "--duration-s", "60"),
        ("mode", "auto"),
        ("status",),
        ("status", "--json"),
        ("check",),
        ("check", "--connect"),
    ):
        result = daemon.cli(*command)
        assert result.returncode == 0, (command, result.stderr)
        seen[f"scaler {' '.join(command)}"] = result.stdout + result.stderr

    for path in ("/status", "/healthz", "/readyz", "/nope"):
        seen[f"GET {path}"] = daemon.get(path)[1].decode()
    seen["GET /metrics"] = daemon.metrics()
    assert daemon.terminate() == 0
    seen["daemon stdout"] = daemon.stdout_text()
    seen["daemon stderr"] = daemon.stderr_text()

    leaks = [where for where, text in seen.items() if secret in text]
    state_files = [path for path in (daemon.cwd / "var").rglob("*") if path.is_file()]
    assert state_files  # the journal
    leaks += [str(path) for path in state_files if secret.encode() in path.read_bytes()]
    assert leaks == [], f"the secret appears in: {leaks}"
    # The search looked at real output: the token was used, redacted, and the logs were there.
    assert json.loads(seen["scaler check"])["api"]["token"] == REDACTED
    assert "scaler_orders_total" in seen["GET /metrics"]
    assert '"mode": "recommend"' in seen["daemon stdout"]  # the decision logged after the switch
    assert not (daemon.cwd / "var" / "control-token").exists()  # the configured token is used


def test_daemon_logs_are_json_lines_when_not_on_a_terminal(make_daemon: MakeDaemon) -> None:
    """Every line the daemon writes to stdout is one JSON object with timestamp, level, event."""
    daemon = make_daemon().start()
    daemon.wait_ready()
    assert daemon.terminate() == 0
    lines = daemon.stdout_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert {"started", "decision", "stopped"} <= {event["event"] for event in events}
    for event in events:
        assert {"timestamp", "level", "event"} <= event.keys(), event
        assert event["timestamp"].endswith("Z"), event
