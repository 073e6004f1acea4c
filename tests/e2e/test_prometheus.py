"""e2e: the shipped Prometheus, Alertmanager, Grafana and systemd files against real tools and a
real daemon.

promtool checks the configuration and the rules and runs their unit tests; a real Prometheus
scrapes a running ``scaler run`` with the shipped configuration (pointed at the daemon's port,
1 s intervals) and must see the series, load every rule and evaluate it without error; the
Grafana dashboard may reference only series the daemon exports, in PromQL Prometheus accepts.
Tests that need a tool skip, naming it, only when its binary is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaler.config import Settings
from scaler.observability.metrics import ORDER_OUTCOMES
from tests.e2e.conftest import KEY_LABELS, Daemon, eventually, free_ports

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "scaler.json"
PROMETHEUS_WAIT_S = 45.0
TOOL_TIMEOUT_S = 60.0
METRIC_NAME = re.compile(r"\b(?:scaler|process)_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "info": ("_info",),
    "histogram": ("_bucket", "_count", "_sum"),
}


def tool(name: str) -> str:
    """The path of an external binary, or skip the test saying which one is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it with apt)")
    return path


def run_tool(*args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    """Run a tool to completion and return stdout + stderr; fail the test with that output
    when it exits non-zero."""
    result = subprocess.run(
        args,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output}"
    return output


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", (PROMETHEUS_DIR / "alerts.yml").read_text(), re.M)


def prometheus_config(tmp_path: Path, metrics_port: int, alertmanager_port: int) -> Path:
    """The shipped prometheus.yml and alerts.yml in ``tmp_path``, pointed at the daemon, with
    1 s scrape and evaluation intervals and an Alertmanager port nothing listens on."""
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    for old, new in (
        ('"127.0.0.1:9464"', f'"127.0.0.1:{metrics_port}"'),
        ('"127.0.0.1:9093"', f'"127.0.0.1:{alertmanager_port}"'),
        ("scrape_interval: 5s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
    ):
        assert text.count(old) == 1, f"prometheus.yml no longer has exactly one {old}"
        text = text.replace(old, new)
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    return config


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One ``scaler run`` for the module, ready and deciding; stopped at the end."""
    process = Daemon(tmp_path_factory.mktemp("daemon"))
    try:
        process.start()
        process.wait_ready()
        yield process
    finally:
        process.stop_quietly()


class Prometheus:
    """A real Prometheus server on a free loopback port, with its HTTP API."""

    def __init__(self, binary: str, config: Path, data_dir: Path) -> None:
        (self.port,) = free_ports(1)
        self.log = data_dir.parent / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        """GET an API path; the JSON ``data`` on success, ``None`` while it cannot answer."""
        assert self.proc.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            if exc.code == 503:
                return None  # "Service Unavailable" while the server is still starting
            raise AssertionError(f"{path} {params}: {exc.code} {raw[:500]!r}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]] | None:
        data = self.get("/api/v1/query", query=expr)
        return None if data is None else list(data["result"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


@pytest.fixture
def prometheus(daemon: Daemon, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus with the shipped configuration scraping ``daemon``; terminated afterwards."""
    binary = tool("prometheus")
    (alertmanager_port,) = free_ports(1)
    config = prometheus_config(tmp_path, daemon.metrics_port, alertmanager_port)
    server = Prometheus(binary, config, tmp_path / "data")
    try:
        yield server
    finally:
        server.stop()


def scrape_names(text: str) -> set[str]:
    """Every series name a scrape exports, including families that have no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and templating queries."""
    data = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in data["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in data["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def runnable(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by what they select."""
    for old, new in (("$__rate_interval", "1m"), ("$instance", ".*"), ("$venue", ".*")):
        expr = expr.replace(old, new)
    return expr.replace("$symbol", ".*")


# ------------------------------------------------------------------------------ promtool


def test_promtool_check_config_and_rules_pass_on_the_shipped_files(tmp_path: Path) -> None:
    """`promtool check config` (which loads alerts.yml too) and `check rules` succeed."""
    promtool = tool("promtool")
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS_DIR / name, tmp_path / name)
    config_out = run_tool(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert "SUCCESS: 1 rule files found" in config_out
    rules_out = run_tool(promtool, "check", "rules", "alerts.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(alert_names())} rules found" in rules_out


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    """`promtool test rules alerts_test.yml`: each main alert fires on its series, only there."""
    promtool = tool("promtool")
    output = run_tool(promtool, "test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts_test.yml").read_text()))
    main = {
        "ScalerFeedStale",
        "ScalerHaltedTooLong",
        "ScalerFrozenTooLong",
        "ScalerMarginRatioLow",
        "ScalerLiquidationDistanceLow",
        "ScalerDown",
        "ScalerPositionDeviation",
        "ScalerOrderRejects",
        "ScalerDecisionLoopStuck",
        "ScalerBreakerTripped",
    }
    assert main <= tested


def test_promtool_check_metrics_passes_on_a_scrape_of_the_daemon(daemon: Daemon) -> None:
    """The daemon's exposition passes promtool's metric lint (names, units, help)."""
    promtool = tool("promtool")
    text = daemon.metrics()
    output = run_tool(promtool, "check", "metrics", stdin=text)
    assert output.strip() == "", output


# ------------------------------------------------------------------------------ live Prometheus


def _series(prometheus: Prometheus, expr: str) -> list[dict[str, Any]] | None:
    result = prometheus.query(expr)
    return result or None


def test_prometheus_scrapes_the_daemon_with_the_shipped_config(
    daemon: Daemon, prometheus: Prometheus
) -> None:
    """Within 45 s the position and order series arrive in Prometheus with their labels."""
    deadline = time.monotonic() + PROMETHEUS_WAIT_S

    def remaining() -> float:
        return max(0.1, deadline - time.monotonic())

    eventually(lambda: prometheus.get("/api/v1/status/buildinfo"), remaining(), "prometheus up")
    selector = '{venue="paper",symbol="BTC/USD:BTC"}'
    (position,) = eventually(
        lambda: _series(prometheus, f"scaler_actual_position_usd{selector}"),
        remaining(),
        "scaler_actual_position_usd in Prometheus",
    )
    assert position["metric"]["job"] == "scaler"
    assert position["metric"]["instance"] == f"127.0.0.1:{daemon.metrics_port}"
    assert KEY_LABELS.items() <= position["metric"].items()

    filled = eventually(
        lambda: _series(prometheus, f'scaler_orders_total{{outcome="filled",{selector[1:]} > 0'),
        remaining(),
        "filled orders in scaler_orders_total",
    )
    assert len(filled) == 1
    orders = prometheus.query(f"scaler_orders_total{selector}") or []
    assert {series["metric"]["outcome"] for series in orders} == set(ORDER_OUTCOMES)
    (up,) = prometheus.query('up{job="scaler"}') or [None]
    assert up is not None
    assert up["value"][1] == "1"


def test_prometheus_loads_every_alert_rule_and_evaluates_it_without_error(
    daemon: Daemon, prometheus: Prometheus
) -> None:
    """Every alert of alerts.yml is loaded and evaluates with health ok against live series;
    on a healthy daemon none of the availability and feed alerts is even pending."""

    def evaluated() -> dict[str, dict[str, Any]] | None:
        data = prometheus.get("/api/v1/rules")
        if data is None:
            return None
        rules = {rule["name"]: rule for group in data["groups"] for rule in group["rules"]}
        if not rules or any(rule["health"] == "unknown" for rule in rules.values()):
            return None
        return rules

    rules = eventually(evaluated, PROMETHEUS_WAIT_S, "every rule evaluated once")
    assert set(rules) == set(alert_names())
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    eventually(
        lambda: _series(prometheus, "scaler_last_decision_timestamp_seconds"),
        PROMETHEUS_WAIT_S,
        "decision series scraped",
    )
    quiet = "ScalerDown|ScalerNoDecisions|ScalerDecisionLoopStuck|ScalerFeedStale"
    assert prometheus.query(f'ALERTS{{alertname=~"{quiet}"}}') == []


def test_every_dashboard_expression_is_valid_promql_with_data_for_the_position_panel(
    daemon: Daemon, prometheus: Prometheus
) -> None:
    """Prometheus accepts every dashboard query; the position panel's queries return data."""
    eventually(
        lambda: _series(prometheus, "scaler_target_position_usd"),
        PROMETHEUS_WAIT_S,
        "position series scraped",
    )
    for expr in dashboard_exprs():
        if expr.startswith("label_values("):
            continue  # a Grafana function, not PromQL; its selector is checked below
        assert prometheus.query(runnable(expr)) is not None, expr
    for name in ("target", "recommended", "actual"):
        assert prometheus.query(f"scaler_{name}_position_usd"), name


# ------------------------------------------------------------------------------ Grafana


def test_grafana_dashboard_references_only_series_the_daemon_exports(daemon: Daemon) -> None:
    """Every metric name in the dashboard's queries appears in a scrape of the daemon."""
    exported = scrape_names(daemon.metrics())
    referenced = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    assert referenced - exported == set()
    required = {
        "scaler_target_position_usd",
        "scaler_recommended_position_usd",
        "scaler_actual_position_usd",
        "scaler_mark_price_usd",
        "scaler_index_price_usd",
        "scaler_funding_rate_observed_ratio",
        "scaler_funding_rate_predicted_ratio",
        "scaler_margin_ratio",
        "scaler_liquidation_distance_ratio",
        "scaler_trading_state",
        "scaler_orders_total",
        "scaler_errors_total",
        "scaler_tick_to_decision_seconds_bucket",
        "scaler_order_round_trip_seconds_bucket",
    }
    assert required <= referenced


def test_grafana_every_panel_queries_the_daemon_and_the_provisioning_matches() -> None:
    """Each panel has a query on a scaler/process series; the provisioned datasource uid is
    the dashboard's default and the provider loads from one folder."""
    data = json.loads(DASHBOARD.read_text())
    for panel in data["panels"]:
        if panel["type"] == "row":
            continue
        exprs = [target["expr"] for target in panel["targets"]]
        assert exprs, panel["title"]
        assert all(METRIC_NAME.search(expr) for expr in exprs), panel["title"]
        assert panel.get("description"), panel["title"]
    datasources = (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    uid = re.search(r"^\s+uid: (\S+)$", datasources, re.M)
    assert uid is not None
    (variable,) = [v for v in data["templating"]["list"] if v["name"] == "datasource"]
    assert variable["current"]["value"] == uid[1]
    provider = (DEPLOY / "grafana/provisioning/dashboards/scaler.yml").read_text()
    assert re.search(r"^\s+path: /\S+$", provider, re.M)


# ------------------------------------------------------------------------- Alertmanager, systemd


ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def test_alertmanager_config_is_valid_and_routes_by_severity() -> None:
    """`amtool check-config` passes; critical pages, warning tickets, anything else is dropped."""
    amtool = tool("amtool")
    assert "SUCCESS" in run_tool(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    for labels, receiver in (
        (("severity=critical", "alertname=ScalerDown"), "page"),
        (("severity=warning", "alertname=ScalerFeedStale"), "ticket"),
        (("severity=info",), "null"),
    ):
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [receiver], (labels, result.stdout)


def _unit_settings() -> dict[str, str]:
    text = (DEPLOY / "systemd" / "scaler.service").read_text()
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0].isalpha()
    )


def test_systemd_unit_runs_unprivileged_and_stops_after_the_shutdown_deadline() -> None:
    """The unit runs as a non-root user, restarts on failure (not on a config error), stops
    with SIGTERM and waits longer than the daemon's shutdown deadline; secrets come from an
    EnvironmentFile."""
    unit = _unit_settings()
    assert unit["User"] not in {"root", "0"}
    assert unit["Restart"] == "on-failure"
    assert unit["RestartPreventExitStatus"] == "2"
    assert unit["KillSignal"] == "SIGTERM"
    assert int(unit["TimeoutStopSec"]) > Settings().execution.shutdown_deadline_s
    assert unit["EnvironmentFile"].startswith("/etc/")
    assert unit["ExecStart"].endswith("scaler run")


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit, its ExecStart pointed at an existing binary."""
    analyze = tool("systemd-analyze")
    text = (DEPLOY / "systemd" / "scaler.service").read_text()
    unit = tmp_path / "scaler.service"
    unit.write_text(text.replace(_unit_settings()["ExecStart"], f"{shutil.which('true')} run"))
    run_tool(analyze, "verify", str(unit))
