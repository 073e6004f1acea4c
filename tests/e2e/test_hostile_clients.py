"""e2e: a hostile local user against the real daemon's two HTTP ports (no token needed for any
of it): idle and half-open connections, descriptor exhaustion, and a weak configured token."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scaler.config import Settings
from tests.e2e.conftest import Daemon, clean_env, eventually, run_cli

pytestmark = pytest.mark.e2e

MakeDaemon = Callable[..., Daemon]
HALF_OPEN_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # never finished
API_LIMIT = Settings().api.max_connections
METRICS_LIMIT = Settings().metrics.max_connections
SPARE_FDS = 8
"""Descriptors a daemon may open besides its connections while the test runs (journal, feeds)."""


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def _half_open(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections to ``port`` that each send half a request head and wait."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            with contextlib.suppress(OSError):  # the daemon may already have closed it
                sock.sendall(HALF_OPEN_HEAD)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _closed_by_daemon(sock: socket.socket) -> bool:
    sock.settimeout(0.0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _pid(daemon: Daemon) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


def test_daemon_when_idle_connections_exceed_both_limits_then_it_answers_on_flat_threads_and_fds(
    make_daemon: MakeDaemon,
) -> None:
    """Ten times the limit of half-open connections on each port: /healthz and /metrics still
    answer, the daemon starts no thread per connection and holds no more descriptors than its
    limits allow (on main: one thread per metrics connection, every connection held)."""
    daemon = make_daemon().start()
    daemon.wait_ready()
    pid = _pid(daemon)
    threads, fds = _threads(pid), _fds(pid)

    with (
        _half_open(daemon.api_port, 10 * API_LIMIT),
        _half_open(daemon.metrics_port, 10 * METRICS_LIMIT),
    ):
        assert daemon.get("/healthz")[0] == 200
        assert daemon.get("/metrics", port=daemon.metrics_port)[0] == 200
        assert _threads(pid) <= threads
        assert _fds(pid) <= fds + API_LIMIT + METRICS_LIMIT + SPARE_FDS
    daemon.assert_alive()


def test_daemon_when_a_connection_sends_no_complete_head_then_it_is_closed_after_the_timeout(
    make_daemon: MakeDaemon,
) -> None:
    """``api.header_timeout_s`` and ``metrics.header_timeout_s`` close half-open connections."""
    daemon = make_daemon(
        SCALER_API__HEADER_TIMEOUT_S="0.5", SCALER_METRICS__HEADER_TIMEOUT_S="0.5"
    ).start()
    daemon.wait_ready()
    with (
        _half_open(daemon.api_port, 3) as api,
        _half_open(daemon.metrics_port, 3) as metrics,
    ):
        eventually(
            lambda: all(_closed_by_daemon(sock) for sock in api + metrics),
            10.0,
            "the daemon to close the half-open connections",
        )
        assert daemon.get("/healthz")[0] == 200


def test_daemon_when_out_of_file_descriptors_then_healthz_recovers_and_one_log_line_per_interval(
    make_daemon: MakeDaemon,
) -> None:
    """With its descriptor limit just above what it uses, connections beyond it make accept
    fail with EMFILE: the daemon logs that once (a structured event, no traceback), closes idle
    connections to make room, and /healthz and /metrics answer throughout."""
    daemon = make_daemon().start()
    daemon.wait_ready()
    pid = _pid(daemon)
    limit = _fds(pid) + API_LIMIT // 2  # below what the API's connection limit would allow
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))

    with _half_open(daemon.api_port, 3 * API_LIMIT), _half_open(daemon.metrics_port, 20):
        for _ in range(3):
            assert eventually(lambda: daemon.get("/healthz")[0] == 200, 10.0, "/healthz")
            assert daemon.get("/metrics", port=daemon.metrics_port)[0] == 200
    daemon.assert_alive()
    daemon.terminate()

    failures = [
        json.loads(line)
        for line in daemon.stdout_text().splitlines()
        if '"http_accept_failed"' in line
    ]
    assert 1 <= len(failures) <= 2  # at most once per server in the test's few seconds
    assert {f["errno"] for f in failures} == {24}
    stderr = daemon.stderr_text()
    assert "Traceback" not in stderr
    assert "Too many open files" not in stderr


@pytest.mark.parametrize("token", ["", "short-token"], ids=["empty", "short"])
@pytest.mark.parametrize("command", ["check", "run"])
def test_check_and_run_when_the_configured_token_is_weak_then_exit_2_naming_api_token(
    tmp_path: Path, command: str, token: str
) -> None:
    """An empty or short ``api.token`` is refused at start with one line naming it; no daemon
    comes up that no request could authenticate against."""
    result = run_cli(tmp_path, clean_env(SCALER_API__TOKEN=token), command, timeout_s=20.0)

    assert result.returncode == 2
    assert result.stderr.startswith("config error: api.token: must be at least 16 characters")
    assert len(result.stderr.strip().splitlines()) == 1
    if token:
        assert token not in result.stderr
    assert not (tmp_path / "var").exists()
