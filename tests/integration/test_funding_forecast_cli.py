"""``scaler funding-forecast`` end to end in process: files in, a table and a choice out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaler.cli import main

pytestmark = pytest.mark.integration

# 0, 4, 0, 4, 0 bps every 8 h (the hand-computed series of tests/unit/test_funding_forecast.py).
ALTERNATING_QUANTCONNECT = (
    "20230902 00:00:00,0\n"
    "20230902 08:00:00,0.0004\n"
    "20230902 16:00:00,0\n"
    "20230903 00:00:00,0.0004\n"
    "20230903 08:00:00,0\n"
)
ALTERNATING_BITMEX = "timestamp,symbol,fundingInterval,fundingRate,fundingRateDaily\n" + "".join(
    f"2020-03-1{day}T{hour}:00:00Z,XBTUSD,2000-01-01T08:00:00Z,{rate},{rate * 3}\n"
    for day, hour, rate in ((2, "04", 0.0), (2, "12", 0.0004), (2, "20", 0.0),
                            (3, "04", 0.0004), (3, "12", 0.0))
)  # fmt: skip


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Default settings: no SCALER_ variable from outside, no stray .env in the cwd."""
    for name in list(os.environ):
        if name.upper().startswith("SCALER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("text", [ALTERNATING_QUANTCONNECT, ALTERNATING_BITMEX],
                         ids=["quantconnect", "bitmex"])  # fmt: skip
def test_funding_forecast_when_hand_series_then_prints_hand_computed_rmse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """Last rate 4.00 bps on the next rate, 8/3 = 2.67 at 24 h. Half-life 1: 2.97 (sqrt 8.8125)
    and 1.94 (sqrt(34/9)). The configured half-life 2 joins the grid: EMA 0, 1.17157, 0.82843,
    1.75736 (alpha 0.29289) misses the next rate by -4, 1.17157, -3.17157, 1.75736, RMSE
    sqrt(30.520/4) = 2.76, and 1.89 at 24 h, the best of both columns. Too few points to choose."""
    path = tmp_path / "alternating.csv"
    path.write_text(text)

    code = main(["funding-forecast", str(path), "--half-life", "1", "--horizon-h", "24"])

    out = capsys.readouterr().out
    assert code == 0
    assert "alternating.csv: 5 observations, 0 rows skipped" in out
    table = out.split("\n\n")[0].splitlines()[1:]  # the source's table, without its title
    rows = {line[:22].strip(): line[22:].split() for line in table}
    assert rows["RMSE, bps per 8 h"] == ["next", "24", "h"]
    assert rows["last rate"] == ["4.00", "2.67"]
    assert rows["EMA half-life 1"] == ["2.97", "1.94"]
    assert rows["EMA half-life 2"] == ["2.76*", "1.89*"]
    assert rows["points"] == ["4", "2"]
    assert "configured: half-life 2 intervals, venue weight 0" in out
    assert "no source has 50 scored points at 24 h: no half-life chosen" in out


def test_funding_forecast_when_file_missing_then_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing history is one line on stderr naming it, exit code 2."""
    assert main(["funding-forecast", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err
    assert len(err.strip().splitlines()) == 1


def test_funding_forecast_when_not_a_funding_file_then_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file in no known funding format is one line naming it and the header, exit code 2."""
    path = tmp_path / "bars.csv"
    path.write_text("open_time_utc,open,high,low,close,volume_contracts\n")
    assert main(["funding-forecast", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bars.csv" in err
    assert "unrecognised_header" in err
    assert len(err.strip().splitlines()) == 1
