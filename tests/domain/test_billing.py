"""Which plan a subscription's state gives: live statuses keep the paid plan, ended ones fall to free."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.billing import FREE, PLANS, TRIAL, is_live, plan_after

PRICES = {"starter": "price_starter", "pro": "price_pro"}
STATUSES = ["active", "trialing", "past_due", "canceled", "unpaid", "incomplete", "incomplete_expired", "paused"]


@pytest.mark.parametrize(("status", "price", "current", "plan"), [
    ("active", "price_pro", TRIAL, "pro"),
    ("trialing", "price_starter", FREE, "starter"),
    ("past_due", "price_pro", "pro", "pro"),  # Stripe is retrying the card: keep what they paid for
    ("active", "price_from_the_dashboard", "starter", "starter"),  # unknown price: no guess
    ("incomplete", "price_pro", TRIAL, TRIAL),  # first payment not through yet
    ("canceled", "price_pro", "pro", FREE),
    ("unpaid", "price_pro", "pro", FREE),
    ("incomplete_expired", "price_pro", TRIAL, FREE),
])
def test_a_subscription_state_gives_a_plan(status: str, price: str, current: str, plan: str) -> None:
    assert plan_after(status, price, PRICES, current) == plan


@given(st.sampled_from(STATUSES), st.sampled_from([*PRICES.values(), None, "price_other"]),
       st.sampled_from(sorted(PLANS)))
def test_the_plan_is_always_a_known_one_and_paid_only_while_live(status: str, price: str | None, current: str) -> None:
    plan = plan_after(status, price, PRICES, current)
    assert plan in PLANS
    if plan != current and plan in PRICES:
        assert is_live(status)
