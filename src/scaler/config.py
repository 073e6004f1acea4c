"""Settings: typed, frozen, strict, with units in every name.

Sources, highest priority first: environment variables ``SCALER_...`` (``__`` separates nesting
levels, e.g. ``SCALER_RISK__MAX_LEVERAGE=5``), a ``.env`` file in the working directory, a TOML
file given by ``--config`` or ``SCALER_CONFIG``, then the embedded defaults (paper exchange,
synthetic market), which run with no configuration at all.

A key that does not exist is an error, in the TOML file and in ``SCALER_`` variables alike: a
typo never falls back silently to a default. :func:`load_settings` turns every problem into a
:class:`~scaler.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import enum
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from scaler.errors import ConfigError

ENV_PREFIX = "SCALER_"
CONFIG_ENV = "SCALER_CONFIG"

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class Section(BaseModel):
    """Base of every nested section: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Venue(enum.StrEnum):
    PAPER = "paper"
    DERIBIT = "deribit"
    BYBIT = "bybit"
    OKX = "okx"
    BINANCECOINM = "binancecoinm"
    KRAKENFUTURES = "krakenfutures"


class PositionSide(enum.StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is PositionSide.LONG else -1


class FeedKind(enum.StrEnum):
    SYNTHETIC = "synthetic"
    REPLAY = "replay"


class FeedPace(enum.StrEnum):
    WALL = "wall"
    FAST = "fast"


class ExecutionStyleSetting(enum.StrEnum):
    MARKETABLE = "marketable"
    PASSIVE = "passive"


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class ModeSetting(enum.StrEnum):
    AUTO = "auto"
    RECOMMEND = "recommend"


class InstrumentSettings(Section):
    symbol: str = Field(default="BTC/USD:BTC", min_length=3)
    lot_size_usd: PositiveFloat = 10.0
    tick_size: PositiveFloat = 0.5
    funding_interval_s: PositiveFloat = 28_800.0
    maintenance_margin_rate: Fraction = 0.005
    """Base maintenance rate; the paper exchange adds tiers above ``tier_step_coin``."""
    tier_step_coin: PositiveFloat = 150.0
    tier_rate_step: NonNegFloat = 0.005


class StrategySettings(Section):
    side: PositionSide = PositionSide.LONG
    target_leverage: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 3.0
    min_denominator: Annotated[float, Field(gt=0, le=1)] = 0.5
    target_vol_annual: PositiveFloat | None = None
    vol_half_life_s: PositiveFloat = 3_600.0
    max_loss_fraction: Fraction | None = None
    stop_distance: Fraction | None = None

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.max_loss_fraction is None) != (self.stop_distance is None):
            raise ValueError("max_loss_fraction and stop_distance are set together or not at all")
        return self


class FundingSettings(Section):
    half_life_intervals: PositiveFloat = 2.0
    venue_weight: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_abs_rate: PositiveFloat = 0.05


class RiskSettings(Section):
    stale_mark_after_s: PositiveFloat = 5.0
    stale_funding_after_s: PositiveFloat = 600.0
    stale_account_after_s: PositiveFloat = 30.0
    max_abs_funding_rate: PositiveFloat = 0.05
    gap_threshold: Fraction = 0.02
    gap_window_s: PositiveFloat = 10.0
    max_index_divergence: Fraction = 0.03
    breaker_cooldown_s: PositiveFloat = 2.0
    mm_buffer: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    max_position_usd: Annotated[float, Field(gt=0)] = math.inf
    max_notional_coin: Annotated[float, Field(gt=0)] = math.inf
    max_leverage: PositiveFloat = 10.0
    min_liquidation_distance: Annotated[float, Field(ge=0, lt=1)] = 0.15
    daily_loss_limit_fraction: Fraction = 0.10
    dead_band_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.005
    dead_band_min_usd: NonNegFloat = 0.0
    max_spread_bps: PositiveFloat = 50.0
    price_confirm_base_s: PositiveFloat = 2.0
    price_confirm_max_s: PositiveFloat = 900.0
    price_confirm_tolerance: Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False)] = 0.01
    max_mark_index_ratio: Annotated[float, Field(gt=1)] = 1.5
    max_mark_move_ratio: Annotated[float, Field(gt=1)] = 3.0
    mark_move_window_s: NonNegFloat = 300.0
    override_max_s: PositiveFloat = 3_600.0
    """Longest funding override an operator may grant in one call."""

    @model_validator(mode="after")
    def _confirm_window(self) -> Self:
        if self.price_confirm_max_s < self.price_confirm_base_s:
            raise ValueError("price_confirm_max_s must be >= price_confirm_base_s")
        return self

    # math.inf is a legitimate "no cap"; pydantic's allow_inf_nan=False would refuse it.
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=True, ser_json_inf_nan="strings"
    )


