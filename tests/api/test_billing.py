"""Billing over the Stripe sandbox (real HTTP both ways): checkout, signed webhooks, plan changes, the portal."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from db.models import InboxEvent, Notification, Organization
from integrations.stripe.sandbox import StripeSandbox
from salesflow.settings import Settings
from tests.e2e.serving import Receiver, served, webhook_receiver
from tests.harness import RouteRecorder, Tenant
from tests.kommo_support import eventually

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def webhooks_to_us(
    app_client: httpx.AsyncClient, route_recorder: RouteRecorder, stripe_sandbox: StripeSandbox
) -> AsyncIterator[str]:
    """Our app on a real port, registered as the Stripe account's webhook endpoint."""
    async with served(route_recorder) as url:
        stripe_sandbox.webhook_url = f"{url}/api/billing/webhook"
        yield url


async def _org(sessions: Sessions, org_id: uuid.UUID) -> Organization:
    async with sessions() as session:
        org = await session.get(Organization, org_id)
        assert org is not None
        return org


async def _notices(sessions: Sessions, org_id: uuid.UUID) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(Notification.title).where(
            Notification.org_id == org_id, Notification.kind == "billing").order_by(Notification.created_at))).all())


async def _checkout(client: httpx.AsyncClient, tenant: Tenant, plan: str = "starter", key: str | None = None) -> str:
    headers = {**tenant.headers, **({"Idempotency-Key": key} if key else {})}
    r = await client.post("/api/billing", json={"action": "checkout", "plan": plan}, headers=headers)
    assert r.status_code == 200, r.text
    url: str = r.json()["url"]
    return url


async def test_billing_shows_the_plan_and_what_is_on_sale(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get("/api/billing", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["enabled"], body["plan"], body["subscription"]) == (True, "trial", None)
    assert [(p["key"], p["purchasable"]) for p in body["plans"]] == [("trial", False), ("starter", True),
                                                                       ("pro", True)]
    assert (await client.get("/api/subscriptions", headers=tenant.headers)).json() == {"items": [], "next_cursor": None}
    assert (await client.get("/api/subscriptions", params={"cursor": "0"}, headers=tenant.headers)).status_code == 400


async def test_a_checkout_makes_one_customer_and_a_repeated_click_the_same_session(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, stripe_sandbox: StripeSandbox
) -> None:
    first = await _checkout(client, tenant, key="click-1")
    again = await _checkout(client, tenant, key="click-1")
    other = await _checkout(client, tenant, plan="pro", key="click-2")

    assert first == again != other
    assert first.startswith(f"{stripe_sandbox.base_url}/checkout/cs_test_")
    org = await _org(sessions, tenant.org_id)
    assert org.stripe_customer_id is not None
    assert org.stripe_customer_id.startswith("cus_")
    customers = [c for c in stripe_sandbox.customers.values() if c["metadata"].get("org_id") == str(tenant.org_id)]
    assert [c["id"] for c in customers] == [org.stripe_customer_id]


async def test_billing_refuses_members_unknown_plans_and_a_portal_without_a_customer(
    client: httpx.AsyncClient, tenant: Tenant, member: Tenant
) -> None:
    assert (await client.post("/api/billing", json={"action": "checkout", "plan": "pro"},
                              headers=member.headers)).status_code == 403
    for body in ({"action": "checkout"}, {"action": "checkout", "plan": "platinum"}, {"action": "refund"},
                 {"action": "portal", "extra": 1}):
        r = await client.post("/api/billing", json=body, headers=tenant.headers)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post("/api/billing", json={"action": "portal"}, headers=tenant.headers)
    assert r.status_code == 409
    for method, path in (("GET", "/api/billing"), ("POST", "/api/billing"), ("GET", "/api/subscriptions")):
        assert (await client.request(method, path, json={"action": "portal"})).status_code == 401


async def test_a_paid_checkout_moves_the_plan_a_failed_payment_keeps_it_and_a_cancel_ends_it(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, stripe_sandbox: StripeSandbox, webhooks_to_us: str,
) -> None:
    async with webhook_receiver() as hooks:
        await _billing_walk(client, sessions, tenant, stripe_sandbox, hooks)


async def _billing_walk(client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, stripe_sandbox: StripeSandbox,
                        hooks: Receiver) -> None:
    assert (await client.post("/api/webhooks", json={"url": hooks.url, "events": ["billing.plan_changed"]},
                              headers=tenant.headers)).status_code == 201
    url = await _checkout(client, tenant)
    session_id = url.rsplit("/", 1)[1]
    assert (await stripe_sandbox.complete_checkout(session_id)).status_code == 200

    async def on(plan: str) -> bool:
        return (await _org(sessions, tenant.org_id)).plan == plan

    await eventually(lambda: on("starter"))
    [subscription] = (await client.get("/api/subscriptions", headers=tenant.headers)).json()["items"]
    assert (subscription["plan"], subscription["status"]) == ("starter", "active")
    assert (await client.post("/api/billing", json={"action": "checkout", "plan": "pro"},
                              headers=tenant.headers)).status_code == 409
    portal = await client.post("/api/billing", json={"action": "portal"}, headers=tenant.headers)
    assert portal.status_code == 200, portal.text

    failed = await stripe_sandbox.set_subscription_status(subscription["stripe_subscription_id"], "past_due")
    assert failed.status_code == 200

    async def told(n: int) -> bool:
        return len(await _notices(sessions, tenant.org_id)) == n

    await eventually(lambda: told(1))
    # Stripe retries the event: stored once, noticed once.
    payment_failed = next(e.id for e in stripe_sandbox.events.values()
                          if e.type == "invoice.payment_failed"
                          and subscription["stripe_subscription_id"] in e.body.decode())
    assert (await stripe_sandbox.resend(payment_failed)).status_code == 200
    assert (await client.get("/api/billing", headers=tenant.headers)).json()["subscription"]["status"] == "past_due"
    assert (await _org(sessions, tenant.org_id)).plan == "starter"  # kept while Stripe retries the card

    await stripe_sandbox.cancel_subscription(subscription["stripe_subscription_id"], at_period_end=False)
    await eventually(lambda: on("free"))
    await eventually(lambda: told(2))
    assert await _notices(sessions, tenant.org_id) == ["A payment failed", "Your subscription has ended"]
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(InboxEvent).where(
            InboxEvent.source == "stripe", InboxEvent.external_key == payment_failed))
    assert stored == 1

    async def integrator_told() -> bool:
        return len(hooks.received) == 2

    await eventually(integrator_told)
    changes = sorted((json.loads(body)["data"]["from"], json.loads(body)["data"]["to"]) for _, body in hooks.received)
    assert changes == [("starter", "free"), ("trial", "starter")]


