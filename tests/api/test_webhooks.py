"""/api/webhooks: endpoints with a signing secret, signed deliveries over real HTTP, retries and the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.e2e.serving import Receiver, webhook_receiver
from tests.harness import Tenant
from workflows.webhook_delivery import WebhookDeliveryWorkflow


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as hooks:
        yield hooks


def valid_signature(secret: str, header: str, body: bytes) -> bool:
    """What a customer's endpoint does with ``Salesflow-Signature``."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def _create(client: httpx.AsyncClient, tenant: Tenant, url: str, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/webhooks", json={"url": url, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def _delivered(client: httpx.AsyncClient, tenant: Tenant, temporal: Client, env: WorkflowEnvironment,
                     delivery_id: str) -> dict[str, Any]:
    handle = temporal.get_workflow_handle_for(WebhookDeliveryWorkflow.run, f"webhook-delivery/{delivery_id}")
    async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
        await handle.result()
    log = (await client.get("/api/webhooks/events", headers=tenant.headers)).json()["items"]
    row: dict[str, Any] = next(d for d in log if d["id"] == delivery_id)
    return row


async def test_a_test_event_arrives_signed_and_the_log_says_so(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, temporal_client: Client,
    workflow_env: WorkflowEnvironment,
) -> None:
    endpoint = await _create(client, tenant, receiver.url, description="CRM mirror", events=["lead.opted_out"])
    assert endpoint["secret"].startswith("whsec_")
    listed = (await client.get("/api/webhooks", headers=tenant.headers)).json()["items"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]
    assert (await client.get(f"/api/webhooks/{endpoint['id']}", headers=tenant.headers)).json()["events"] == [
        "lead.opted_out"]

    test = await client.post(f"/api/webhooks/{endpoint['id']}", json={"action": "test"}, headers=tenant.headers)
    assert test.status_code == 200, test.text
    row = await _delivered(client, tenant, temporal_client, workflow_env, test.json()["delivery_id"])

    assert (row["status"], row["attempts"], row["last_status_code"], row["event_type"]) == (
        "delivered", 1, 200, "webhook.test")
    [(headers, body)] = receiver.received
    assert valid_signature(endpoint["secret"], headers["salesflow-signature"], body)
    assert not valid_signature("whsec_other", headers["salesflow-signature"], body)
    event = json.loads(body)
    assert (event["id"], event["type"], event["data"]) == (row["event_id"], "webhook.test",
                                                          {"endpoint_id": endpoint["id"]})
    assert headers["idempotency-key"] == row["event_id"]


async def test_a_failing_endpoint_is_retried_and_a_refusing_one_is_marked_failed(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, temporal_client: Client,
    workflow_env: WorkflowEnvironment,
) -> None:
    endpoint = await _create(client, tenant, receiver.url)
    receiver.answers[:] = [503, 502]
    flaky = await client.post(f"/api/webhooks/{endpoint['id']}", json={"action": "test"}, headers=tenant.headers)
    row = await _delivered(client, tenant, temporal_client, workflow_env, flaky.json()["delivery_id"])
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 3, 200)
    assert len({body for _, body in receiver.received}) == 1  # the same event, byte for byte, each time

    receiver.answers[:] = [410]
    refused = await client.post(f"/api/webhooks/{endpoint['id']}", json={"action": "test"}, headers=tenant.headers)
    row = await _delivered(client, tenant, temporal_client, workflow_env, refused.json()["delivery_id"])
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "HTTP 410" in row["last_error"]
    failed = (await client.get("/api/webhooks/events", params={"status": "failed", "endpoint_id": endpoint["id"]},
                               headers=tenant.headers)).json()["items"]
    assert [d["id"] for d in failed] == [row["id"]]


async def test_rotating_disabling_and_deleting_an_endpoint(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver,
) -> None:
    endpoint = await _create(client, tenant, receiver.url)
    path = f"/api/webhooks/{endpoint['id']}"
    rotated = (await client.post(path, json={"action": "rotate_secret"}, headers=tenant.headers)).json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != endpoint["secret"]
    disabled = (await client.post(path, json={"action": "disable"}, headers=tenant.headers)).json()
    assert disabled["endpoint"]["enabled"] is False
    silent = (await client.post(path, json={"action": "test"}, headers=tenant.headers)).json()
    assert silent["delivery_id"] is None  # a disabled endpoint is sent nothing
    assert (await client.post(path, json={"action": "enable"}, headers=tenant.headers)).json()["endpoint"]["enabled"]
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert (await client.get(path, headers=tenant.headers)).status_code == 404


async def test_webhooks_check_roles_input_and_ownership(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, member: Tenant, receiver: Receiver,
) -> None:
    theirs = await _create(client, other_tenant, receiver.url)
    for method, path, body in (("GET", f"/api/webhooks/{theirs['id']}", None),
                               ("POST", f"/api/webhooks/{theirs['id']}", {"action": "test"}),
                               ("DELETE", f"/api/webhooks/{theirs['id']}", None),
                               ("GET", f"/api/webhooks/{uuid.uuid4()}", None)):
        assert (await client.request(method, path, json=body, headers=tenant.headers)).status_code == 404, path
    r = await client.get("/api/webhooks/events", params={"endpoint_id": theirs["id"]}, headers=tenant.headers)
    assert r.status_code == 404
    assert (await client.post("/api/webhooks", json={"url": receiver.url}, headers=member.headers)).status_code == 403
    for body in ({"url": "not a url"}, {"url": "ftp://example.com/x"}, {"url": receiver.url, "events": ["lead.won"]},
                 {"url": receiver.url, "secret": "mine"}):
        assert (await client.post("/api/webhooks", json=body, headers=tenant.headers)).status_code == 400, body
    assert (await client.post(f"/api/webhooks/{theirs['id']}", json={"action": "explode"},
                              headers=tenant.headers)).status_code == 400
    assert (await client.get("/api/webhooks/events", params={"status": "lost"},
                             headers=tenant.headers)).status_code == 400
    for method, path in (("GET", "/api/webhooks"), ("POST", "/api/webhooks"), ("GET", "/api/webhooks/events"),
                         ("GET", f"/api/webhooks/{theirs['id']}")):
        assert (await client.request(method, path, json={})).status_code == 401
