"""Builds the published :class:`DecisionRecord` from one step's values."""

from __future__ import annotations

from scaler.domain import inverse
from scaler.domain.funding import FundingPrediction
from scaler.domain.inverse import MarginSchedule
from scaler.domain.records import DecisionRecord
from scaler.domain.risk import RiskDecision
from scaler.domain.sizing import SizingResult
from scaler.domain.types import NS_PER_S, AccountSnapshot, InstrumentKey, MarketSnapshot, Mode


def build_record(
    key: InstrumentKey,
    schedule: MarginSchedule,
    market: MarketSnapshot | None,
    account: AccountSnapshot | None,
    decision: RiskDecision,
    sizing: SizingResult | None,
    prediction: FundingPrediction,
    mode: Mode,
    now_ns: int,
) -> DecisionRecord:
    """Everything /status, the metrics and the decision log show for this step."""
    mark = market.mark_price if market else None
    equity = account.equity_coin if account else None
    ratio = leverage = liq_price = liq_distance = None
    if market is not None and account is not None:
        position = account.position_usd
        mm = account.maintenance_margin_coin
        if mm is None:
            mm = inverse.schedule_maintenance_margin_coin(schedule, position, market.mark_price)
        ratio = inverse.margin_ratio(account.equity_coin, mm)
        leverage = inverse.effective_leverage(position, market.mark_price, account.equity_coin)
        liq_price = account.liquidation_price
        if liq_price is None and position != 0.0 and account.entry_price is not None:
            liq_price = inverse.schedule_liquidation_price(
                position,
                account.entry_price,
                max(0.0, account.wallet_balance_coin),
                schedule,
            )
        liq_distance = inverse.liquidation_distance(market.mark_price, liq_price, position)
    return DecisionRecord(
        key=key,
        ts_ns=now_ns,
        mode=mode,
        trading_state=decision.trading_state,
        mark_price=mark,
        index_price=market.index_price if market else None,
        funding_observed=market.funding_rate if market else None,
        funding_predicted=prediction.rate,
        target_usd=sizing.target_usd if sizing else decision.current_position_usd,
        recommended_usd=decision.allowed_target_usd,
        actual_usd=decision.current_position_usd,
        equity_coin=equity,
        margin_ratio=ratio,
        effective_leverage=leverage,
        liquidation_price=liq_price,
        liquidation_distance=liq_distance,
        reasons=tuple(a.reason.value for a in decision.actions),
        rules=tuple(a.rule.value for a in decision.actions),
        details=tuple(a.detail for a in decision.actions),
        latency_s=None,
        feed_age_s=_feed_ages(market, account, now_ns),
        funding_ema=prediction.ema_rate,
        funding_venue_predicted=prediction.venue_predicted_rate,
    )


def _feed_ages(
    market: MarketSnapshot | None, account: AccountSnapshot | None, now_ns: int
) -> dict[str, float | None]:
    return {
        "mark": (now_ns - market.ts_recv_ns) / NS_PER_S if market else None,
        "funding": (now_ns - market.ts_funding_ns) / NS_PER_S if market else None,
        "account": (now_ns - account.ts_ns) / NS_PER_S if account else None,
    }
