"""Pins the public API of ``scaler.domain``: a removal or rename is a deliberate, visible change."""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.unit

PUBLIC = {
    "scaler.domain.inverse": {
        "position_value_coin",
        "pnl_coin",
        "average_entry_price",
        "initial_margin_coin",
        "maintenance_margin_coin",
        "liquidation_price",
        "bankruptcy_price",
        "funding_payment_coin",
        "fee_coin",
        "margin_ratio",
        "effective_leverage",
        "liquidation_distance",
        "TierBasis",
        "RiskTier",
        "MarginRequirement",
        "TierTable",
        "LinearMargin",
        "MarginSchedule",
        "schedule_maintenance_margin_coin",
        "schedule_liquidation_price",
    },
    "scaler.domain.funding": {
        "FundingPredictorConfig",
        "FundingPredictorState",
        "FundingPrediction",
        "normalise_rate",
        "observe",
        "predict",
        "report",
    },
    "scaler.domain.sizing": {
        "Side",
        "SizingLimit",
        "SizingConfig",
        "VolatilityState",
        "SizingResult",
        "raw_target_usd",
        "round_to_lots",
        "risk_per_trade_cap_usd",
        "update_volatility",
        "annualised_vol",
        "compute_target",
    },
    "scaler.domain.risk": {
        "RiskInputs",
        "RiskState",
        "RiskDecision",
        "RiskLimits",
        "Rule",
        "Reason",
        "RuleAction",
        "halt",
        "resume",
        "override_funding",
        "clear_override",
        "evaluate",
    },
    "scaler.domain.validation": {"BadInput", "validate_market", "validate_account"},
    "scaler.domain.planning": {
        "ExecutionStyle",
        "PlanningConfig",
        "Plan",
        "client_order_id",
        "parse_client_order_id",
        "depth_within_usd",
        "protection_price",
        "plan_orders",
    },
    "scaler.domain.types": {
        "TradingState",
        "Mode",
        "InstrumentKey",
        "MarketSnapshot",
        "AccountSnapshot",
    },
    "scaler.domain.orders": {
        "OrderSide",
        "OrderType",
        "OrderStatus",
        "Liquidity",
        "OrderRequest",
        "OrderUpdate",
        "Fill",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_domain_module_exports_its_public_names(module_name: str) -> None:
    """Every pinned name exists in its module."""
    module = importlib.import_module(module_name)
    missing = sorted(name for name in PUBLIC[module_name] if not hasattr(module, name))
    assert missing == []


def test_issue_signatures_of_the_contract_maths_are_positional() -> None:
    """The maths functions take their quantities in the documented order."""
    from scaler.domain import inverse

    assert inverse.liquidation_price(1_000, 8_000, 0.01, 0.01) == pytest.approx(
        7481.481481, rel=1e-9
    )
    assert inverse.bankruptcy_price(1_000, 8_000, 0.01) == pytest.approx(7407.407407, rel=1e-9)
    assert inverse.maintenance_margin_coin(10_000, 25_000, 0.004) == pytest.approx(0.0016)
