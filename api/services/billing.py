"""Billing: the organisation's plan, Stripe Checkout and portal sessions, and the Stripe webhook intake.

Stripe webhooks are verified (``Stripe-Signature``), stored in the inbox under their event id (a redelivery
is dropped) and handed to ``BillingEventWorkflow``; the request never waits for processing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import BadGateway, BadRequest, Conflict, ServiceUnavailable
from api.schemas.billing import BillingAction, BillingRead, PlanRead, StripeWebhookAck, SubscriptionRead
from db.base import utcnow
from db.models import User
from db.repositories.billing import BillingRepository
from db.repositories.kommo import InboxRepository, InboxRow
from domain.billing import PAID_PLANS, PLANS, is_live
from integrations.stripe.client import StripeClient
from integrations.stripe.errors import StripeError
from integrations.stripe.signing import SignatureError, verify
from salesflow.settings import Settings
from workflows.billing_event import BillingEventWorkflow
from workflows.billing_models import BillingEventInput
from workflows.ids import TASK_QUEUE, billing_event_id

log = structlog.get_logger(__name__)

STRIPE_SOURCE = "stripe"
# Events that change what an organisation pays for or should hear about; the rest are stored and acknowledged.
HANDLED_EVENTS = frozenset({
    "checkout.session.completed", "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "customer.subscription.paused", "customer.subscription.resumed",
    "invoice.paid", "invoice.payment_failed",
})


def _upstream(exc: StripeError) -> Exception:
    # Stripe's message can name our key or internals; the caller gets what to do, the log gets the rest.
    log.warning("stripe request failed", status=exc.status, error=str(exc))
    if exc.retryable:
        return ServiceUnavailable("Stripe is not answering right now; try again shortly.")
    return BadGateway("Stripe refused the request; the billing configuration needs attention.")


class BillingService:
    """Billing of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, settings: Settings) -> None:
        self.session = session
        self.org_id = org_id
        self.settings = settings
        self.repo = BillingRepository(session, org_id)

    @property
    def enabled(self) -> bool:
        """Whether this installation sells anything through Stripe."""
        return bool(self.settings.stripe_api_key)

    async def read(self) -> BillingRead:
        """Plan, current subscription and the catalogue."""
        org = await self.repo.organization()
        assert org is not None  # the caller's token names it
        current = await self.repo.current()
        prices = self.settings.stripe_prices() if self.enabled else {}
        return BillingRead(
            enabled=self.enabled, plan=org.plan,
            subscription=SubscriptionRead.model_validate(current) if current is not None else None,
            plans=[PlanRead(key=p.key, name=p.name, monthly_usd=p.monthly_usd, agents=p.agents,
                            monthly_messages=p.monthly_messages, purchasable=p.key in prices)
                   for p in PLANS.values() if p.key in PAID_PLANS or p.key == org.plan],
        )

    async def redirect(self, user_id: uuid.UUID, body: BillingAction, idempotency_key: str | None) -> str:
        """A Stripe Checkout URL for ``body.plan``, or the customer portal URL."""
        if not self.enabled:
            raise ServiceUnavailable("Billing is not configured on this installation.")
        org = await self.repo.organization()
        assert org is not None
        return_url = self.settings.org_app_url(org.slug).rstrip("/") + self.settings.billing_return_path
        async with httpx.AsyncClient(timeout=30) as http:
            stripe = StripeClient(self.settings.stripe_api_base_url, self.settings.stripe_api_key or "", http=http)
            try:
                if body.action == "portal":
                    if org.stripe_customer_id is None:
                        raise Conflict("There is no billing account yet: buy a plan first.")
                    portal = await stripe.create_portal_session(customer=org.stripe_customer_id, return_url=return_url)
                    return portal.url
                return await self._checkout(stripe, user_id, body, return_url, idempotency_key)
            except StripeError as exc:
                raise _upstream(exc) from exc

    async def _checkout(self, stripe: StripeClient, user_id: uuid.UUID, body: BillingAction, return_url: str,
                        idempotency_key: str | None) -> str:
        if body.plan is None:
            raise BadRequest("Checkout needs a plan.", errors=[{"field": "body.plan", "message": "required"}])
        price = self.settings.stripe_prices().get(body.plan)
        if price is None:
            raise BadRequest(f"The {body.plan} plan is not on sale here.")
        current = await self.repo.current()
        if current is not None and is_live(current.status):
            raise Conflict("The organisation already has a subscription: change plans in the billing portal.")
        customer = await self._customer(stripe, user_id)
        separator = "&" if "?" in return_url else "?"
        session = await stripe.create_checkout_session(
            customer=customer, price=price, success_url=f"{return_url}{separator}checkout=success",
            cancel_url=f"{return_url}{separator}checkout=cancelled", client_reference_id=str(self.org_id),
            metadata={"org_id": str(self.org_id), "plan": body.plan},
            # A double-clicked button (same Idempotency-Key) gets the same session, not a second one.
            idempotency_key=f"checkout-{self.org_id}-{idempotency_key or uuid.uuid4()}",
        )
        if session.url is None:  # Stripe gives no URL for a session that is already complete or expired
            raise Conflict("That checkout is no longer open; start a new one with another Idempotency-Key.")
        return session.url

    async def _customer(self, stripe: StripeClient, user_id: uuid.UUID) -> str:
        """The organisation's Stripe customer, created (once, whatever races) at its first checkout."""
        org = await self.repo.organization(for_update=True)
        assert org is not None
        if org.stripe_customer_id is not None:
            return org.stripe_customer_id
        user = await self.session.get(User, user_id)
        created = await stripe.create_customer(
            email=user.email if user is not None else "", name=org.name, metadata={"org_id": str(org.id)},
            # Keyed by organisation: a retry after a lost answer returns the customer already made.
            idempotency_key=f"customer-{org.id}")
        org.stripe_customer_id = created.id
        await self.session.commit()
        return created.id

    async def subscriptions(self, *, limit: int, cursor: str | None) -> tuple[list[SubscriptionRead], str | None]:
        """Subscription history, newest first."""
        page = await self.repo.list(limit=limit, cursor=cursor)
        return [SubscriptionRead.model_validate(s) for s in page.items], page.next_cursor


