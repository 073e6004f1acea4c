"""``scaler funding-forecast`` on the shared funding histories: docs/funding.md shows its output,
and the configured default half-life is the one its rule chooses.

The data is read in place from ``../shared/data`` (or ``$SCALER_SHARED_DATA``), never copied.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from scaler.config import FundingSettings, InstrumentSettings
from scaler.domain.funding import FundingPredictorConfig
from scaler.service import funding_forecast as ff

pytestmark = pytest.mark.playback

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("SCALER_SHARED_DATA", ROOT.parent / "shared" / "data"))
FUNDING_DIR = DATA_DIR / "funding"
DOC = ROOT / "docs" / "funding.md"
BLOCK = re.compile(
    r"<!-- funding-forecast output: begin -->\n```text\n(.*?)```\n"
    r"<!-- funding-forecast output: end -->",
    re.DOTALL,
)


def default_config() -> FundingPredictorConfig:
    """The predictor configuration the default settings give (as ``scaler.app`` builds it)."""
    funding = FundingSettings()
    return FundingPredictorConfig(
        interval_s=InstrumentSettings().funding_interval_s,
        half_life_intervals=funding.half_life_intervals,
        venue_weight=funding.venue_weight,
        max_abs_rate=funding.max_abs_rate,
    )


@pytest.fixture(scope="module")
def output() -> str:
    paths = sorted(FUNDING_DIR.glob("*.csv*"))
    if not paths:
        pytest.skip(f"no funding histories in {FUNDING_DIR}")
    out = io.StringIO()
    assert ff.run(ff.ForecastOptions(tuple(paths)), default_config(), out) == 0
    return out.getvalue()


def test_funding_doc_shows_the_evaluation_output_on_the_shared_data(output: str) -> None:
    """docs/funding.md carries exactly what the documented command prints."""
    match = BLOCK.search(DOC.read_text())
    assert match is not None
    assert match[1] == output


def test_default_half_life_is_the_one_the_evaluation_chooses(output: str) -> None:
    """The default half-life is the rule's choice at 24 h; venue weight stays 0 (no evidence)."""
    chosen = re.search(r"at 24 h: ([0-9.]+) intervals", output)
    assert chosen is not None
    assert float(chosen[1]) == FundingSettings().half_life_intervals
    assert FundingSettings().venue_weight == 0.0
    assert "no history carries a venue forecast" in output
