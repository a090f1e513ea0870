"""Stripe events applied to our rows: the organisation's plan, its subscription history, notifications."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.webhooks import start_deliveries
from db.base import utcnow
from db.models import Organization, Subscription
from db.repositories.billing import BillingRepository, org_for_customer
from db.repositories.content import NotificationRepository
from db.repositories.kommo import InboxRepository
from db.repositories.webhooks import WebhookRepository
from domain.billing import FREE, is_live, plan_after
from integrations.stripe.client import StripeClient
from integrations.stripe.errors import StripeError
from integrations.stripe.models import Subscription as StripeSubscription
from salesflow.settings import Settings
from workflows.billing_models import BillingEventInput, BillingEventResult

# What each event tells the organisation's people, besides the plan change.
NOTICES = {
    "invoice.payment_failed": ("A payment failed", "Stripe could not charge the card on file and will retry. "
                               "Update the payment method in the billing portal to keep your plan."),
    "customer.subscription.deleted": ("Your subscription has ended", "The organisation is on the Free plan now."),
}


def stripe_client(settings: Settings, http: httpx.AsyncClient | None = None) -> StripeClient:
    """A client for the configured Stripe account; billing must be configured."""
    if not settings.stripe_api_key:
        raise ApplicationError("Stripe is not configured (SALESFLOW_STRIPE_API_KEY)", non_retryable=True)
    return StripeClient(settings.stripe_api_base_url, settings.stripe_api_key, http=http)


class BillingActivities:
    """Billing side effects, with the database and Stripe's HTTP pool injected."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 http: httpx.AsyncClient | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.http = http

    @activity.defn(name="billing.apply_event")
    async def apply_event(self, data: BillingEventInput) -> BillingEventResult:
        """Re-read the event's subscription from Stripe and bring plan, history and inbox row up to date.

        Safe to repeat: the subscription is upserted by Stripe id, notices are keyed by the event id, and
        the plan is recomputed from every subscription of the organisation rather than from this event.
        """
        async with self.sessions() as session:
            org_id = await self._org(session, data)
        if org_id is None:
            return await self._done(data, f"no organisation pays through Stripe customer {data.customer_id}", None)
        remote = await self._subscription(data.subscription_id) if data.subscription_id else None
        async with self.sessions() as session:
            repo = BillingRepository(session, org_id)
            org = await repo.organization(for_update=True)
            if org is None:
                return await self._done(data, f"organisation {org_id} no longer exists", None)
            if org.stripe_customer_id is None and data.customer_id:
                org.stripe_customer_id = data.customer_id
            deliveries: list[uuid.UUID] = []
            if remote is not None:
                await repo.upsert(remote.id, self._values(remote, org.plan))
                await session.flush()
                before, org.plan = org.plan, await self._plan(session, org)
                if org.plan != before:
                    deliveries = await WebhookRepository(session, org_id).emit(
                        "billing.plan_changed", data.event_id,
                        {"from": before, "to": org.plan, "subscription_status": remote.status})
            notice = NOTICES.get(data.type)
            if notice is not None:
                await NotificationRepository(session, org_id).create_once(
                    kind="billing", title=notice[0], body=notice[1], user_id=None,
                    dedupe_key=f"stripe:{data.event_id}"[:200])
            outcome = f"{data.type}: plan {org.plan}" + (f", subscription {remote.status}" if remote else "")
            await InboxRepository(session).record_outcome(data.inbox_event_id, outcome,
                                                          activity.info().workflow_id or "", utcnow())
            await session.commit()
            plan = org.plan
        await start_deliveries(activity.client(), org_id, deliveries)
        return BillingEventResult(outcome=outcome, org_id=org_id, plan=plan)

    async def _org(self, session: AsyncSession, data: BillingEventInput) -> uuid.UUID | None:
        if data.customer_id:
            owner = await org_for_customer(session, data.customer_id)
            if owner is not None:
                return owner
        if data.org_hint is not None:
            # Our checkout named the organisation; the customer id is recorded on it now.
            return await session.scalar(select(Organization.id).where(Organization.id == data.org_hint))
        return None

    async def _subscription(self, subscription_id: str) -> StripeSubscription:
        try:
            return await stripe_client(self.settings, self.http).get_subscription(subscription_id)
        except StripeError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable) from exc

    def _values(self, remote: StripeSubscription, current_plan: str) -> dict[str, object]:
        price = remote.price_ids[0] if remote.price_ids else None
        return {
            "stripe_customer_id": remote.customer, "price_id": price, "status": remote.status,
            "plan": plan_after(remote.status, price, self.settings.stripe_prices(), current_plan),
            "current_period_end": datetime.fromtimestamp(remote.current_period_end, UTC),
            "cancel_at_period_end": remote.cancel_at_period_end,
        }

    async def _plan(self, session: AsyncSession, org: Organization) -> str:
        """The plan of the newest live subscription; Free once every subscription has ended."""
        rows = list((await session.scalars(
            select(Subscription).where(Subscription.org_id == org.id)
            .order_by(Subscription.created_at.desc(), Subscription.id.desc()))).all())
        live = next((row for row in rows if is_live(row.status)), None)
        if live is not None:
            return live.plan
        return FREE if rows else org.plan

    async def _done(self, data: BillingEventInput, outcome: str, org_id: uuid.UUID | None) -> BillingEventResult:
        async with self.sessions() as session:
            await InboxRepository(session).record_outcome(data.inbox_event_id, outcome,
                                                          activity.info().workflow_id or "", utcnow())
            await session.commit()
        return BillingEventResult(outcome=outcome, org_id=org_id)
