"""KommoClient / KommoOAuthClient / AmojoClient against the Kommo sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse

from integrations.kommo.client import AmojoClient, KommoClient, KommoOAuthClient, SlidingWindowRateLimiter
from integrations.kommo.errors import (
    KommoBadRequest,
    KommoBlocked,
    KommoForbidden,
    KommoNotFound,
    KommoPaymentRequired,
    KommoRateLimited,
    KommoServerError,
    KommoUnauthorized,
)
from integrations.kommo.models import ChatParticipant
from integrations.kommo.sandbox import KommoSandbox, SandboxAccount, WebhookSwitchedOff
from integrations.kommo.signing import verify_body_signature
from integrations.kommo.webhooks import parse_crm_webhook

REDIRECT = "https://salesflow.test/api/integrations/kommo/callback"


@pytest.fixture(scope="module")
async def kommo() -> AsyncIterator[KommoSandbox]:
    # One server per module (start/stop costs ~0.2 s); each test gets its own account, and
    # accounts are isolated by their tokens. Rate limiting has its own sandboxes below.
    async with KommoSandbox(rate_limit=None) as sandbox:
        yield sandbox


_counter = iter(range(1, 10_000))


@pytest.fixture
def acme(kommo: KommoSandbox) -> SandboxAccount:
    return kommo.add_account(f"acme{next(_counter)}", redirect_uri=REDIRECT)


@pytest.fixture
async def kommo_api(kommo: KommoSandbox, acme: SandboxAccount) -> AsyncIterator[KommoClient]:
    async with KommoClient(kommo.base_url, kommo.issue_tokens(acme).access_token) as c:
        yield c


# ----------------------------------------------------------------------------- OAuth


async def test_oauth_code_exchange_and_single_use_refresh(kommo: KommoSandbox, acme: SandboxAccount) -> None:
    oauth = KommoOAuthClient(kommo.base_url, acme.client_id, acme.client_secret, REDIRECT)
    async with oauth, httpx.AsyncClient() as browser:
        consent = await browser.get(oauth.authorize_url("st-123"))
        assert consent.status_code == 302
        location = urlsplit(consent.headers["location"])
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        assert query["state"] == "st-123"
        assert query["referer"] == f"{acme.subdomain}.kommo.com"

        first = await oauth.exchange_code(query["code"])
        assert first.token_type == "Bearer"
        assert first.expires_in == 86400
        async with KommoClient(kommo.base_url, first.access_token) as api:
            assert (await api.get_account()).subdomain == acme.subdomain

        with pytest.raises(KommoBadRequest):  # codes are single use
            await oauth.exchange_code(query["code"])

        second = await oauth.refresh(first.refresh_token)
        assert second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token
        with pytest.raises(KommoUnauthorized) as used:  # the old refresh token is revoked
            await oauth.refresh(first.refresh_token)
        assert used.value.retryable is False
        assert "revoked" in used.value.detail

        third = await oauth.refresh(second.refresh_token)  # rotation keeps working
        async with KommoClient(kommo.base_url, third.access_token) as api:
            assert (await api.get_account()).id == acme.id


async def test_oauth_rejects_expired_code_and_wrong_secret(kommo: KommoSandbox, acme: SandboxAccount) -> None:
    async with KommoOAuthClient(kommo.base_url, acme.client_id, "wrong", REDIRECT) as bad_secret:
        with pytest.raises(KommoUnauthorized):
            await bad_secret.exchange_code(kommo.issue_code(acme))
    async with KommoOAuthClient(kommo.base_url, acme.client_id, acme.client_secret, REDIRECT) as oauth:
        code = kommo.issue_code(acme)
        kommo.advance(20 * 60 + 1)
        with pytest.raises(KommoBadRequest) as expired:
            await oauth.exchange_code(code)
        assert "expired" in expired.value.detail


async def test_expired_access_token_is_unauthorized(kommo: KommoSandbox, acme: SandboxAccount) -> None:
    pair = kommo.issue_tokens(acme)
    async with KommoClient(kommo.base_url, pair.access_token) as api:
        await api.get_account()
        kommo.advance(pair.expires_in + 1)
        with pytest.raises(KommoUnauthorized) as exc:
            await api.get_account()
    assert exc.value.status == 401
    assert exc.value.retryable is False


async def test_long_lived_token_and_revocation(kommo: KommoSandbox, acme: SandboxAccount) -> None:
    async with KommoClient(kommo.base_url, kommo.long_lived_token(acme)) as api:
        kommo.advance(30 * 86400)
        assert (await api.get_account()).id == acme.id
        kommo.revoke_tokens(acme)
        with pytest.raises(KommoUnauthorized):
            await api.get_account()


# ----------------------------------------------------------------------------- leads


async def test_leads_paginate_250_per_page(kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient) -> None:
    for i in range(300):
        kommo.add_lead(acme, f"Lead {i}")

    first = await kommo_api.list_leads(page=1, limit=250)
    second = await kommo_api.list_leads(page=2, limit=250)
    beyond = await kommo_api.list_leads(page=3, limit=250)  # 204 No Content

    assert (len(first.items), first.has_next) == (250, True)
    assert (len(second.items), second.has_next) == (50, False)
    assert (beyond.items, beyond.has_next) == ([], False)
    pages = [page async for page in kommo_api.iter_leads(limit=250)]
    assert [len(p.items) for p in pages] == [250, 50]
    ids = {lead.id for page in pages for lead in page.items}
    assert ids == set(acme.leads)


async def test_limit_above_250_is_bad_request(kommo_api: KommoClient) -> None:
    with pytest.raises(KommoBadRequest) as exc:
        await kommo_api.list_leads(limit=251)
    assert exc.value.status == 400
    assert exc.value.retryable is False


async def test_empty_lead_list_is_204_and_reads_as_empty(kommo_api: KommoClient) -> None:
    page = await kommo_api.list_leads()
    assert page.items == []
    assert page.has_next is False
    assert [p async for p in kommo_api.iter_leads()] == []


async def test_updated_since_filters_leads(kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient) -> None:
    old = kommo.add_lead(acme, "old", updated_at=1_700_000_000)
    new = kommo.add_lead(acme, "new", updated_at=1_700_000_500)
    page = await kommo_api.list_leads(updated_since=1_700_000_100, order="updated_at")
    assert [lead.id for lead in page.items] == [new.id]
    assert old.id not in {lead.id for lead in page.items}


async def test_update_lead_status_to_won(kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient) -> None:
    lead = kommo.add_lead(acme, "Deal")
    negotiation = acme.status_id("Negotiation")

    result = await kommo_api.update_lead(lead.id, status_id=negotiation)
    assert result.id == lead.id
    assert (await kommo_api.get_lead(lead.id)).status_id == negotiation

    await kommo_api.update_lead(lead.id, status_id=142)
    won = await kommo_api.get_lead(lead.id)
    assert won.is_won
    assert acme.leads[lead.id]["closed_at"] is not None


async def test_update_lead_rejects_unknown_status_and_missing_lead(
    kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient
) -> None:
    lead = kommo.add_lead(acme, "Deal")
    with pytest.raises(KommoBadRequest) as exc:
        await kommo_api.update_lead(lead.id, status_id=999)
    assert "status_id" in exc.value.detail
    assert kommo.lead(acme, lead.id).status_id == lead.status_id
    with pytest.raises(KommoNotFound):
        await kommo_api.update_lead(123, status_id=142)
    with pytest.raises(KommoNotFound):
        await kommo_api.get_lead(123)


async def test_custom_fields_and_tags(kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient) -> None:
    lead = kommo.add_lead(acme, "Deal", tags=["vip"])
    budget, source = acme.lead_field_id("Budget"), acme.lead_field_id("Source")
    await kommo_api.update_lead(
        lead.id,
        custom_fields_values=[
            {"field_id": budget, "values": [{"value": 5000}]},
            {"field_id": source, "values": [{"value": "Referral"}]},
        ],
    )
    await kommo_api.add_tags(lead.id, ["ai-qualified", "vip"])

    fetched = await kommo_api.get_lead(lead.id)
    assert fetched.tags == ["vip", "ai-qualified"]
    values = {f.field_id: f.values[0] for f in fetched.custom_fields_values or []}
    assert values[budget].value == 5000
    assert values[source].value == "Referral"
    assert values[source].enum_id is not None
    fields = {f.name: f for f in await kommo_api.list_lead_custom_fields()}
    assert [e.value for e in fields["Source"].enums or []] == ["Website", "Referral", "Ads"]


async def test_batch_update_is_all_or_nothing(
    kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient
) -> None:
    a, b = kommo.add_lead(acme, "A"), kommo.add_lead(acme, "B")
    with pytest.raises(KommoBadRequest):
        await kommo_api.update_leads([{"id": a.id, "price": 10}, {"id": b.id, "status_id": 1}])
    assert kommo.lead(acme, a.id).price == 0
    updated = await kommo_api.update_leads([{"id": a.id, "price": 10}, {"id": b.id, "price": 20}])
    assert [u.id for u in updated] == [a.id, b.id]
    assert (kommo.lead(acme, a.id).price, kommo.lead(acme, b.id).price) == (10, 20)


async def test_pipelines_users_contacts_notes_tasks(
    kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient
) -> None:
    lead = kommo.add_lead(acme, "Deal")
    contact = kommo.add_contact(acme, "Ann Lee", phone="+15550001", email="ann@example.com", lead_id=lead.id)

    pipelines = await kommo_api.list_pipelines()
    assert [p.id for p in pipelines] == [acme.main_pipeline_id]
    assert {142, 143} <= {s.id for s in pipelines[0].statuses}
    assert [s.id for s in await kommo_api.list_statuses(acme.main_pipeline_id)] == [s.id for s in pipelines[0].statuses]
    assert {u.id for u in await kommo_api.list_users()} == set(acme.users)

    fetched_contact = await kommo_api.get_contact(contact.id)
    assert (fetched_contact.phones, fetched_contact.emails) == (["+15550001"], ["ann@example.com"])
    assert (await kommo_api.get_lead(lead.id)).contact_ids == [contact.id]

    note = await kommo_api.add_note(lead.id, "Qualified by AI")
    assert acme.notes[-1]["id"] == note.id
    assert acme.notes[-1]["params"] == {"text": "Qualified by AI"}
    due = int(time.time()) + 3600
    task = await kommo_api.add_task(lead.id, "Call back", due)
    assert (task.entity_id, task.complete_till) == (lead.id, due)
    assert acme.tasks[-1]["id"] == task.id


async def test_accounts_are_isolated_by_token(
    kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient
) -> None:
    other = kommo.add_account(f"other{next(_counter)}")
    foreign = kommo.add_lead(other, "Not yours")
    with pytest.raises(KommoNotFound):
        await kommo_api.get_lead(foreign.id)
    assert (await kommo_api.get_account()).id == acme.id


# ----------------------------------------------------------------------------- failures


async def test_injected_server_error_is_retryable(
    kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient
) -> None:
    kommo.fail_next(acme, 1, status=503)
    with pytest.raises(KommoServerError) as exc:
        await kommo_api.get_account()
    assert (exc.value.status, exc.value.retryable) == (503, True)
    assert (await kommo_api.get_account()).id == acme.id  # only the next request failed

    kommo.fail_next(acme, 1, status=429, retry_after=7)
    with pytest.raises(KommoRateLimited) as limited:
        await kommo_api.get_account()
    assert (limited.value.retryable, limited.value.retry_after) == (True, 7.0)


async def test_unpaid_account_is_402(kommo: KommoSandbox, acme: SandboxAccount, kommo_api: KommoClient) -> None:
    kommo.set_paid(acme, False)
    with pytest.raises(KommoPaymentRequired) as exc:
        await kommo_api.get_account()
    assert exc.value.retryable is False


async def test_transport_error_is_retryable() -> None:
    from integrations.kommo.errors import KommoTransportError

    async with KommoClient("http://127.0.0.1:9", "token", timeout=1) as api:
        with pytest.raises(KommoTransportError) as exc:
            await api.get_account()
    assert exc.value.retryable is True


async def test_rate_limit_429_then_403_block() -> None:
    now = [1_800_000_000.0]  # frozen clock: every request lands in one 1 s window
    async with KommoSandbox(clock=lambda: now[0], block_after=5, block_seconds=30) as kommo:
        acme = kommo.add_account("acme")
        async with KommoClient(kommo.base_url, kommo.issue_tokens(acme).access_token) as api:

            async def burst(n: int) -> list[BaseException | object]:
                return await asyncio.gather(*(api.get_account() for _ in range(n)), return_exceptions=True)

            first = await burst(10)
            assert sum(not isinstance(r, BaseException) for r in first) == 7
            assert sum(isinstance(r, KommoRateLimited) for r in first) == 3

            second = await burst(10)  # 2 more 429s reach the threshold of 5, then blocked
            assert sum(isinstance(r, KommoRateLimited) for r in second) == 2
            assert sum(isinstance(r, KommoBlocked) for r in second) == 8

            with pytest.raises(KommoBlocked) as blocked:
                await api.get_account()
            assert blocked.value.retryable is True
            assert blocked.value.retry_after == 30

            now[0] += 31
            assert (await api.get_account()).id == acme.id
        statuses = [r.status for r in kommo.requests_for(acme)]
        assert statuses.count(200) == 8
        assert statuses.count(429) == 5


async def test_sliding_window_limiter_keeps_client_under_the_limit() -> None:
    async with KommoSandbox() as kommo:  # real clock, 7 requests/s
        acme = kommo.add_account("acme")
        limiter = SlidingWindowRateLimiter(max_calls=7, period=1.1)
        token = kommo.issue_tokens(acme).access_token
        async with KommoClient(kommo.base_url, token, rate_limiter=limiter) as api:
            results = await asyncio.gather(*(api.get_account() for _ in range(9)))
        assert len(results) == 9
        times = [r.time for r in kommo.requests_for(acme)]
        assert all(r.status == 200 for r in kommo.requests_for(acme))
        assert times[7] - times[0] >= 1.0


# ----------------------------------------------------------------------------- amojo


def sandbox_clock(kommo: KommoSandbox) -> datetime:
    # Other tests in this module advance the sandbox clock; amojo checks Date against it.
    return datetime.fromtimestamp(kommo.now(), UTC)


async def test_amojo_send_message_signed(kommo: KommoSandbox, acme: SandboxAccount) -> None:
    ann = ChatParticipant(id="client-42", name="Ann")
    amojo = AmojoClient(kommo.base_url, acme.channel_id, acme.channel_secret, clock=lambda: sandbox_clock(kommo))
    async with amojo:
        first = await amojo.send_message(acme.scope_id, "conv-1", "Hello Ann!", "msg-1", receiver=ann)
        again = await amojo.send_message(acme.scope_id, "conv-1", "Hello Ann!", "msg-1", receiver=ann)
    assert first.msgid == "msg-1"
    assert again.ref_id == first.ref_id  # amojo dedupes on msgid
    mine = [m for m in kommo.sent_messages if m.scope_id == acme.scope_id]
    assert [(m.text, m.direction, m.duplicate) for m in mine] == [
        ("Hello Ann!", "outgoing", False),
        ("Hello Ann!", "outgoing", True),
    ]
    assert mine[0].receiver == {"id": "client-42", "name": "Ann"}


async def test_amojo_rejects_forged_and_stale_signatures(kommo: KommoSandbox, acme: SandboxAccount) -> None:
    before = len(kommo.sent_messages)
    forged = AmojoClient(kommo.base_url, acme.channel_id, "not-the-secret", clock=lambda: sandbox_clock(kommo))
    async with forged:
        with pytest.raises(KommoForbidden) as exc:
            await forged.send_message(acme.scope_id, "conv-1", "hi", "msg-x")
    assert (exc.value.status, exc.value.retryable) == (403, False)

    stale_clock = sandbox_clock(kommo) - timedelta(minutes=20)
    async with AmojoClient(kommo.base_url, acme.channel_id, acme.channel_secret, clock=lambda: stale_clock) as stale:
        with pytest.raises(KommoForbidden):
            await stale.send_message(acme.scope_id, "conv-1", "hi", "msg-y")
    assert len(kommo.sent_messages) == before


# ----------------------------------------------------------------------------- webhooks to us


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A throwaway HTTP endpoint recording what the sandbox posts to it."""
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> PlainTextResponse:
        received.append((dict(request.headers), await request.body()))
        return PlainTextResponse("ok")

    # A listening socket queues connections until uvicorn accepts them: no startup wait needed.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{port}/hook", received
    server.should_exit = True
    await task


