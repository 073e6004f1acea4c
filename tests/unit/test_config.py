"""Unit tests for scaler.config: sources, priority, strictness, redaction, immutability."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from scaler.config import (
    FeedKind,
    ModeSetting,
    PositionSide,
    Settings,
    Venue,
    load_settings,
    redacted,
)
from scaler.errors import ConfigError

pytestmark = pytest.mark.unit

SECRET = "unit-secret-token-c0ffee"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No SCALER_ variable from the outer environment, and no stray .env in the cwd."""
    for name in list(os.environ):
        if name.upper().startswith("SCALER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _toml(tmp_path: Path, text: str, name: str = "scaler.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _config_error(**env: str) -> ConfigError:
    mp = pytest.MonkeyPatch()
    try:
        for key, value in env.items():
            mp.setenv(key, value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        return caught.value
    finally:
        mp.undo()


def test_defaults_load_with_no_configuration() -> None:
    """With no env, no .env and no file, the embedded paper defaults load."""
    settings = load_settings()
    assert settings.venue is Venue.PAPER
    assert settings.mode is ModeSetting.AUTO
    assert settings.state_dir == Path("var")
    assert settings.journal_path == Path("var/scaler.sqlite3")
    assert settings.strategy.side is PositionSide.LONG
    assert settings.strategy.target_leverage == 3.0
    assert settings.paper.feed is FeedKind.SYNTHETIC
    assert settings.paper.initial_balance_coin == 1.0
    assert settings.api.host == "127.0.0.1"
    assert settings.api.port == 8787
    assert settings.api.token is None
    assert settings.metrics.port == 9464
    assert settings.risk.max_position_usd == math.inf


def test_env_nested_variable_sets_the_nested_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """SCALER_STRATEGY__TARGET_LEVERAGE sets strategy.target_leverage."""
    monkeypatch.setenv("SCALER_STRATEGY__TARGET_LEVERAGE", "2.5")
    monkeypatch.setenv("SCALER_API__PORT", "9999")
    settings = load_settings()
    assert settings.strategy.target_leverage == 2.5
    assert settings.api.port == 9999
    assert settings.risk.max_leverage == 10.0  # siblings keep their defaults


def test_toml_file_from_scaler_config_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SCALER_CONFIG names a TOML file whose sections are read."""
    path = _toml(tmp_path, '[strategy]\ntarget_leverage = 4.0\nside = "short"\n')
    monkeypatch.setenv("SCALER_CONFIG", str(path))
    settings = load_settings()
    assert settings.strategy.target_leverage == 4.0
    assert settings.strategy.side is PositionSide.SHORT


def test_toml_file_from_load_settings_path(tmp_path: Path) -> None:
    """load_settings(path) reads that TOML file."""
    path = _toml(tmp_path, 'instance_name = "alpha"\n[risk]\nmax_leverage = 5\n')
    settings = load_settings(path)
    assert settings.instance_name == "alpha"
    assert settings.risk.max_leverage == 5.0
    assert settings.journal_path == Path("var/alpha.sqlite3")


def test_explicit_path_wins_over_scaler_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A path given to load_settings (--config) takes precedence over SCALER_CONFIG."""
    env_file = _toml(tmp_path, "[risk]\nmax_leverage = 4\n", "env.toml")
    arg_file = _toml(tmp_path, "[risk]\nmax_leverage = 6\n", "arg.toml")
    monkeypatch.setenv("SCALER_CONFIG", str(env_file))
    assert load_settings(arg_file).risk.max_leverage == 6.0


def test_env_has_priority_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment variable beats the same key in the TOML file; other TOML keys still apply."""
    path = _toml(tmp_path, "[risk]\nmax_leverage = 4\ngap_threshold = 0.05\n")
    monkeypatch.setenv("SCALER_RISK__MAX_LEVERAGE", "7")
    settings = load_settings(path)
    assert settings.risk.max_leverage == 7.0
    assert settings.risk.gap_threshold == 0.05


def test_dotenv_sits_between_env_and_toml(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    """A .env in the cwd beats the TOML file and loses to a real environment variable."""
    path = _toml(isolated, "[risk]\nmax_leverage = 4\nmax_spread_bps = 10\n")
    (isolated / ".env").write_text("SCALER_RISK__MAX_LEVERAGE=5\nSCALER_RISK__MAX_SPREAD_BPS=30\n")
    monkeypatch.setenv("SCALER_RISK__MAX_SPREAD_BPS", "40")
    settings = load_settings(path)
    assert settings.risk.max_leverage == 5.0
    assert settings.risk.max_spread_bps == 40.0


def test_typo_in_toml_raises_naming_the_field(tmp_path: Path) -> None:
    """A misspelt key in the TOML file is a ConfigError naming the dotted field."""
    path = _toml(tmp_path, "[risk]\nmax_leverag = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.field == "risk.max_leverag"
    assert "unknown" in caught.value.problem


def test_unknown_toml_section_raises_naming_it(tmp_path: Path) -> None:
    """An unknown top-level TOML key is a ConfigError naming it."""
    path = _toml(tmp_path, "[riks]\nmax_leverage = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.field.startswith("riks")


@pytest.mark.parametrize("name", ["SCALER_FOO", "SCALER_RISK__MAX_LEVERAG", "SCALER_API__TOKN"])
def test_unknown_scaler_env_var_raises_naming_it(name: str) -> None:
    """An unknown SCALER_ variable is a ConfigError naming the variable."""
    error = _config_error(**{name: "1"})
    assert error.field == name
    assert name in str(error)


def test_unrelated_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables without the SCALER_ prefix never matter."""
    monkeypatch.setenv("SCALERX", "1")
    monkeypatch.setenv("OTHER_RISK__MAX_LEVERAGE", "-1")
    assert load_settings().risk.max_leverage == 10.0


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"SCALER_RISK__MAX_LEVERAGE": "-1"}, "risk.max_leverage"),
        ({"SCALER_RISK__MAX_LEVERAGE": "abc"}, "risk.max_leverage"),
        ({"SCALER_RISK__MAX_LEVERAGE": "nan"}, "risk.max_leverage"),
        ({"SCALER_STRATEGY__TARGET_LEVERAGE": "0"}, "strategy.target_leverage"),
        ({"SCALER_STRATEGY__TARGET_LEVERAGE": "101"}, "strategy.target_leverage"),
        ({"SCALER_STRATEGY__SIDE": "sideways"}, "strategy.side"),
        ({"SCALER_RISK__GAP_THRESHOLD": "1.5"}, "risk.gap_threshold"),
        ({"SCALER_API__PORT": "70000"}, "api.port"),
        ({"SCALER_VENUE": "nowhere"}, "venue"),
        ({"SCALER_LOG__LEVEL": "loud"}, "log.level"),
        ({"SCALER_EXECUTION__CLIENT_ID_PREFIX": "bad-prefix"}, "execution.client_id_prefix"),
        ({"SCALER_TICK_INTERVAL_S": "0"}, "tick_interval_s"),
        ({"SCALER_STRATEGY__TARGET_VOL_ANNUAL": "-1"}, "strategy.target_vol_annual"),
    ],
)
def test_invalid_value_raises_naming_the_field(env: dict[str, str], field: str) -> None:
    """An out-of-range or malformed value is a ConfigError naming the dotted field."""
    error = _config_error(**env)
    assert error.field == field
    assert str(error).startswith(f"{field}: ")


