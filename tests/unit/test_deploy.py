"""The files in deploy/ agree with each other, with the settings and with the README.

(The tools themselves — promtool, a live Prometheus, amtool, systemd-analyze — run in
``tests/e2e/test_prometheus.py``.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scaler.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERT = re.compile(r"^\s*- alert: (\w+)$", re.MULTILINE)


def alert_blocks() -> dict[str, str]:
    """Alert name -> the text of its rule, from alerts.yml."""
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    matches = list(ALERT.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return {m[1]: text[m.end() : end] for m, end in zip(matches, ends, strict=True)}


def readme_monitoring() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Monitoring\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def readme_table(header: str) -> list[list[str]]:
    """The body rows (cells stripped) of the README Monitoring table with this header line."""
    lines = readme_monitoring().splitlines()
    start = lines.index(header) + 2  # skip the header and the |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_every_alert_has_for_severity_summary_and_a_runbook_description() -> None:
    """Each rule has a `for:`, severity critical or warning, a summary and a runbook hint."""
    blocks = alert_blocks()
    assert len(blocks) >= 9
    for name, block in blocks.items():
        assert re.search(r"^\s+for: \d+[sm]$", block, re.M), name
        assert re.search(r"^\s+severity: (critical|warning)$", block, re.M), name
        assert re.search(r"^\s+summary: ", block, re.M), name
        assert "Runbook:" in block, name


def test_readme_lists_every_alert_with_its_severity_and_for_duration() -> None:
    """The README's alert table names exactly the alerts of alerts.yml, with the same
    severity and `for:` duration."""
    table = readme_table("| alert | severity | fires when | what to do |")
    rows = {cells[0].strip("`"): cells for cells in table}
    blocks = alert_blocks()
    assert set(rows) == set(blocks)
    for name, block in blocks.items():
        severity = re.search(r"severity: (\w+)", block)
        duration = re.search(r"for: (\w+)", block)
        assert severity is not None
        assert duration is not None
        _, readme_severity, condition, _action = rows[name]
        assert readme_severity == severity[1], name
        assert condition.endswith(f"for {duration[1]}"), name


def test_readme_describes_every_dashboard_panel() -> None:
    """The README's dashboard table names exactly the dashboard's panels, in their rows."""
    data = json.loads((DEPLOY / "grafana" / "dashboards" / "scaler.json").read_text())
    panels: dict[str, str] = {}
    row = ""
    for panel in data["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        else:
            panels[panel["title"]] = row
    table = readme_table("| row | panel | shows |")
    assert {cells[1]: cells[0] for cells in table} == panels
    assert len(table) == len(panels)


def test_prometheus_config_scrapes_the_default_metrics_port_and_loads_the_alerts() -> None:
    """prometheus.yml's target is the daemon's default metrics address; it loads alerts.yml and
    names an Alertmanager."""
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    metrics = Settings().metrics
    assert f'targets: ["{metrics.host}:{metrics.port}"]' in text
    assert "job_name: scaler" in text
    assert re.search(r"^rule_files:\n  - alerts.yml", text, re.M)
    assert re.search(r"alertmanagers:\n\s+- static_configs:\n\s+- targets: \[", text)
    assert "change `targets`" in text  # the comment that says how to point it elsewhere
