"""Plans and what a Stripe subscription's state means for an organisation's plan. Pure.

Stripe is the source of truth for payment; this module decides, from a subscription's status and price,
which plan the organisation is on. A failing payment keeps the paid plan while Stripe retries (it moves
the subscription to ``past_due``); only an ended subscription drops the organisation to ``free``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["FREE", "PAID_PLANS", "PLANS", "TRIAL", "PlanSpec", "is_live", "plan_after"]


@dataclass(frozen=True)
class PlanSpec:
    """A plan as shown to customers: monthly price (informational; Stripe's price is what is charged) and limits."""

    key: str
    name: str
    monthly_usd: int
    agents: int
    monthly_messages: int


TRIAL: Final = "trial"
FREE: Final = "free"
PLANS: Final[dict[str, PlanSpec]] = {
    TRIAL: PlanSpec(TRIAL, "Trial", 0, agents=1, monthly_messages=500),
    FREE: PlanSpec(FREE, "Free", 0, agents=1, monthly_messages=100),
    "starter": PlanSpec("starter", "Starter", 49, agents=3, monthly_messages=5_000),
    "pro": PlanSpec("pro", "Pro", 199, agents=20, monthly_messages=50_000),
}
PAID_PLANS: Final = ("starter", "pro")

# Stripe subscription statuses under which the customer keeps what they pay for. ``past_due``: a payment
# failed and Stripe is retrying it (smart retries, dunning emails); cutting access then would punish a
# card that expired yesterday.
_LIVE = frozenset({"active", "trialing", "past_due"})


def is_live(status: str) -> bool:
    """Whether a subscription in ``status`` still grants its plan."""
    return status in _LIVE


def plan_after(status: str, price_id: str | None, prices: dict[str, str], current: str) -> str:
    """The organisation's plan once its subscription is in ``status`` with ``price_id``.

    ``prices`` maps plan keys to Stripe price ids. A live subscription on a price we do not sell (an old
    price, or one created in the Stripe dashboard) keeps the current plan rather than guessing.
    ``incomplete`` (first payment not done yet) changes nothing either.
    """
    if status == "incomplete":
        return current
    if not is_live(status):
        return FREE
    by_price = {price: plan for plan, price in prices.items()}
    return by_price.get(price_id or "", current)
