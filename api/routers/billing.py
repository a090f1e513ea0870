"""/api/billing and /api/subscriptions: plans, Stripe Checkout and portal, subscription history; the Stripe webhook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Request

from api.deps import AdminPrincipal, CurrentPrincipal, OptionalTemporalDep, SessionDep, SettingsDep
from api.schemas.billing import BillingAction, BillingRead, BillingRedirect, StripeWebhookAck, SubscriptionRead
from api.schemas.common import Cursor, Limit, ListResponse
from api.services.billing import BillingService, receive_stripe_webhook
from api.services.crm_webhook import read_limited

router = APIRouter(tags=["billing"])

MAX_EVENT_BYTES = 512 * 1024


@router.get("/api/billing", response_model=BillingRead)
async def get_billing(principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep) -> BillingRead:
    """The organisation's plan, its current subscription and the plans on sale."""
    return await BillingService(session, principal.org_id, settings).read()


@router.post("/api/billing", response_model=BillingRedirect)
async def start_billing_session(
    body: Annotated[BillingAction, Body()], principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> BillingRedirect:
    """Owners and admins: a Stripe Checkout URL to buy a plan, or the billing portal URL to manage it."""
    url = await BillingService(session, principal.org_id, settings).redirect(principal.user_id, body, idempotency_key)
    return BillingRedirect(url=url)


@router.post("/api/billing/webhook", response_model=StripeWebhookAck)
async def receive_billing_webhook(
    request: Request, session: SessionDep, settings: SettingsDep, temporal: OptionalTemporalDep,
    stripe_signature: Annotated[str | None, Header(max_length=2000)] = None,
) -> StripeWebhookAck:
    """Stripe's events, verified by ``Stripe-Signature``; stored once and applied by a workflow."""
    body = await read_limited(request.stream(), MAX_EVENT_BYTES)
    return await receive_stripe_webhook(session, temporal, settings, body, stripe_signature)


@router.get("/api/subscriptions", response_model=ListResponse[SubscriptionRead])
async def list_subscriptions(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, limit: Limit = 50, cursor: Cursor = None,
) -> ListResponse[SubscriptionRead]:
    """The organisation's Stripe subscriptions, newest first (cancelled ones included)."""
    items, next_cursor = await BillingService(session, principal.org_id, settings).subscriptions(
        limit=limit, cursor=cursor)
    return ListResponse(items=items, next_cursor=next_cursor)
