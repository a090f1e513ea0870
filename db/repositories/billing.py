"""Billing rows: the organisation's Stripe customer and its subscriptions.

Tenant-scoped except :func:`org_for_customer`, which the Stripe webhook path needs to find whose event it is.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import Organization, Subscription
from db.pagination import Page, paginate


async def org_for_customer(session: AsyncSession, customer_id: str) -> uuid.UUID | None:
    """The organisation a Stripe customer pays for."""
    return await session.scalar(select(Organization.id).where(Organization.stripe_customer_id == customer_id))


class BillingRepository:
    """The organisation row's billing fields and its subscription history."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def organization(self, *, for_update: bool = False) -> Organization | None:
        """The organisation (locked with ``for_update``: plan changes and customer creation serialise on it)."""
        stmt = select(Organization).where(Organization.id == self.org_id)
        return await self.session.scalar(stmt.with_for_update() if for_update else stmt)

    async def current(self) -> Subscription | None:
        """The most recently created subscription (live or not)."""
        return await self.session.scalar(
            select(Subscription).where(Subscription.org_id == self.org_id)
            .order_by(Subscription.created_at.desc(), Subscription.id.desc()).limit(1))

    async def list(self, *, limit: int, cursor: str | None) -> Page[Subscription]:
        """Subscriptions, newest first."""
        stmt = select(Subscription).where(Subscription.org_id == self.org_id)
        return await paginate(self.session, stmt, Subscription, limit=limit, cursor=cursor)

    async def upsert(self, stripe_subscription_id: str, values: dict[str, Any]) -> None:
        """Insert or overwrite the subscription as Stripe describes it now."""
        base = insert(Subscription).values(id=uuid.uuid4(), org_id=self.org_id,
                                           stripe_subscription_id=stripe_subscription_id, **values)
        await self.session.execute(base.on_conflict_do_update(
            index_elements=[Subscription.stripe_subscription_id],
            set_={**{k: getattr(base.excluded, k) for k in values}, "updated_at": utcnow()},
            # A subscription id is Stripe's and global: never move one between organisations.
            where=Subscription.org_id == self.org_id,
        ))