class ExecutionSettings(Section):
    style: ExecutionStyleSetting = ExecutionStyleSetting.MARKETABLE
    max_slice_usd: PositiveFloat = 50_000.0
    max_slippage_bps: PositiveFloat = 20.0
    order_ttl_s: PositiveFloat = 10.0
    max_orders_per_s: PositiveFloat = 5.0
    client_id_prefix: str = Field(default="scl", pattern=r"^[A-Za-z0-9_]{1,16}$")
    cancel_on_shutdown: bool = True
    shutdown_deadline_s: PositiveFloat = 10.0


class PaperSettings(Section):
    initial_balance_coin: PositiveFloat = 1.0
    maker_fee_rate: Annotated[float, Field(ge=-0.01, le=0.01)] = 0.0
    taker_fee_rate: Annotated[float, Field(ge=-0.01, le=0.01)] = 0.0005
    max_leverage: PositiveFloat = 50.0
    feed: FeedKind = FeedKind.SYNTHETIC
    pace: FeedPace = FeedPace.WALL
    seed: int = 7
    start_price: PositiveFloat = 50_000.0
    tick_interval_s: PositiveFloat = 0.25
    replay_bars_path: Path | None = None
    replay_funding_path: Path | None = None

    @model_validator(mode="after")
    def _replay_needs_bars(self) -> Self:
        if self.feed is FeedKind.REPLAY and self.replay_bars_path is None:
            raise ValueError("feed = 'replay' needs replay_bars_path")
        return self


class ExchangeSettings(Section):
    """How the daemon reaches a ccxt venue (every field is ignored when ``venue = 'paper'``)."""

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    password: SecretStr | None = None
    """The API passphrase, for venues that have one (OKX)."""
    testnet: bool = True
    """Trade on the venue's testnet (Binance COIN-M: demo trading). ``false`` means mainnet."""
    allow_mainnet: bool = False
    """Must be ``true`` for ``testnet = false``: mainnet is never reached by accident."""
    url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    """Base REST URL replacing the venue's (e.g. ``scaler exchange-sim`` on 127.0.0.1)."""
    ws_url: str | None = Field(default=None, pattern=r"^wss?://[^\s]+$")
    """Websocket URL replacing the venue's; derived from ``url`` for deribit when unset."""
    markets_path: Path | None = None
    """A JSON snapshot of the venue's markets, loaded instead of calling the venue."""
    websocket: bool = True
    """Stream tickers and books through ccxt.pro; ``false`` polls REST only."""
    poll_interval_s: PositiveFloat = 1.0
    """REST polling period when the stream is off or has gone silent."""
    stream_silence_s: PositiveFloat = 3.0
    """A stream with no message for this long falls back to REST polling until it recovers."""
    account_interval_s: PositiveFloat = 2.0
    """How often balance and position are read from the venue."""
    timeout_s: PositiveFloat = 10.0
    """Per-request timeout of the ccxt client."""
    read_retries: Annotated[int, Field(ge=0, le=10)] = 3
    """Retries of a read (ticker, balance, orders) on a transient error, with backoff."""
    retry_backoff_s: PositiveFloat = 0.25
    """First retry delay; doubled on every further attempt."""

    @model_validator(mode="after")
    def _mainnet_opt_in(self) -> Self:
        if not self.testnet and not self.allow_mainnet and self.url is None:
            raise ValueError("testnet = false trades real money: set allow_mainnet = true")
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("api_key and api_secret are set together or not at all")
        return self


class SimFaultSettings(Section):
    """Faults ``scaler exchange-sim`` injects; all can also be changed at runtime."""

    latency_ms: NonNegFloat = 0.0
    """Added to every REST response."""
    error_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    """Fraction of REST requests that fail, split evenly between 429, 5xx and timeouts."""
    timeout_s: PositiveFloat = 15.0
    """How long a request chosen to time out is held before its connection is dropped."""
    reject_order_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    """Fraction of new orders refused with a venue error."""
    drop_ws_after_s: PositiveFloat | None = None
    """Close every websocket this long after it opened."""
    stall_feed: bool = False
    """Stop the market: no ticks pushed, REST tickers frozen."""


