"""The ``scaler`` command.

    scaler run [--config FILE]               the daemon (paper exchange by default)
    scaler replay --bars PATH [--funding PATH] [--from ISO] [--to ISO]
                  [--baseline-leverage L ...] [--baseline-band F] [--out DIR] [--no-plots]
                                             the configured policy vs constant-leverage
                                             baselines on recorded bars: table, JSON, plots
    scaler funding-forecast PATH... [--half-life H ...] [--horizon-h H ...] [--select-horizon-h H]
                                             the funding predictor vs the last rate on recorded
                                             funding: RMSE per half-life and horizon
    scaler check [--config FILE] [--connect] validate and print the effective, redacted settings
    scaler status [--json]                   what the running daemon is doing
    scaler mode auto|recommend               send orders, or only recommend
    scaler halt | scaler resume              the operator's kill switch
    scaler override [--duration-s N]         proceed on the last known funding rate for N s
    scaler exchange-sim                      serve the paper exchange in the Deribit v2 dialect
                                             on 127.0.0.1 (a local testnet for the ccxt path)

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage (one line naming the
field), 130 forced exit on a second signal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scaler.config import Settings, load_settings, redacted
from scaler.errors import ConfigError

TOKEN_FILE = "control-token"  # noqa: S105 - a file name, not a secret


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scaler", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="TOML settings file (or SCALER_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon")
    _replay_parser(sub)
    _funding_forecast_parser(sub)
    check = sub.add_parser("check", help="validate and print the effective settings")
    check.add_argument("--connect", action="store_true", help="also reach the venue")
    status = sub.add_parser("status", help="show the running daemon's state")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    mode = sub.add_parser("mode", help="switch between auto and recommend")
    mode.add_argument("mode", choices=["auto", "recommend"])
    sub.add_parser("halt", help="halt trading until resumed")
    sub.add_parser("resume", help="resume after a halt; accepts a price jump not yet confirmed")
    override = sub.add_parser("override", help="proceed on the last known funding rate")
    override.add_argument("--duration-s", type=float, default=600.0)
    sub.add_parser("exchange-sim", help="serve a local Deribit-dialect exchange")
    return parser


def _replay_parser(sub: Any) -> None:
    replay = sub.add_parser("replay", help="replay recorded bars through the daemon's policy")
    replay.add_argument(
        "--bars", type=Path, required=True, metavar="PATH", help="1-minute bar CSV (or .gz)"
    )
    replay.add_argument("--funding", type=Path, metavar="PATH", help="funding history CSV (or .gz)")
    replay.add_argument(
        "--from", dest="from_ns", type=_iso_ns, metavar="ISO", help="start, ISO 8601 (UTC)"
    )
    replay.add_argument(
        "--to", dest="to_ns", type=_iso_ns, metavar="ISO", help="end (excluded), ISO 8601"
    )
    replay.add_argument(
        "--baseline-leverage",
        type=_positive,
        nargs="*",
        default=[20.0],
        metavar="L",
        help="constant-leverage baselines to compare (default 20; none with no value)",
    )
    replay.add_argument(
        "--baseline-band",
        type=_fraction,
        metavar="F",
        help="baselines rebalance when |target - position| > F x |target| "
        "(default: risk.dead_band_fraction)",
    )
    replay.add_argument(
        "--out", type=Path, default=Path("replay-out"), metavar="DIR", help="report directory"
    )
    replay.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _funding_forecast_parser(sub: Any) -> None:
    from scaler.service import funding_forecast as ff  # noqa: PLC0415 - keeps client commands light

    forecast = sub.add_parser(
        "funding-forecast", help="score the funding predictor on recorded funding histories"
    )
    forecast.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH", help="funding history CSV (or .gz)"
    )
    forecast.add_argument(
        "--half-life",
        dest="half_lives",
        type=_positive,
        nargs="+",
        default=list(ff.DEFAULT_HALF_LIVES),
        metavar="H",
        help="EMA half-lives to score, in funding intervals (the configured one is added)",
    )
    forecast.add_argument(
        "--horizon-h",
        dest="horizons_h",
        type=_positive,
        nargs="+",
        default=list(ff.DEFAULT_HORIZONS_H),
        metavar="H",
        help="holding horizons in hours, besides the next observation",
    )
    forecast.add_argument(
        "--select-horizon-h",
        type=_positive,
        default=ff.DEFAULT_SELECT_HORIZON_H,
        metavar="H",
        help="the horizon the half-life is chosen for (default 24)",
    )


def _funding_forecast(args: argparse.Namespace, settings: Settings) -> int:
    from scaler.app import engine_config  # noqa: PLC0415 - keeps client commands light
    from scaler.service import funding_forecast as ff  # noqa: PLC0415

    options = ff.ForecastOptions(
        paths=tuple(args.paths),
        half_lives=tuple(args.half_lives),
        horizons_h=tuple(args.horizons_h),
        select_horizon_h=args.select_horizon_h,
    )
    return ff.run(options, engine_config(settings).funding, sys.stdout)


def _iso_ns(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1_000


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be in [0, 1): {text!r}")
    return value


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from scaler.app import run_replay  # noqa: PLC0415 - keeps client commands light
    from scaler.service.replay import ReplayOptions  # noqa: PLC0415

    options = ReplayOptions(
        bars_path=args.bars,
        funding_path=args.funding,
        from_ns=args.from_ns,
        to_ns=args.to_ns,
        baseline_leverages=tuple(args.baseline_leverage),
        baseline_band_fraction=args.baseline_band,
        out_dir=args.out,
        plots=not args.no_plots,
    )
    return run_replay(settings, options, sys.stdout, sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        return _dispatch(args, settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        from scaler.app import run_daemon  # noqa: PLC0415 - keeps client commands light

        return run_daemon(settings)
    if args.command == "replay":
        return _replay(args, settings)
    if args.command == "funding-forecast":
        return _funding_forecast(args, settings)
    if args.command == "exchange-sim":
        from scaler.app import run_exchange_sim  # noqa: PLC0415

        return run_exchange_sim(settings)
    if args.command == "check":
        print(json.dumps(redacted(settings), indent=2, sort_keys=True))
        if args.connect:
            from scaler.app import check_connection  # noqa: PLC0415

            return asyncio.run(check_connection(settings))
        return 0
    if args.command == "status":
        return _status(settings, as_json=args.json)
    if args.command == "mode":
        return _post(settings, "/mode", {"mode": args.mode})
    if args.command == "override":
        return _post(settings, "/override", {"duration_s": args.duration_s})
    return _post(settings, f"/{args.command}", {})


def read_token(settings: Settings) -> str | None:
    """The control token: from the settings, else the file the daemon generated."""
    if settings.api.token is not None:
        return settings.api.token.get_secret_value()
    path = settings.state_dir / TOKEN_FILE
    return path.read_text().strip() if path.is_file() else None


def _url(settings: Settings, path: str) -> str:
    return f"http://{settings.api.host}:{settings.api.port}{path}"


def _request(settings: Settings, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    data = None
    if body is not None:
        token = read_token(settings)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode()
    request = urllib.request.Request(_url(settings, path), data=data, headers=headers)  # noqa: S310 - URL built from settings
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _post(settings: Settings, path: str, body: dict[str, Any]) -> int:
    try:
        status, payload = _request(settings, path, body)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        print(f"scaler: cannot reach the daemon at {_url(settings, '')}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(payload, sort_keys=True))
    return 0 if status == 200 else 1


def _status(settings: Settings, *, as_json: bool) -> int:
    try:
        _, payload = _request(settings, "/status", None)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        print(f"scaler: cannot reach the daemon at {_url(settings, '')}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(payload, indent=2, sort_keys=True) if as_json else format_status(payload))
    return 0


def format_status(payload: dict[str, Any]) -> str:
    """A short human view of /status."""
    lines = [f"mode {payload.get('mode')}   state {payload.get('trading_state')}"]
    for item in payload.get("instruments", []):
        lines.append(
            f"{item.get('venue')}:{item.get('symbol')}  mark {_num(item.get('mark_price'))}"
            f"  target {_num(item.get('target_usd'))}"
            f"  recommended {_num(item.get('recommended_usd'))}"
            f"  actual {_num(item.get('actual_usd'))} USD"
        )
        lines.append(
            f"  state {item.get('trading_state')}  equity {_num(item.get('equity_coin'), 8)}"
            f"  margin ratio {_num(item.get('margin_ratio'))}"
            f"  liq {_num(item.get('liquidation_price'))}"
            f" ({_num(item.get('liquidation_distance'), 4)})"
        )
        lines.append(
            f"  funding observed {_num(item.get('funding_observed'), 8)}"
            f"  EMA {_num(item.get('funding_ema'), 8)}"
            f"  venue {_num(item.get('funding_venue_predicted'), 8)}"
            f"  predicted {_num(item.get('funding_predicted'), 8)}"
        )
        reasons = item.get("reasons") or []
        if reasons:
            lines.append("  reasons " + ", ".join(reasons))
    return "\n".join(lines)


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "-"


if __name__ == "__main__":
    sys.exit(main())