async def test_a_forged_or_stale_stripe_event_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings, stripe_sandbox: StripeSandbox, tenant: Tenant,
) -> None:
    event_id = f"evt_forged_{uuid.uuid4().hex[:12]}"
    body = json.dumps({"id": event_id, "object": "event", "type": "customer.subscription.deleted",
                       "data": {"object": {"id": "sub_x", "customer": "cus_x"}}}).encode()
    forged = stripe_sandbox.sign(body).replace("v1=", "v1=0")
    stale = stripe_sandbox.sign(body, timestamp=int(stripe_sandbox.now()) - 3600)
    for signature in (forged, stale, "t=1,v1=", None):
        headers: dict[str, Any] = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        r = await client.post("/api/billing/webhook", content=body, headers=headers)
        assert r.status_code == 400, (signature, r.text)
    for broken in (b"not json", b'{"id": "evt_1"}', b"[]"):
        r = await client.post("/api/billing/webhook", content=broken,
                              headers={"Stripe-Signature": stripe_sandbox.sign(broken)})
        assert r.status_code == 400, broken
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEvent)
                                    .where(InboxEvent.external_key == event_id)) == 0

    unconfigured = create_app(settings.model_copy(update={"stripe_webhook_secret": None, "stripe_api_key": None}),
                              sessions=sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unconfigured), base_url="http://t") as other:
        r = await other.post("/api/billing/webhook", content=body,
                             headers={"Stripe-Signature": stripe_sandbox.sign(body)})
        assert r.status_code == 503
        assert (await other.get("/api/billing", headers=tenant.headers)).json()["enabled"] is False
        assert (await other.post("/api/billing", json={"action": "checkout", "plan": "pro"},
                                 headers=tenant.headers)).status_code == 503
