"""Kommo signing and webhook parsing (pure), and the sandbox's raw HTTP behaviour."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.kommo.errors import (
    KommoBadRequest,
    KommoBlocked,
    KommoRateLimited,
    KommoServerError,
    error_from_response,
    parse_retry_after,
)
from integrations.kommo.sandbox import KommoSandbox
from integrations.kommo.signing import (
    content_md5,
    kommo_signed_headers,
    sign_body,
    sign_request,
    verify_body_signature,
)
from integrations.kommo.webhooks import (
    WebhookParseError,
    encode_crm_webhook,
    parse_crm_webhook,
    parse_form_to_nested,
)

# ----------------------------------------------------------------------------- signing


def test_content_md5_is_lowercase_hex() -> None:
    assert content_md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"
    assert content_md5(b'{"a":1}') == hashlib.md5(b'{"a":1}').hexdigest()


def test_sign_request_known_answer() -> None:
    body = b'{"event_type":"new_message"}'
    md5 = hashlib.md5(body).hexdigest()
    date = "Sun, 01 Jan 2023 12:00:00 +0000"
    path = "/v2/origin/custom/chan_scope"
    expected = hmac.new(
        b"channel-secret",
        f"POST\n{md5}\napplication/json\n{date}\n{path}".encode(),
        hashlib.sha1,
    ).hexdigest()

    assert sign_request("channel-secret", "post", md5, "application/json", date, path) == expected
    headers = kommo_signed_headers(
        "channel-secret", "POST", path, body, now=datetime(2023, 1, 1, 12, 0, 0, 123, tzinfo=UTC)
    )
    assert headers == {
        "Date": date,
        "Content-Type": "application/json",
        "Content-MD5": md5,
        "X-Signature": expected,
    }


def test_body_signature_known_answer_and_verification() -> None:
    body = b'{"account_id":"x","message":{}}'
    expected = hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    assert sign_body("s3cret", body) == expected
    assert verify_body_signature("s3cret", body, expected)
    assert verify_body_signature("s3cret", body, expected.upper())
    assert not verify_body_signature("s3cret", body + b" ", expected)
    assert not verify_body_signature("other", body, expected)
    assert not verify_body_signature("s3cret", body, None)
    assert not verify_body_signature("s3cret", body, "")


# ----------------------------------------------------------------------------- errors


def test_error_classification() -> None:
    assert isinstance(error_from_response(429, None, {}), KommoRateLimited)
    blocked = error_from_response(403, {"title": "Forbidden"}, {})
    assert isinstance(blocked, KommoBlocked)
    assert (blocked.retryable, blocked.retry_after) == (True, 60.0)
    server = error_from_response(502, "<html>bad gateway</html>", {"Retry-After": "3"})
    assert isinstance(server, KommoServerError)
    assert (server.retryable, server.retry_after) == (True, 3.0)
    bad = error_from_response(400, {"title": "Bad Request", "detail": "limit"}, {})
    assert isinstance(bad, KommoBadRequest)
    assert not bad.retryable
    assert "limit" in bad.detail
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:10 GMT", now=now) == 10.0
    assert parse_retry_after("soon") is None


# ----------------------------------------------------------------------------- webhooks

RAW_STATUS_HOOK = (
    "leads%5Bstatus%5D%5B0%5D%5Bid%5D=25399013&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142"
    "&leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=3104455&leads%5Bstatus%5D%5B0%5D%5Bold_status_id%5D=31031"
    "&leads%5Bstatus%5D%5B0%5D%5Bold_pipeline_id%5D=3104455&leads%5Bstatus%5D%5B0%5D%5Blast_modified%5D=1700000000"
    "&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bid%5D=77"
    "&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Bvalue%5D=hello"
    "&account%5Bsubdomain%5D=acme&account%5Bid%5D=29085955"
    "&account%5B_links%5D%5Bself%5D=https%3A%2F%2Facme.kommo.com"
)


def test_parse_form_to_nested_builds_dicts_and_lists() -> None:
    nested = parse_form_to_nested(parse_qsl(RAW_STATUS_HOOK))
    item = nested["leads"]["status"][0]
    assert item["id"] == "25399013"
    assert item["custom_fields"] == [{"id": "77", "values": [{"value": "hello"}]}]
    assert nested["account"] == {
        "subdomain": "acme",
        "id": "29085955",
        "_links": {"self": "https://acme.kommo.com"},
    }


def test_parse_status_webhook() -> None:
    hook = parse_crm_webhook(parse_qsl(RAW_STATUS_HOOK))
    assert (hook.account.id, hook.account.subdomain) == (29085955, "acme")
    [event] = hook.events
    assert (event.entity, event.action, event.entity_id, event.lead_id) == ("lead", "status", 25399013, 25399013)
    assert (event.status_id, event.pipeline_id, event.old_status_id) == (142, 3104455, 31031)
    assert event.event_key == "29085955:lead:status:25399013:p3104455:s142:t1700000000"


@pytest.mark.parametrize(
    "key",
    [
        "leads[status",
        "leads]status[",
        "[leads][status]",
        "leads[status]x",
        "leads[status][0][id][]",
        "leads[[status]]",
        "",
        "a" + "[b]" * 10,
    ],
)
def test_malformed_keys_are_rejected(key: str) -> None:
    with pytest.raises(WebhookParseError) as exc:
        parse_form_to_nested([(key, "1"), ("account[id]", "1")])
    assert f"malformed key {key!r}" in str(exc.value)


def test_key_that_is_both_value_and_container_is_rejected() -> None:
    with pytest.raises(WebhookParseError, match=r"leads\[status\]"):
        parse_form_to_nested([("leads[status]", "1"), ("leads[status][0][id]", "2")])
    with pytest.raises(WebhookParseError, match=r"leads\[status\]"):
        parse_form_to_nested([("leads[status][0][id]", "2"), ("leads[status]", "1")])


def test_webhook_without_account_or_events_is_rejected() -> None:
    with pytest.raises(WebhookParseError, match="account"):
        parse_crm_webhook([("leads[add][0][id]", "1")])
    with pytest.raises(WebhookParseError, match="no known event"):
        parse_crm_webhook([("account[id]", "1"), ("account[subdomain]", "a")])
    with pytest.raises(WebhookParseError, match="not an integer"):
        parse_crm_webhook([("account[id]", "1"), ("account[subdomain]", "a"), ("leads[add][0][id]", "x")])
    with pytest.raises(WebhookParseError, match="list"):
        parse_crm_webhook([("account[id]", "1"), ("account[subdomain]", "a"), ("leads[add][id]", "1")])


def test_encode_parse_round_trip_all_entities() -> None:
    events: list[dict[str, Any]] = [
        {"entity": "lead", "action": "add", "id": 11, "status_id": 5, "pipeline_id": 2},
        {"entity": "lead", "action": "status", "id": 11, "status_id": 142, "pipeline_id": 2, "old_status_id": 5},
        {"entity": "lead", "action": "responsible", "id": 11, "responsible_user_id": 9, "last_modified": 77},
        {"entity": "lead", "action": "delete", "id": 12},
        {"entity": "contact", "action": "update", "id": 21, "name": "Ann", "last_modified": 78},
        {"entity": "note", "action": "add", "id": 31, "element_id": 11, "element_type": 2, "text": "hi"},
        {
            "entity": "message",
            "action": "add",
            "id": "0b8a-uuid",
            "chat_id": "chat-1",
            "talk_id": 41,
            "contact_id": 21,
            "text": "Hello, I want a quote",
            "element_type": 2,
            "element_id": 11,
            "created_at": 1700000001,
            "author": {"id": "author-1", "type": "external", "name": "Ann"},
        },
        {"entity": "talk", "action": "add", "talk_id": 41, "chat_id": "chat-1", "entity_id": 11, "entity_type": "lead"},
    ]
    body = encode_crm_webhook(123, "acme", events)
    hook = parse_crm_webhook(parse_qsl(body))

    assert hook.account.id == 123
    summary = [(e.entity, e.action, e.entity_id, e.lead_id) for e in hook.events]
    assert summary == [
        ("lead", "add", 11, 11),
        ("lead", "status", 11, 11),
        ("lead", "responsible", 11, 11),
        ("lead", "delete", 12, 12),
        ("contact", "update", 21, None),
        ("note", "add", 31, 11),
        ("message", "add", "0b8a-uuid", 11),
        ("talk", "add", 41, 11),
    ]
    message = hook.events[6]
    assert (message.text, message.chat_id, message.author_type, message.talk_id) == (
        "Hello, I want a quote",
        "chat-1",
        "external",
        41,
    )
    assert message.event_key == "123:message:add:0b8a-uuid"
    assert hook.events[2].responsible_user_id == 9
    assert len({e.event_key for e in hook.events}) == len(events)


def test_event_key_is_stable_on_redelivery_and_distinct_per_change() -> None:
    def key(**fields: Any) -> str:
        event = {"entity": "lead", "action": "status", "id": 1, "pipeline_id": 2, **fields}
        return parse_crm_webhook(parse_qsl(encode_crm_webhook(9, "a", [event]))).events[0].event_key

    assert key(status_id=142, last_modified=100) == key(status_id=142, last_modified=100)
    assert key(status_id=142, last_modified=100) != key(status_id=143, last_modified=100)
    assert key(status_id=142, last_modified=100) != key(status_id=142, last_modified=200)
    # No modification time: falls back to a content hash, still stable on redelivery.
    assert key(status_id=142) == key(status_id=142)
    assert key(status_id=142, name="x") != key(status_id=142, name="y")


def test_unknown_entities_and_actions_are_skipped() -> None:
    pairs = [
        ("account[id]", "1"),
        ("account[subdomain]", "a"),
        ("companies[add][0][id]", "5"),
        ("leads[restore][0][id]", "6"),
        ("leads[add][0][id]", "7"),
    ]
    assert [(e.entity, e.entity_id) for e in parse_crm_webhook(pairs).events] == [("lead", 7)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["lead", "contact", "note", "talk"]),
            st.sampled_from(["add", "update", "status", "delete", "responsible"]),
            st.integers(min_value=1, max_value=2**53),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_round_trip_property(items: list[tuple[str, str, int, str]]) -> None:
    events = [
        {"entity": entity, "action": action, ("talk_id" if entity == "talk" else "id"): ident, "text": text}
        for entity, action, ident, text in items
    ]
    hook = parse_crm_webhook(parse_qsl(encode_crm_webhook(5, "acme", events), keep_blank_values=True))
    # The encoder groups by (entity, action); compare as multisets.
    got = sorted((e.entity, e.action, e.entity_id, e.text or "") for e in hook.events)
    assert got == sorted(items)


# ----------------------------------------------------------------------------- sandbox over raw HTTP


@pytest.fixture(scope="module")
async def kommo() -> AsyncIterator[KommoSandbox]:
    async with KommoSandbox(rate_limit=None) as sandbox:
        yield sandbox


async def test_errors_are_problem_json(kommo: KommoSandbox) -> None:
    acme = kommo.add_account("problems")
    token = kommo.issue_tokens(acme).access_token
    async with httpx.AsyncClient(base_url=kommo.base_url) as http:
        missing = await http.get("/api/v4/leads/42", headers={"Authorization": f"Bearer {token}"})
        unauthenticated = await http.get("/api/v4/leads")
        too_big = await http.get("/api/v4/leads?limit=251", headers={"Authorization": f"Bearer {token}"})
        empty = await http.get("/api/v4/leads", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "title": "Not Found",
        "type": "https://httpstatus.es/404",
        "status": 404,
        "detail": "Lead 42 not found",
    }
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["status"] == 401
    assert too_big.status_code == 400
    assert too_big.json()["validation-errors"][0]["errors"][0]["path"] == "limit"
    assert (empty.status_code, empty.content) == (204, b"")


async def test_hal_page_links_and_request_log(kommo: KommoSandbox) -> None:
    acme = kommo.add_account("hal")
    for i in range(3):
        kommo.add_lead(acme, f"L{i}")
    token = kommo.issue_tokens(acme).access_token
    async with httpx.AsyncClient(base_url=kommo.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        page1 = (await http.get("/api/v4/leads", params={"limit": 2, "with": "contacts"})).json()
        page2 = (await http.get("/api/v4/leads", params={"limit": 2, "page": 2})).json()
    assert page1["_page"] == 1
    assert "page=2" in page1["_links"]["next"]["href"]
    assert len(page1["_embedded"]["leads"]) == 2
    assert "contacts" in page1["_embedded"]["leads"][0]["_embedded"]
    assert "next" not in page2["_links"]
    assert "contacts" not in page2["_embedded"]["leads"][0]["_embedded"]
    log = kommo.requests_for(acme)
    assert [(r.method, r.path, r.status) for r in log] == [("GET", "/api/v4/leads", 200)] * 2


async def test_oauth_authorize_requires_known_client(kommo: KommoSandbox) -> None:
    async with httpx.AsyncClient(base_url=kommo.base_url) as http:
        unknown = await http.get("/oauth", params={"client_id": "nope", "state": "s"})
        no_body = await http.post("/oauth2/access_token", content=b"[]")
    assert unknown.status_code == 400
    assert no_body.status_code == 400


async def test_amojo_checks_content_md5(kommo: KommoSandbox) -> None:
    acme = kommo.add_account("md5")
    path = f"/v2/origin/custom/{acme.scope_id}"
    body = b'{"event_type":"new_message","payload":{}}'
    now = datetime.fromtimestamp(kommo.now(), UTC)
    headers = kommo_signed_headers(acme.channel_secret, "POST", path, body, now=now)
    async with httpx.AsyncClient(base_url=kommo.base_url) as http:
        tampered = await http.post(path, content=body + b" ", headers=headers)
        unknown_scope = await http.post("/v2/origin/custom/nope", content=body, headers=headers)
        invalid_payload = await http.post(path, content=body, headers=headers)
    assert tampered.status_code == 400
    assert unknown_scope.status_code == 404
    assert invalid_payload.status_code == 400  # signature fine, payload lacks msgid
    assert kommo.sent_messages == []


async def test_rate_window_slides(kommo: KommoSandbox) -> None:
    now = [1_800_000_000.0]
    async with KommoSandbox(clock=lambda: now[0]) as limited:
        acme = limited.add_account("slide")
        token = limited.issue_tokens(acme).access_token
        async with httpx.AsyncClient(base_url=limited.base_url, headers={"Authorization": f"Bearer {token}"}) as h:
            codes = [(await h.get("/api/v4/account")).status_code for _ in range(8)]
            now[0] += 0.5
            assert (await h.get("/api/v4/account")).status_code == 429
            now[0] += 0.6  # the first seven are now older than 1 s
            assert (await h.get("/api/v4/account")).status_code == 200
            limited_response = await h.get("/api/v4/account")
    assert codes == [200] * 7 + [429]
    assert limited_response.status_code == 200
    assert limited_response.headers.get("retry-after") is None