async def test_sandbox_sends_crm_webhook_and_signed_chat_hook(
    kommo: KommoSandbox, acme: SandboxAccount, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    lead = kommo.add_lead(acme, "Deal")
    response = await kommo.send_crm_webhook(
        url, acme, [{"entity": "lead", "action": "status", "id": lead.id, "status_id": 142, "pipeline_id": 5}]
    )
    assert response.status_code == 200
    headers, body = received[-1]
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    parsed = parse_crm_webhook(httpx.QueryParams(body.decode()).multi_items())
    assert parsed.account.id == acme.id
    assert (parsed.events[0].lead_id, parsed.events[0].status_id) == (lead.id, 142)

    payload = kommo.chat_hook_payload(acme, "conv-1", "Manager here")
    await kommo.send_chat_hook(url, acme, payload)
    headers, body = received[-1]
    assert verify_body_signature(acme.channel_secret, body, headers["x-signature"])
    assert not verify_body_signature("other-secret", body, headers["x-signature"])
    async with AmojoClient(kommo.base_url, acme.channel_id, acme.channel_secret) as amojo:
        assert amojo.verify_hook(body, headers["x-signature"])
    assert [d.status for d in kommo.webhook_deliveries[-2:]] == [200, 200]


async def test_a_failed_crm_webhook_is_retried_on_kommos_schedule_and_a_failing_url_is_switched_off() -> None:
    answers = [503, 500]  # then 200
    app = FastAPI()

    @app.post("/hook")
    async def hook() -> PlainTextResponse:
        return PlainTextResponse("", status_code=answers.pop(0) if answers else 200)

    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # Its own sandbox: the test moves the clock by hours, past the amojo Date tolerance of the shared one.
    async with KommoSandbox(rate_limit=None) as kommo:
        acme = kommo.add_account("retries")
        event = {"entity": "lead", "action": "status", "id": 7, "status_id": 142, "pipeline_id": 5}
        start = kommo.now()
        assert (await kommo.send_crm_webhook(url, acme, [event])).status_code == 503
        assert kommo.pending_crm_redeliveries() == [(url, 2, pytest.approx(start + 300, abs=1))]
        assert await kommo.redeliver_crm_webhooks() == []  # not due yet

        kommo.advance(300)
        [second] = await kommo.redeliver_crm_webhooks()
        kommo.advance(15 * 60)
        [third] = await kommo.redeliver_crm_webhooks()

        assert [(d.attempt, d.status) for d in (second, third)] == [(2, 500), (3, 200)]
        assert second.body == third.body == kommo.webhook_deliveries[0].body
        assert kommo.pending_crm_redeliveries() == []

        closed = socket.create_server(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        closed.close()  # nothing listens there any more: every delivery is refused
        for _ in range(100):
            with pytest.raises(httpx.ConnectError):
                await kommo.send_crm_webhook(dead, acme, [event])
        assert dead in kommo.switched_off_webhooks
        assert all(pending[0] != dead for pending in kommo.pending_crm_redeliveries())
        with pytest.raises(WebhookSwitchedOff):
            await kommo.send_crm_webhook(dead, acme, [event])
        assert url not in kommo.switched_off_webhooks
    server.should_exit = True
    await task