def _event_input(event: Mapping[str, Any], inbox_id: uuid.UUID) -> BillingEventInput:
    obj = event["data"]["object"]
    kind = str(event["type"])
    customer = obj.get("customer") if isinstance(obj.get("customer"), str) else None
    subscription = obj.get("id") if kind.startswith("customer.subscription.") else obj.get("subscription")
    hint: uuid.UUID | None = None
    for candidate in (obj.get("client_reference_id"), (obj.get("metadata") or {}).get("org_id")):
        try:
            hint = uuid.UUID(str(candidate))
            break
        except ValueError:
            continue
    return BillingEventInput(inbox_event_id=inbox_id, event_id=str(event["id"]), type=kind, customer_id=customer,
                             subscription_id=subscription if isinstance(subscription, str) else None, org_hint=hint)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The event is not JSON.") from exc
    valid = (isinstance(event, dict) and isinstance(event.get("id"), str) and 0 < len(event["id"]) <= 200
             and isinstance(event.get("type"), str) and isinstance(event.get("data"), dict)
             and isinstance(event["data"].get("object"), dict))
    if not valid:
        raise BadRequest("The event lacks id, type or data.object.")
    parsed: dict[str, Any] = event
    return parsed


async def receive_stripe_webhook(
    session: AsyncSession, client: Client | None, settings: Settings, body: bytes, signature: str | None
) -> StripeWebhookAck:
    """Verify, store once, and hand to ``BillingEventWorkflow``; nothing is stored for a bad signature."""
    if not settings.stripe_webhook_secret:
        raise ServiceUnavailable("Billing is not configured on this installation.")
    try:
        verify(body, signature or "", settings.stripe_webhook_secret)
    except SignatureError as exc:
        raise BadRequest(f"The Stripe-Signature does not match: {exc}") from exc
    event = _parse(body)
    event_id, kind = event["id"], event["type"]
    inbox = InboxRepository(session)
    new = await inbox.insert_new(None, STRIPE_SOURCE, [InboxRow(
        external_key=event_id, event_type=kind[:64], payload=event, workflow_id=billing_event_id(event_id))], utcnow())
    pending = new or await inbox.unprocessed(STRIPE_SOURCE, [event_id])
    if kind not in HANDLED_EVENTS:
        for inbox_id in pending.values():
            await inbox.record_outcome(inbox_id, "not an event billing acts on", "", utcnow())
        await session.commit()
        return StripeWebhookAck(received=True, duplicate=not new)
    await session.commit()
    if pending:
        if client is None:
            raise ServiceUnavailable("The workflow engine is not reachable; Stripe will redeliver.")
        data = _event_input(event, next(iter(pending.values())))
        try:
            await client.start_workflow(
                BillingEventWorkflow.run, data, id=billing_event_id(event_id), task_queue=TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, static_summary=f"Stripe {kind}")
        except WorkflowAlreadyStartedError:
            pass
        except RPCError as exc:
            log.error("billing workflow not started", event_id=event_id, error=str(exc))
            raise ServiceUnavailable("Could not hand the event to the workflow engine; Stripe will redeliver.") from exc
    return StripeWebhookAck(received=True, duplicate=not new)