class SimSettings(Section):
    """``scaler exchange-sim``: the paper exchange served in the Deribit v2 dialect."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8900
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    """The one accepted key pair; when unset, one is generated into ``state_dir``."""
    faults: SimFaultSettings = SimFaultSettings()

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("api_key and api_secret are set together or not at all")
        return self


TOKEN_MIN_CHARS = 16
"""The shortest control token accepted; the generated one is 43 characters."""
MaxConnections = Annotated[int, Field(ge=1, le=4096)]
HeaderTimeoutS = Annotated[float, Field(gt=0, le=3_600, allow_inf_nan=False)]


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8787
    token: SecretStr | None = None
    """Bearer token for mutating calls; when unset, one is generated into ``state_dir``."""
    max_connections: MaxConnections = 32
    """Open connections at most; beyond, the oldest idle one is closed for the new one."""
    header_timeout_s: HeaderTimeoutS = 10.0
    """A connection that sends no complete request head (or body) in this time is closed."""

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        value = token.get_secret_value()
        if len(value) < TOKEN_MIN_CHARS:
            raise PydanticCustomError(
                "token_too_short",
                "must be at least {minimum} characters (unset it to have one generated)",
                {"minimum": TOKEN_MIN_CHARS},
            )
        if not all("!" <= char <= "~" for char in value):
            raise PydanticCustomError("token_characters", "must be printable ASCII without spaces")
        return token


class MetricsSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464
    max_connections: MaxConnections = 16
    """Open connections at most; beyond, the oldest idle one is closed for the new one."""
    header_timeout_s: HeaderTimeoutS = 10.0
    """A connection that sends no complete request head in this time is closed."""


class LogSettings(Section):
    level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    format: LogFormat = LogFormat.AUTO


class Settings(BaseSettings):
    """Everything the daemon reads at start; see the module docstring for the sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        frozen=True,
    )

    mode: ModeSetting = ModeSetting.AUTO
    """Initial mode; a mode set at runtime is persisted and wins over this on restart."""
    venue: Venue = Venue.PAPER
    instance_name: str = Field(default="scaler", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    state_dir: Path = Path("var")
    tick_interval_s: PositiveFloat = 1.0
    """How often the loop re-decides when the market is quiet (it also decides on every tick)."""
    instrument: InstrumentSettings = InstrumentSettings()
    strategy: StrategySettings = StrategySettings()
    funding: FundingSettings = FundingSettings()
    risk: RiskSettings = RiskSettings()
    execution: ExecutionSettings = ExecutionSettings()
    paper: PaperSettings = PaperSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    sim: SimSettings = SimSettings()
    api: ApiSettings = ApiSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
        )

    @property
    def journal_path(self) -> Path:
        return self.state_dir / f"{self.instance_name}.sqlite3"


def _known_env_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.add(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= _known_env_paths(annotation, f"{path}__")
    return paths


def _check_env_keys(environ: dict[str, str]) -> None:
    known = _known_env_paths(Settings)
    for key in environ:
        if not key.upper().startswith(ENV_PREFIX) or key.upper() == CONFIG_ENV:
            continue
        path = key[len(ENV_PREFIX) :].lower()
        if path not in known:
            raise ConfigError(key, "unknown setting (check the spelling)")


def _field_name(error: Any) -> str:
    location = [str(part) for part in error.get("loc", ()) if not str(part).isdigit()]
    return ".".join(location) or "settings"


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from every source, or raise :class:`ConfigError` naming the field."""
    env = dict(os.environ)
    _check_env_keys(env)
    path = config_path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is not None and not path.is_file():
        raise ConfigError("config", f"file not found: {path}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid value"))
        if first.get("type") == "extra_forbidden":
            message = "unknown setting (check the spelling)"
        raise ConfigError(_field_name(first), message) from None
    except ValueError as exc:  # a TOML syntax error surfaces as a plain ValueError
        raise ConfigError("config", str(exc).splitlines()[0]) from None


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by ``'**********'``."""
    data: dict[str, Any] = json.loads(settings.model_dump_json())
    for section, name in SECRET_FIELDS:
        value = getattr(getattr(settings, section), name)
        data[section][name] = "**********" if value is not None else None
    return data


SECRET_FIELDS = (
    ("api", "token"),
    ("exchange", "api_key"),
    ("exchange", "api_secret"),
    ("exchange", "password"),
    ("sim", "api_key"),
    ("sim", "api_secret"),
)
"""Every secret setting, as (section, field); all are ``SecretStr`` and redacted everywhere."""