def test_invalid_value_in_toml_raises_naming_the_field(tmp_path: Path) -> None:
    """A bad value in the TOML file is a ConfigError naming the field, like one from the env."""
    path = _toml(tmp_path, "[execution]\nmax_slice_usd = -5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.field == "execution.max_slice_usd"


def test_missing_config_file_raises() -> None:
    """A config path that does not exist is a ConfigError, not a silent default."""
    with pytest.raises(ConfigError) as caught:
        load_settings(Path("does-not-exist.toml"))
    assert caught.value.field == "config"


def test_toml_syntax_error_raises(tmp_path: Path) -> None:
    """A TOML file that does not parse is a ConfigError."""
    path = _toml(tmp_path, "[risk\nmax_leverage = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.field == "config"


def test_replay_feed_without_bars_path_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """paper.feed = replay without paper.replay_bars_path is a ConfigError naming paper."""
    monkeypatch.setenv("SCALER_PAPER__FEED", "replay")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.field == "paper"
    assert "replay_bars_path" in caught.value.problem


def test_replay_feed_with_bars_path_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """paper.feed = replay with a bars path is accepted."""
    monkeypatch.setenv("SCALER_PAPER__FEED", "replay")
    monkeypatch.setenv("SCALER_PAPER__REPLAY_BARS_PATH", "bars.csv")
    settings = load_settings()
    assert settings.paper.feed is FeedKind.REPLAY
    assert settings.paper.replay_bars_path == Path("bars.csv")


def test_stop_pair_must_be_set_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """strategy.stop_distance without strategy.max_loss_fraction is a ConfigError."""
    monkeypatch.setenv("SCALER_STRATEGY__STOP_DISTANCE", "0.1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.field == "strategy"


def test_no_cap_can_be_configured_explicitly(tmp_path: Path) -> None:
    """The documented "no cap" (inf) of the risk caps can be written back, but NaN cannot."""
    path = _toml(tmp_path, "[risk]\nmax_position_usd = inf\nmax_notional_coin = inf\n")
    settings = load_settings(path)
    assert settings.risk.max_position_usd == math.inf
    assert settings.risk.max_notional_coin == math.inf
    with pytest.raises(ConfigError) as caught:
        load_settings(_toml(tmp_path, "[risk]\nmax_position_usd = nan\n", "nan.toml"))
    assert caught.value.field == "risk.max_position_usd"


def test_redacted_never_contains_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """redacted() shows the token as asterisks and its JSON never contains the secret."""
    monkeypatch.setenv("SCALER_API__TOKEN", SECRET)
    settings = load_settings()
    assert settings.api.token is not None
    assert settings.api.token.get_secret_value() == SECRET
    data = redacted(settings)
    assert data["api"]["token"] == "**********"
    assert SECRET not in json.dumps(data)
    assert SECRET not in repr(data)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_redacted_without_a_token_is_null() -> None:
    """With no token configured, redacted() reports none rather than a placeholder."""
    assert redacted(load_settings())["api"]["token"] is None


def test_redacted_is_strict_json() -> None:
    """redacted() is plain data that serialises to RFC 8259 JSON (no Infinity/NaN)."""
    json.dumps(redacted(load_settings()), allow_nan=False)


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the settings nor a nested section can be changed after loading."""
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.mode = ModeSetting.RECOMMEND  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.risk.max_leverage = 99.0  # type: ignore[misc]
    assert settings.risk.max_leverage == 10.0
    assert isinstance(settings, Settings)


def test_mainnet_needs_an_explicit_opt_in() -> None:
    error = _config_error(SCALER_VENUE="bybit", SCALER_EXCHANGE__TESTNET="false")
    assert error.field == "exchange"
    assert "allow_mainnet" in error.problem


def test_mainnet_with_the_opt_in_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_EXCHANGE__TESTNET", "false")
    monkeypatch.setenv("SCALER_EXCHANGE__ALLOW_MAINNET", "true")
    assert load_settings().exchange.testnet is False


def test_an_api_key_without_its_secret_is_refused() -> None:
    error = _config_error(SCALER_EXCHANGE__API_KEY="key-only")
    assert error.field == "exchange"


def test_every_venue_and_sim_secret_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "SCALER_EXCHANGE__API_KEY": "venue-key-5f1e",
        "SCALER_EXCHANGE__API_SECRET": "venue-secret-77aa",
        "SCALER_EXCHANGE__PASSWORD": "venue-pass-0b0b",
        "SCALER_SIM__API_KEY": "sim-key-1234",
        "SCALER_SIM__API_SECRET": "sim-secret-9876",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    text = json.dumps(redacted(load_settings()))
    for value in values.values():
        assert value not in text
    assert text.count("**********") == len(values)


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "at least 16 characters"),
        ("a", "at least 16 characters"),
        ("fifteen-chars-x", "at least 16 characters"),
        ("sixteen chars ok", "printable ASCII without spaces"),
        ("sixteen-chars-ok\t", "printable ASCII without spaces"),
        ("sixteen-chars-\u00e9\u00e9", "printable ASCII without spaces"),
    ],
    ids=["empty", "one-char", "fifteen", "inner-space", "tab", "non-ascii"],
)
def test_api_token_when_short_or_unsendable_then_config_error_naming_api_token(
    token: str, problem: str
) -> None:
    """A configured token is at least as long as the generated one and fits in a header as is;
    the error names ``api.token`` and never shows the value."""
    error = _config_error(SCALER_API__TOKEN=token)
    assert error.field == "api.token"
    assert problem in str(error)
    if len(token) > 3:  # a one-letter "token" is in any sentence
        assert token not in str(error)


def test_api_token_of_sixteen_printable_characters_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen printable ASCII characters are the shortest token accepted."""
    monkeypatch.setenv("SCALER_API__TOKEN", "0123456789abcdef")
    token = load_settings().api.token
    assert token is not None
    assert token.get_secret_value() == "0123456789abcdef"
