"""Billing: an organisation's Stripe subscriptions, as Stripe last told us."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class Subscription(RecordMixin, TenantMixin, Base):
    """One Stripe subscription of an organisation; a cancelled one stays as history."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_org_created", "org_id", "created_at", "id"),)

    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255))
    plan: Mapped[str] = mapped_column(String(32))
    price_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # Stripe's own status (active, trialing, past_due, canceled, unpaid, incomplete...), kept verbatim.
    status: Mapped[str] = mapped_column(String(32))
    current_period_end: Mapped[datetime | None] = mapped_column(default=None)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
