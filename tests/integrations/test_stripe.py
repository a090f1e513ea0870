"""StripeClient, webhook signing and the Stripe sandbox, over real HTTP.

The official ``stripe`` SDK is used as an oracle here: if it can talk to the sandbox and accepts
our signatures, the sandbox and ``signing`` follow Stripe's real wire contract, not just our client.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import count

import httpx
import pytest
import stripe
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse

from integrations.stripe import signing
from integrations.stripe.client import StripeClient, encode_params
from integrations.stripe.errors import (
    StripeAuthError,
    StripeConflict,
    StripeIdempotencyError,
    StripeInvalidRequest,
    StripeRateLimited,
    StripeServerError,
    StripeTransportError,
    error_from_response,
)
from integrations.stripe.models import Event
from integrations.stripe.sandbox import StripeSandbox, decode_form

DAY = 86400
_ids = count(1)


@pytest.fixture(scope="module")
async def stripe_sandbox() -> AsyncIterator[StripeSandbox]:
    # One server per module; tests create their own prices and customers. Rate limiting has its
    # own sandbox below so the other tests never trip it.
    async with StripeSandbox(rate_limit=None) as sandbox:
        yield sandbox


@pytest.fixture
async def client(stripe_sandbox: StripeSandbox) -> AsyncIterator[StripeClient]:
    async with StripeClient(stripe_sandbox.base_url, stripe_sandbox.api_key) as c:
        yield c


@pytest.fixture
def price(stripe_sandbox: StripeSandbox) -> str:
    return stripe_sandbox.add_price(f"pro_monthly_{next(_ids)}", 4900)


@dataclass
class Receiver:
    """What our webhook endpoint stand-in got: verified events, and every raw delivery with its answer."""

    url: str
    events: list[Event] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)


@pytest.fixture
async def receiver(stripe_sandbox: StripeSandbox) -> AsyncIterator[Receiver]:
    """A throwaway webhook endpoint that verifies ``Stripe-Signature`` like ours must: 400 if it fails."""
    app = FastAPI()
    sock = socket.create_server(("127.0.0.1", 0))
    hook = Receiver(f"http://127.0.0.1:{sock.getsockname()[1]}/hook")

    @app.post("/hook")
    async def on_hook(request: Request) -> PlainTextResponse:
        body = await request.body()
        try:
            # The sandbox's clock is the world's clock here (tests may advance it).
            signing.verify(body, request.headers.get("stripe-signature"), stripe_sandbox.webhook_secret,
                           now=stripe_sandbox.now())
        except signing.SignatureError as exc:
            hook.raw.append((dict(request.headers), body, 400))
            return PlainTextResponse(str(exc), status_code=400)
        hook.raw.append((dict(request.headers), body, 200))
        hook.events.append(Event.model_validate_json(body))
        return PlainTextResponse("ok")

    @app.post("/broken")
    async def on_broken() -> PlainTextResponse:
        return PlainTextResponse("boom", status_code=500)

    # A listening socket queues connections until uvicorn accepts them: no startup wait needed.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    stripe_sandbox.webhook_url = hook.url
    yield hook
    stripe_sandbox.webhook_url = None
    server.should_exit = True
    await task


async def _checkout(client: StripeClient, price: str, org: str = "org-1") -> str:
    customer = await client.create_customer(email=f"{org}@example.com", metadata={"org_id": org})
    session = await client.create_checkout_session(
        customer=customer.id,
        price=price,
        success_url="https://app.test/billing/done?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.test/billing",
        client_reference_id=org,
        metadata={"org_id": org},
    )
    return session.id


# ----------------------------------------------------------------------------- client round trips


async def test_customer_checkout_and_portal_round_trip_through_the_client(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str
) -> None:
    customer = await client.create_customer(email="ann@acme.test", name="Acme", metadata={"org_id": "org-42"})
    assert customer.id.startswith("cus_")
    assert await client.get_customer(customer.id) == customer
    assert (customer.email, customer.name, customer.metadata) == ("ann@acme.test", "Acme", {"org_id": "org-42"})

    session = await client.create_checkout_session(
        customer=customer.id,
        price=price,
        success_url="https://app.test/ok",
        cancel_url="https://app.test/cancel",
        client_reference_id="org-42",
        metadata={"org_id": "org-42"},
    )
    assert session.id.startswith("cs_test_")
    assert (session.object, session.status, session.mode) == ("checkout.session", "open", "subscription")
    assert session.url == f"{stripe_sandbox.base_url}/checkout/{session.id}"
    assert (session.customer, session.client_reference_id, session.metadata) == (
        customer.id, "org-42", {"org_id": "org-42"}
    )
    assert await client.get_checkout_session(session.id) == session

    portal = await client.create_portal_session(customer=customer.id, return_url="https://app.test/billing")
    assert portal.id.startswith("bps_")
    assert (portal.object, portal.customer) == ("billing_portal.session", customer.id)
    assert portal.url.startswith(stripe_sandbox.base_url)

    fetched = await client.get_price(price)
    assert (fetched.unit_amount, fetched.currency, fetched.recurring and fetched.recurring.interval) == (
        4900, "usd", "month"
    )


async def test_the_client_sends_form_bodies_in_bracket_notation(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str
) -> None:
    customer = await client.create_customer(email="bob@acme.test", metadata={"org_id": "org-7"})
    await client.create_checkout_session(
        customer=customer.id, price=price, success_url="https://app.test/ok", metadata={"org_id": "org-7"}
    )
    sent = dict(stripe_sandbox.requests[-1].form)
    assert sent["line_items[0][price]"] == price
    assert sent["line_items[0][quantity]"] == "1"
    assert sent["metadata[org_id]"] == "org-7"
    assert sent["subscription_data[metadata][org_id]"] == "org-7"
    assert "cancel_url" not in sent  # None is left out, not sent as "None"


def test_bracket_encoding_round_trips_through_the_sandbox_decoder() -> None:
    params = {
        "mode": "subscription",
        "line_items": [{"price": "price_a", "quantity": "2"}, {"price": "price_b", "quantity": "1"}],
        "metadata": {"org_id": "o1", "0": "digit keys stay keys"},
        "subscription_data": {"metadata": {"org_id": "o1"}},
    }
    assert decode_form(encode_params(params)) == params
    assert encode_params({"a": True, "b": None, "c": 3}) == [("a", "true"), ("c", "3")]


# ----------------------------------------------------------------------------- idempotency


async def test_replaying_an_idempotency_key_returns_the_first_customer_and_creates_nothing(
    stripe_sandbox: StripeSandbox, client: StripeClient
) -> None:
    key = f"create-customer-{next(_ids)}"
    first = await client.create_customer(email="c@acme.test", metadata={"org_id": "o"}, idempotency_key=key)
    before = len(stripe_sandbox.customers)
    again = await client.create_customer(email="c@acme.test", metadata={"org_id": "o"}, idempotency_key=key)
    assert again == first
    assert len(stripe_sandbox.customers) == before
    assert stripe_sandbox.requests[-1].replayed


async def test_reusing_an_idempotency_key_with_other_parameters_is_an_idempotency_error(
    stripe_sandbox: StripeSandbox, client: StripeClient
) -> None:
    key = f"create-customer-{next(_ids)}"
    await client.create_customer(email="d@acme.test", idempotency_key=key)
    before = len(stripe_sandbox.customers)
    with pytest.raises(StripeIdempotencyError) as exc:
        await client.create_customer(email="someone-else@acme.test", idempotency_key=key)
    assert (exc.value.status, exc.value.type, exc.value.retryable) == (400, "idempotency_error", False)
    assert len(stripe_sandbox.customers) == before


async def test_an_idempotency_key_is_forgotten_after_24_hours(
    stripe_sandbox: StripeSandbox, client: StripeClient
) -> None:
    key = f"create-customer-{next(_ids)}"
    first = await client.create_customer(email="e@acme.test", idempotency_key=key)
    stripe_sandbox.advance(DAY)
    second = await client.create_customer(email="e@acme.test", idempotency_key=key)
    assert second.id != first.id


# ----------------------------------------------------------------------------- errors


async def test_a_wrong_api_key_is_401_naming_only_the_redacted_key(stripe_sandbox: StripeSandbox) -> None:
    async with StripeClient(stripe_sandbox.base_url, "sk_test_wrongkeyabcd") as wrong:
        with pytest.raises(StripeAuthError) as exc:
            await wrong.get_customer("cus_x")
    assert (exc.value.status, exc.value.type, exc.value.retryable) == (401, "invalid_request_error", False)
    assert exc.value.message == "Invalid API Key provided: sk_test_****abcd"
    assert str(exc.value.request_id).startswith("req_")


async def test_a_missing_key_is_401_and_basic_auth_with_the_key_as_user_is_accepted(
    stripe_sandbox: StripeSandbox, price: str
) -> None:
    async with httpx.AsyncClient(base_url=stripe_sandbox.base_url) as raw:
        missing = await raw.get(f"/v1/prices/{price}")
        basic = await raw.get(f"/v1/prices/{price}", auth=(stripe_sandbox.api_key, ""))
        token = base64.b64encode(f"{stripe_sandbox.api_key}:".encode()).decode()
        explicit = await raw.get(f"/v1/prices/{price}", headers={"Authorization": f"Basic {token}"})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in missing.json()["error"]["message"]
    assert (basic.status_code, basic.json()["id"]) == (200, price)
    assert explicit.status_code == 200


async def test_unknown_ids_are_404_resource_missing(client: StripeClient) -> None:
    for call in (client.get_customer("cus_nope"), client.get_subscription("sub_nope"), client.get_price("price_no")):
        with pytest.raises(StripeInvalidRequest) as exc:
            await call
        assert (exc.value.status, exc.value.code, exc.value.retryable) == (404, "resource_missing", False)
    with pytest.raises(StripeInvalidRequest) as missing_customer:
        await client.get_customer("cus_nope")
    assert missing_customer.value.message == "No such customer: 'cus_nope'"


async def test_missing_and_unknown_parameters_are_400_naming_the_param(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str
) -> None:
    headers = {"Authorization": f"Bearer {stripe_sandbox.api_key}"}
    async with httpx.AsyncClient(base_url=stripe_sandbox.base_url, headers=headers) as raw:
        no_success_url = await raw.post(
            "/v1/checkout/sessions",
            data={"mode": "subscription", "line_items[0][price]": price, "line_items[0][quantity]": "1"},
        )
        unknown = await raw.post("/v1/customers", data={"email": "x@acme.test", "plan": "pro"})
        json_body = await raw.post("/v1/customers", json={"email": "x@acme.test"})
    assert no_success_url.status_code == 400
    assert no_success_url.json()["error"] == {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "param": "success_url",
        "message": "Missing required param: success_url.",
    }
    assert (unknown.status_code, unknown.json()["error"]["code"], unknown.json()["error"]["param"]) == (
        400, "parameter_unknown", "plan"
    )
    assert json_body.status_code == 400

    with pytest.raises(StripeInvalidRequest) as bad_price:
        await client.create_checkout_session(customer=await _customer(client), price="price_gone",
                                             success_url="https://app.test/ok")
    assert (bad_price.value.param, bad_price.value.code) == ("line_items[0][price]", "resource_missing")


async def _customer(client: StripeClient) -> str:
    return (await client.create_customer(email="f@acme.test")).id


async def test_requests_past_the_rate_limit_are_429_until_the_window_moves() -> None:
    frozen = 1_700_000_000.0
    async with StripeSandbox(rate_limit=3, clock=lambda: frozen) as limited:
        price = limited.add_price("basic", 900)
        async with StripeClient(limited.base_url, limited.api_key) as c:
            for _ in range(3):
                await c.get_price(price)
            with pytest.raises(StripeRateLimited) as exc:
                await c.get_price(price)
            limited.advance(1.0)
            assert (await c.get_price(price)).id == price
    assert (exc.value.status, exc.value.type, exc.value.retryable) == (429, "rate_limit_error", True)
    assert [r.status for r in limited.requests] == [200, 200, 200, 429, 200]


async def test_injected_server_faults_are_retryable_and_then_clear(client: StripeClient, price: str,
                                                                   stripe_sandbox: StripeSandbox) -> None:
    stripe_sandbox.fail_next(2, 500)
    for _ in range(2):
        with pytest.raises(StripeServerError) as exc:
            await client.get_price(price)
        assert (exc.value.status, exc.value.type, exc.value.retryable) == (500, "api_error", True)
    assert (await client.get_price(price)).id == price


async def test_an_unreachable_stripe_is_a_retryable_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with StripeClient(f"http://127.0.0.1:{port}", "sk_test_x") as c:
        with pytest.raises(StripeTransportError) as exc:
            await c.get_price("price_x")
    assert isinstance(exc.value, StripeServerError)
    assert exc.value.retryable is True


def test_error_classification_follows_status_and_stripe_should_retry() -> None:
    conflict = error_from_response(409, {"error": {"type": "invalid_request_error", "code": "lock_timeout"}})
    assert isinstance(conflict, StripeConflict)
    assert conflict.retryable
    told_not_to = error_from_response(500, {"error": {"type": "api_error"}}, {"Stripe-Should-Retry": "false"})
    assert isinstance(told_not_to, StripeServerError)
    assert not told_not_to.retryable
    text = error_from_response(502, "Bad Gateway")
    assert (text.message, text.retryable) == ("Bad Gateway", True)


# ----------------------------------------------------------------------------- signing


SECRET = "whsec_test_secret"
PAYLOAD = b'{\n  "id": "evt_1",\n  "object": "event"\n}'


def test_verify_accepts_what_sign_produced_and_returns_its_timestamp() -> None:
    header = signing.sign(SECRET, PAYLOAD, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signing.verify(PAYLOAD, header, SECRET, now=1_700_000_100) == 1_700_000_000


def test_verify_rejects_a_forged_secret_or_a_tampered_body() -> None:
    forged = signing.sign("whsec_attacker", PAYLOAD, 1_700_000_000)
    with pytest.raises(signing.SignatureError):
        signing.verify(PAYLOAD, forged, SECRET, now=1_700_000_000)
    genuine = signing.sign(SECRET, PAYLOAD, 1_700_000_000)
    with pytest.raises(signing.SignatureError):
        signing.verify(PAYLOAD.replace(b"evt_1", b"evt_2"), genuine, SECRET, now=1_700_000_000)
    # Moving the timestamp invalidates the signature: it is part of the signed message.
    shifted = genuine.replace("t=1700000000", "t=1700000200")
    with pytest.raises(signing.SignatureError):
        signing.verify(PAYLOAD, shifted, SECRET, now=1_700_000_200)


@pytest.mark.parametrize("offset", [301, -301])
def test_verify_rejects_a_timestamp_outside_the_tolerance(offset: int) -> None:
    header = signing.sign(SECRET, PAYLOAD, 1_700_000_000)
    with pytest.raises(signing.SignatureError, match="tolerance"):
        signing.verify(PAYLOAD, header, SECRET, now=1_700_000_000 + offset)
    assert signing.verify(PAYLOAD, header, SECRET, now=1_700_000_000 + offset, tolerance=600) == 1_700_000_000


def test_verify_accepts_any_matching_v1_among_several_during_a_secret_roll() -> None:
    old = signing.compute_signature("whsec_old", PAYLOAD, 1_700_000_000)
    new = signing.compute_signature(SECRET, PAYLOAD, 1_700_000_000)
    header = f"t=1700000000,v1={old},v1={new},v0=ignored"
    assert signing.verify(PAYLOAD, header, SECRET, now=1_700_000_000) == 1_700_000_000
    assert signing.verify(PAYLOAD, header, "whsec_old", now=1_700_000_000) == 1_700_000_000
    with pytest.raises(signing.SignatureError):
        signing.verify(PAYLOAD, header, "whsec_other", now=1_700_000_000)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=1700000000", "v1=abc", "t=soon,v1=abc", "t=1,t=2,v1=abc", "t=1700000000,v1=é"],
)
def test_verify_rejects_missing_or_malformed_headers(header: str | None) -> None:
    with pytest.raises(signing.SignatureError):
        signing.verify(PAYLOAD, header, SECRET, now=1_700_000_000)


def test_the_official_stripe_library_accepts_our_signatures() -> None:
    now = int(time.time())
    event = stripe.Webhook.construct_event(PAYLOAD, signing.sign(SECRET, PAYLOAD, now), SECRET)
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(PAYLOAD, signing.sign("whsec_attacker", PAYLOAD, now), SECRET)


# ----------------------------------------------------------------------------- the official SDK as oracle


# The SDK's own httpx call uses a deprecated argument; not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_the_official_stripe_sdk_speaks_to_the_sandbox(stripe_sandbox: StripeSandbox, price: str) -> None:
    http = stripe.HTTPXClient()
    sdk = stripe.StripeClient(
        stripe_sandbox.api_key,
        base_addresses={"api": stripe_sandbox.base_url},
        http_client=http,
        max_network_retries=0,
    )
    try:
        customer = await sdk.v1.customers.create_async(
            {"email": "sdk@acme.test", "metadata": {"org_id": "org-sdk"}}, {"idempotency_key": f"sdk-{next(_ids)}"}
        )
        session = await sdk.v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": price, "quantity": 1}],
                "success_url": "https://app.test/ok",
                "subscription_data": {"metadata": {"org_id": "org-sdk"}},
            }
        )
        with pytest.raises(stripe.InvalidRequestError) as missing:
            await sdk.v1.customers.retrieve_async("cus_missing")
        wrong = stripe.StripeClient(
            "sk_test_nottherightkey", base_addresses={"api": stripe_sandbox.base_url}, http_client=http,
            max_network_retries=0,
        )
        with pytest.raises(stripe.AuthenticationError):
            await wrong.v1.prices.retrieve_async(price)
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
    stored = stripe_sandbox.customers[customer.id]  # the SDK's bracket-encoded body decoded as sent
    assert (stored["email"], stored["metadata"]) == ("sdk@acme.test", {"org_id": "org-sdk"})
    assert session.url == f"{stripe_sandbox.base_url}/checkout/{session.id}"
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


# ----------------------------------------------------------------------------- webhooks


async def test_complete_checkout_delivers_signed_events_the_receiver_verifies(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    session_id = await _checkout(client, price, "org-paid")
    response = await stripe_sandbox.complete_checkout(session_id)

    assert response.status_code == 200
    assert [e.type for e in receiver.events] == ["checkout.session.completed", "customer.subscription.created"]
    assert [status for _, _, status in receiver.raw] == [200, 200]
    completed, created = receiver.events
    assert completed.id.startswith("evt_")
    assert (completed.api_version, completed.livemode) == ("2024-06-20", False)
    session = completed.data.object
    assert (session["id"], session["status"], session["client_reference_id"], session["metadata"]) == (
        session_id, "complete", "org-paid", {"org_id": "org-paid"}
    )
    assert session["subscription"] == created.data.object["id"]

    subscription = await client.get_subscription(session["subscription"])
    assert subscription.id.startswith("sub_")
    assert (subscription.status, subscription.customer, subscription.price_ids) == (
        "active", session["customer"], [price]
    )
    assert subscription.metadata == {"org_id": "org-paid"}  # from subscription_data[metadata]
    assert subscription.current_period_end - int(stripe_sandbox.now()) in range(30 * DAY - 2, 30 * DAY + 1)
    assert subscription.items.data[0].quantity == 1
    assert [(d.event_type, d.status) for d in stripe_sandbox.webhook_deliveries[-2:]] == [
        ("checkout.session.completed", 200),
        ("customer.subscription.created", 200),
    ]
    with pytest.raises(ValueError, match="complete"):
        await stripe_sandbox.complete_checkout(session_id)


async def test_a_past_due_subscription_sends_updated_and_invoice_payment_failed(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    await stripe_sandbox.complete_checkout(await _checkout(client, price))
    sub_id = receiver.events[-1].data.object["id"]

    response = await stripe_sandbox.set_subscription_status(sub_id, "past_due")

    assert response.status_code == 200
    updated, failed = receiver.events[-2:]
    assert (updated.type, updated.data.object["status"], updated.data.previous_attributes) == (
        "customer.subscription.updated", "past_due", {"status": "active"}
    )
    assert failed.type == "invoice.payment_failed"
    assert (failed.data.object["subscription"], failed.data.object["customer"]) == (
        sub_id, updated.data.object["customer"]
    )
    assert (await client.get_subscription(sub_id)).status == "past_due"


async def test_cancelling_at_period_end_then_now_sends_updated_then_deleted(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    await stripe_sandbox.complete_checkout(await _checkout(client, price))
    sub_id = receiver.events[-1].data.object["id"]

    await stripe_sandbox.cancel_subscription(sub_id, at_period_end=True)
    pending = await client.get_subscription(sub_id)
    await stripe_sandbox.cancel_subscription(sub_id, at_period_end=False)

    updated, deleted = receiver.events[-2:]
    assert (updated.type, updated.data.object["cancel_at_period_end"], updated.data.object["status"]) == (
        "customer.subscription.updated", True, "active"
    )
    assert (pending.cancel_at_period_end, pending.cancel_at) == (True, pending.current_period_end)
    assert (deleted.type, deleted.data.object["status"]) == ("customer.subscription.deleted", "canceled")
    assert (await client.get_subscription(sub_id)).status == "canceled"


async def test_resend_redelivers_the_same_event_with_a_fresh_signature(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    await stripe_sandbox.complete_checkout(await _checkout(client, price))
    original = receiver.events[-1]
    first_headers, first_body, _ = receiver.raw[-1]
    stripe_sandbox.advance(60)

    response = await stripe_sandbox.resend(original.id)

    again_headers, again_body, status = receiver.raw[-1]
    assert (response.status_code, status) == (200, 200)
    assert again_body == first_body
    assert receiver.events[-1] == original
    assert again_headers["stripe-signature"] != first_headers["stripe-signature"]
    secret = stripe_sandbox.webhook_secret
    t_first = signing.verify(first_body, first_headers["stripe-signature"], secret, now=stripe_sandbox.now())
    t_again = signing.verify(again_body, again_headers["stripe-signature"], secret, now=stripe_sandbox.now())
    assert t_again - t_first == 60
    assert [d.attempt for d in stripe_sandbox.webhook_deliveries if d.event_id == original.id] == [1, 2]


async def test_the_receiver_rejects_forged_and_tampered_deliveries(
    stripe_sandbox: StripeSandbox, receiver: Receiver
) -> None:
    body = b'{"id": "evt_forged", "type": "customer.subscription.deleted", "created": 1, "data": {"object": {}}}'
    async with httpx.AsyncClient() as attacker:
        forged = await attacker.post(receiver.url, content=body, headers={
            "Stripe-Signature": signing.sign("whsec_guess", body, int(stripe_sandbox.now()))})
        tampered = await attacker.post(receiver.url, content=body.replace(b"deleted", b"created"), headers={
            "Stripe-Signature": stripe_sandbox.sign(body)})
        crafted = await attacker.post(receiver.url, content=body.replace(b"forged", b"crafted"), headers={
            "Stripe-Signature": stripe_sandbox.sign(body.replace(b"forged", b"crafted"))})
        stale = await attacker.post(receiver.url, content=body, headers={
            "Stripe-Signature": stripe_sandbox.sign(body, int(stripe_sandbox.now()) - 301)})
    assert (forged.status_code, tampered.status_code, stale.status_code) == (400, 400, 400)
    assert crafted.status_code == 200
    assert [e.id for e in receiver.events] == ["evt_crafted"]


async def test_a_failing_webhook_endpoint_is_logged_with_its_status(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    stripe_sandbox.webhook_url = receiver.url.replace("/hook", "/broken")
    response = await stripe_sandbox.complete_checkout(await _checkout(client, price))
    assert response.status_code == 500
    assert [d.status for d in stripe_sandbox.webhook_deliveries[-2:]] == [500, 500]

    stripe_sandbox.webhook_url = receiver.url
    retried = await stripe_sandbox.resend(stripe_sandbox.webhook_deliveries[-2].event_id)
    assert retried.status_code == 200
    assert [e.type for e in receiver.events] == ["checkout.session.completed"]


async def test_an_unpaid_checkout_session_expires_after_24_hours(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    session_id = await _checkout(client, price)
    stripe_sandbox.advance(DAY)
    expired = await client.get_checkout_session(session_id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(ValueError, match="expired"):
        await stripe_sandbox.complete_checkout(session_id)
    assert receiver.raw == []


async def test_the_hosted_checkout_page_pays_and_redirects_to_the_success_url(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    session_id = await _checkout(client, price)
    url = (await client.get_checkout_session(session_id)).url
    assert url is not None
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        paid = await browser.post(url)
    assert page.status_code == 200
    assert "Pay" in page.text
    assert paid.status_code == 303
    assert paid.headers["location"] == f"https://app.test/billing/done?session={session_id}"
    assert (await client.get_checkout_session(session_id)).status == "complete"
    assert [e.type for e in receiver.events] == ["checkout.session.completed", "customer.subscription.created"]


async def test_the_hosted_portal_cancels_at_period_end_and_links_back(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str, receiver: Receiver
) -> None:
    await stripe_sandbox.complete_checkout(await _checkout(client, price))
    subscription = receiver.events[-1].data.object
    portal = await client.create_portal_session(customer=subscription["customer"], return_url="https://app.test/b")
    async with httpx.AsyncClient(base_url=stripe_sandbox.base_url) as browser:
        page = await browser.get(portal.url)
        cancelled = await browser.post(f"/billing_portal/{portal.id}/subscriptions/{subscription['id']}/cancel")
    assert page.status_code == 200
    assert "https://app.test/b" in page.text
    assert (cancelled.status_code, cancelled.headers["location"]) == (303, f"/billing_portal/{portal.id}")
    assert (await client.get_subscription(subscription["id"])).cancel_at_period_end is True
    assert receiver.events[-1].type == "customer.subscription.updated"


async def test_sending_events_without_a_webhook_url_fails_before_changing_anything(
    stripe_sandbox: StripeSandbox, client: StripeClient, price: str
) -> None:
    session_id = await _checkout(client, price)
    with pytest.raises(RuntimeError, match="webhook_url"):
        await stripe_sandbox.complete_checkout(session_id)
    assert (await client.get_checkout_session(session_id)).status == "open"


def test_sandbox_seeding_rejects_duplicates() -> None:
    sandbox = StripeSandbox()
    price_id = sandbox.add_price("team", 9900, "EUR", "year", price_id="price_team")
    assert (price_id, sandbox.price_id("team")) == ("price_team", "price_team")
    assert sandbox.prices[price_id]["currency"] == "eur"
    with pytest.raises(ValueError, match="lookup_key"):
        sandbox.add_price("team", 100)

