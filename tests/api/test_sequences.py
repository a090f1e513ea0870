"""Sequences, enrolments and triggers through the HTTP API (real Postgres, session Temporal test server).

Enrolments started here begin with a long wait, so nothing reaches Kommo; every test cancels what
it enrolled (the sends themselves are covered in tests/workflows/test_sequence_enrollment.py).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Enrollment, EnrollmentStatus, Lead
from tests.harness import Tenant
from tests.sequence_support import make_lead

MISSING = "00000000-0000-4000-8000-000000000000"
HOLD = [
    {"type": "wait", "id": "hold", "duration": "P10D", "next": "hello"},
    {"type": "send_message", "id": "hello", "text": "Hi {{ first_name }}"},
]
SEQUENCE = {"name": "Warm-up", "steps": HOLD, "send_window": {"any_time": True}}
TRIGGER = {"name": "On negotiation", "event": {"type": "status_changed", "status_id": 555},
           "actions": [{"type": "notify", "title": "Negotiating"}], "per_lead_limit": 1}


async def create_agent(client: httpx.AsyncClient, tenant: Tenant) -> str:
    r = await client.post("/api/agents", json={"name": "Closer", "status": "active"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def create_sequence(client: httpx.AsyncClient, tenant: Tenant, agent: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/api/agents/{agent}/sequences", json={**SEQUENCE, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def create_trigger(client: httpx.AsyncClient, tenant: Tenant, agent: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/api/agents/{agent}/triggers", json={**TRIGGER, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def enroll(client: httpx.AsyncClient, tenant: Tenant, agent: str, sequence: str, body: dict[str, Any],
                 **headers: str) -> httpx.Response:
    return await client.post(f"/api/agents/{agent}/sequences/{sequence}/enrollments", json=body,
                             headers={**tenant.headers, **headers})


async def live_rows(sessions: async_sessionmaker[AsyncSession], sequence: str) -> list[Enrollment]:
    async with sessions() as session:
        rows = await session.scalars(select(Enrollment).where(Enrollment.sequence_id == uuid.UUID(sequence)))
        return list(rows.all())


async def wait_rows(sessions: async_sessionmaker[AsyncSession], sequence: str, status: EnrollmentStatus,
                    count: int) -> None:
    for _ in range(300):
        if sum(r.status == status for r in await live_rows(sessions, sequence)) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} {status} enrolments")


# Every operation, with a body that would succeed on the caller's own resources.
OPERATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/sequences", None), ("POST", "/sequences", SEQUENCE), ("PUT", "/sequences", {"sequences": []}),
    ("PATCH", "/sequences/{sequenceId}", {"name": "x"}), ("DELETE", "/sequences/{sequenceId}", None),
    ("POST", "/sequences/{sequenceId}/enrollments", {"kommo_lead_ids": [1]}),
    ("GET", "/sequences/{sequenceId}/enrollments", None),
    ("GET", "/sequences/{sequenceId}/enrollments/{enrollmentId}", None),
    ("PATCH", "/sequences/{sequenceId}/enrollments/{enrollmentId}", {"action": "pause"}),
    ("DELETE", "/sequences/{sequenceId}/enrollments/{enrollmentId}", None),
    ("GET", "/triggers", None), ("POST", "/triggers", TRIGGER), ("GET", "/triggers/{triggerId}", None),
    ("PATCH", "/triggers/{triggerId}", {"enabled": False}), ("DELETE", "/triggers/{triggerId}", None),
]


async def call(client: httpx.AsyncClient, method: str, agent: str, template: str, body: dict[str, Any] | None,
               ids: dict[str, str], headers: dict[str, str] | None) -> httpx.Response:
    return await client.request(method, f"/api/agents/{agent}" + template.format(**ids), json=body, headers=headers)


def ids(**overrides: str) -> dict[str, str]:
    return {"sequenceId": MISSING, "enrollmentId": MISSING, "triggerId": MISSING, **overrides}


# ---- the matrix ---------------------------------------------------------------------------------


async def test_every_operation_requires_a_token(client: httpx.AsyncClient) -> None:
    for method, template, body in OPERATIONS:
        r = await call(client, method, MISSING, template, body, ids(), None)
        assert r.status_code == 401, (method, template, r.text)


async def test_every_operation_on_a_missing_agent_or_resource_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for method, template, body in OPERATIONS:
        r = await call(client, method, str(uuid.uuid4()), template, body, ids(), tenant.headers)
        assert r.status_code == 404, (method, template, r.text)
        assert r.json()["detail"] == "Agent not found."
    agent = await create_agent(client, tenant)
    for method, template, body in OPERATIONS:
        if "{" not in template:
            continue
        r = await call(client, method, agent, template, body, ids(), tenant.headers)
        assert r.status_code == 404, (method, template, r.text)


async def test_another_tenants_agent_sequence_enrolment_and_trigger_are_not_found(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create_agent(client, other_tenant)
    their_sequence = (await create_sequence(client, other_tenant, theirs))["id"]
    lead = await make_lead(sessions, other_tenant.org_id, None, None)
    enrolled = (await enroll(client, other_tenant, theirs, their_sequence, {"lead_ids": [str(lead.id)]})).json()
    their_ids = ids(sequenceId=their_sequence, enrollmentId=str(enrolled["results"][0]["enrollment_id"]),
                    triggerId=(await create_trigger(client, other_tenant, theirs))["id"])
    mine = await create_agent(client, tenant)
    for agent in (theirs, mine):
        for method, template, body in OPERATIONS:
            if agent == mine and "{" not in template:
                continue
            r = await call(client, method, agent, template, body, their_ids, tenant.headers)
            assert r.status_code == 404, (agent == mine, method, template, r.text)
    # Nothing of theirs changed.
    listed = (await client.get(f"/api/agents/{theirs}/sequences", headers=other_tenant.headers)).json()
    assert [s["name"] for s in listed["items"]] == ["Warm-up"]
    r = await call(client, "DELETE", theirs, "/sequences/{sequenceId}/enrollments/{enrollmentId}", None, their_ids,
                   other_tenant.headers)
    assert r.json()["status"] == "cancelled"


async def test_malformed_ids_bodies_and_paging_are_bad_requests(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    sequence = (await create_sequence(client, tenant, agent))["id"]
    for method, template, body in OPERATIONS:
        r = await call(client, method, "not-a-uuid", template, body, ids(), tenant.headers)
        assert r.status_code == 400, (method, template, r.text)
        if "{" in template:
            bad = ids(sequenceId=sequence, enrollmentId="nope", triggerId="nope")
            if "{enrollmentId}" not in template and "{triggerId}" not in template:
                bad["sequenceId"] = "nope"
            r = await call(client, method, agent, template, body, bad, tenant.headers)
            assert r.status_code == 400, (method, template, r.text)
    base = f"/api/agents/{agent}"
    bad_bodies = [
        ("POST", "/sequences", {**SEQUENCE, "org_id": str(uuid.uuid4())}),
        ("POST", "/sequences", {**SEQUENCE, "steps": []}),
        ("PUT", "/sequences", {"sequences": [{"name": "no steps"}]}),
        ("PATCH", f"/sequences/{sequence}", {"name": None}),
        ("POST", f"/sequences/{sequence}/enrollments", {}),
        ("POST", f"/sequences/{sequence}/enrollments", {"lead_ids": ["x"]}),
        ("POST", "/triggers", {**TRIGGER, "actions": []}),
        ("POST", "/triggers", {**TRIGGER, "event": {"type": "solar_eclipse"}}),
    ]
    for method, path, body in bad_bodies:
        r = await client.request(method, base + path, json=body, headers=tenant.headers)
        assert r.status_code == 400, (method, path, r.text)
    for path in ("/sequences", f"/sequences/{sequence}/enrollments", "/triggers"):
        assert (await client.get(base + path, params={"limit": 0}, headers=tenant.headers)).status_code == 400
        assert (await client.get(base + path, params={"cursor": "x!"}, headers=tenant.headers)).status_code == 400
    assert (await client.get(f"{base}/sequences/{sequence}/enrollments", params={"status": "asleep"},
                             headers=tenant.headers)).status_code == 400


# ---- sequences ----------------------------------------------------------------------------------


async def test_an_invalid_step_graph_is_rejected_with_the_path_of_each_problem(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    steps = [
        {"type": "send_message", "id": "a", "text": "Hi {{ nickname }}", "next": "b"},
        {"type": "wait", "id": "b", "duration": "P1D", "next": "a"},
        {"type": "wait", "id": "c", "duration": "P1D", "next": "nowhere"},
    ]
    r = await client.post(f"/api/agents/{agent}/sequences", json={**SEQUENCE, "steps": steps}, headers=tenant.headers)
    assert r.status_code == 400
    errors = {(e["field"], e["message"]) for e in r.json()["errors"]}
    assert ("body.steps[0]", "cycle: a -> b -> a") in errors
    assert ("body.steps[2].next", "unknown step 'nowhere'") in errors
    assert ("body.steps[0].text", "undeclared variable 'nickname'") in errors
    r = await client.post(f"/api/agents/{agent}/sequences", json={**SEQUENCE, "steps": [
        {"type": "end", "id": "a"}, {"type": "end", "id": "orphan"}]}, headers=tenant.headers)
    assert [e["field"] for e in r.json()["errors"]] == ["body.steps[1]"]


async def test_sequences_are_versioned_reordered_replaced_and_archived(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/sequences"
    first = await create_sequence(client, tenant, agent, name="First", rules={"reenrollment": "once"})
    second = await create_sequence(client, tenant, agent, name="Second")
    assert (first["version"], first["position"], second["position"]) == (1, 0, 1)
    assert first["rules"]["reenrollment"] == "once"
    assert first["send_window"]["business_hours"]["0"][0]["start"] == "00:00:00"

    renamed = (await client.patch(f"{base}/{first['id']}", json={"name": "Renamed"}, headers=tenant.headers)).json()
    assert (renamed["name"], renamed["version"]) == ("Renamed", 1)
    edited = (await client.patch(f"{base}/{first['id']}", json={"steps": [{"type": "end", "id": "bye"}],
                                                                 "exit_criteria": {"on_reply": False}},
                                 headers=tenant.headers)).json()
    assert (edited["version"], edited["steps"], edited["exit_criteria"]["on_reply"]) == (
        2, [{"id": "bye", "name": "", "type": "end"}], False)
    same = (await client.patch(f"{base}/{first['id']}", json={"exit_criteria": {"on_reply": False}},
                               headers=tenant.headers)).json()
    assert same["version"] == 2  # nothing changed, no new version

    # Replace: reorder, create one, leave "Second" out (archived, its enrolments cancelled).
    lead = await make_lead(sessions, tenant.org_id, None, None)
    assert (await enroll(client, tenant, agent, second["id"], {"lead_ids": [str(lead.id)]})).status_code == 201
    r = await client.put(base, json={"sequences": [{"name": "Third", "steps": HOLD}, {"id": first["id"]}]},
                         headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert [(s["name"], s["position"]) for s in r.json()["items"]] == [("Third", 0), ("Renamed", 1)]
    listed = (await client.get(base, params={"limit": 1}, headers=tenant.headers)).json()
    assert [s["name"] for s in listed["items"]] == ["Third"]
    rest = (await client.get(base, params={"cursor": listed["next_cursor"]}, headers=tenant.headers)).json()
    assert [s["name"] for s in rest["items"]] == ["Renamed"]
    assert (await client.patch(f"{base}/{second['id']}", json={"name": "x"}, headers=tenant.headers)).status_code == 404
    await wait_rows(sessions, second["id"], EnrollmentStatus.cancelled, 1)
    [row] = await live_rows(sessions, second["id"])
    assert row.exit_reason == "sequence_archived"
    r = await client.put(base, json={"sequences": [{"id": second["id"]}]}, headers=tenant.headers)
    assert r.status_code == 400

    assert (await client.delete(f"{base}/{first['id']}", headers=tenant.headers)).status_code == 204
    assert [s["name"] for s in (await client.get(base, headers=tenant.headers)).json()["items"]] == ["Third"]
    assert (await client.delete(f"{base}/{first['id']}", headers=tenant.headers)).status_code == 404


# ---- enrolments ---------------------------------------------------------------------------------


async def test_enrolment_answers_per_lead_and_honours_the_idempotency_key(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    sequence = (await create_sequence(client, tenant, agent, rules={"reenrollment": "once"}))["id"]
    good = await make_lead(sessions, tenant.org_id, None, None, name="Good")
    opted = await make_lead(sessions, tenant.org_id, None, None, name="Gone")
    async with sessions() as session:
        await session.execute(update(Lead).where(Lead.id == opted.id).values(opted_out=True))
        await session.commit()
    body = {"lead_ids": [str(good.id), str(opted.id), str(good.id), MISSING], "kommo_lead_ids": [987654321]}
    r = await enroll(client, tenant, agent, sequence, body, **{"Idempotency-Key": "batch-1"})
    assert r.status_code == 201, r.text
    answer = r.json()
    reasons = [(x["enrolled"], x["reason"]) for x in answer["results"]]
    assert reasons == [(True, None), (False, "opted_out"), (False, "duplicate_in_request"),
                       (False, "lead_not_found"), (False, "lead_not_found")]
    assert (answer["enrolled"], answer["rejected"], answer["bulk_workflow_id"]) == (1, 4, None)
    enrolled = answer["results"][0]
    assert enrolled["workflow_id"] == f"sequence/{tenant.org_id}/{sequence}/{good.id}"

    again = await enroll(client, tenant, agent, sequence, body, **{"Idempotency-Key": "batch-1"})
    assert again.json() == answer
    clash = await enroll(client, tenant, agent, sequence, {"lead_ids": [str(good.id)]},
                         **{"Idempotency-Key": "batch-1"})
    assert clash.status_code == 409
    fresh = await enroll(client, tenant, agent, sequence, {"lead_ids": [str(good.id)]})
    assert fresh.json()["results"][0]["reason"] == "already_active"

    base = f"/api/agents/{agent}/sequences/{sequence}/enrollments"
    await wait_rows(sessions, sequence, EnrollmentStatus.active, 1)
    listed = (await client.get(base, params={"status": "active", "lead_id": str(good.id)},
                               headers=tenant.headers)).json()
    assert [e["id"] for e in listed["items"]] == [enrolled["enrollment_id"]]
    assert (await client.get(base, params={"status": "completed"}, headers=tenant.headers)).json()["items"] == []
    await client.delete(f"{base}/{enrolled['enrollment_id']}", headers=tenant.headers)


async def test_an_enrolment_can_be_read_paused_resumed_skipped_and_cancelled(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    steps = [{"type": "wait", "id": "hold", "duration": "P10D", "next": "again"},
             {"type": "wait", "id": "again", "duration": "P10D"}]
    sequence = (await create_sequence(client, tenant, agent, steps=steps))["id"]
    lead = await make_lead(sessions, tenant.org_id, None, None)
    enrolled = (await enroll(client, tenant, agent, sequence, {"lead_ids": [str(lead.id)]})).json()["results"][0]
    one = f"/api/agents/{agent}/sequences/{sequence}/enrollments/{enrolled['enrollment_id']}"
    await wait_rows(sessions, sequence, EnrollmentStatus.active, 1)
    for _ in range(100):
        detail = (await client.get(one, headers=tenant.headers)).json()
        if detail["state"] and detail["state"]["current_step"] == "hold" and detail["next_action_at"]:
            break
        await asyncio.sleep(0.05)
    assert detail["workflow_id"] == enrolled["workflow_id"]
    assert detail["temporal_url"].endswith(enrolled["workflow_id"].replace("/", "%2F"))
    assert detail["state"]["history"][0]["kind"] == "enrolled"

    paused = (await client.patch(one, json={"action": "pause", "reason": "holiday"}, headers=tenant.headers)).json()
    assert (paused["status"], paused["state"]["paused"]) == ("paused", True)
    assert (await client.patch(one, json={"action": "pause"}, headers=tenant.headers)).status_code == 409
    resumed = (await client.patch(one, json={"action": "resume"}, headers=tenant.headers)).json()
    assert resumed["status"] == "active"
    wrong = await client.patch(one, json={"action": "skip", "step_id": "again"}, headers=tenant.headers)
    assert wrong.status_code == 409
    assert "current step is hold" in wrong.json()["detail"]
    skipped = (await client.patch(one, json={"action": "skip", "step_id": "hold"}, headers=tenant.headers)).json()
    assert skipped["state"]["current_step"] == "again"
    assert (await client.patch(one, json={"action": "fly"}, headers=tenant.headers)).status_code == 400

    cancelled = await client.delete(one, headers=tenant.headers)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["exit_reason"]) == ("cancelled", "manual")
    assert (await client.delete(one, headers=tenant.headers)).status_code == 409
    assert (await client.patch(one, json={"action": "resume"}, headers=tenant.headers)).status_code == 409


async def test_a_large_enrolment_is_handed_to_the_bulk_workflow(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    sequence = (await create_sequence(client, tenant, agent))["id"]
    leads = [await make_lead(sessions, tenant.org_id, None, None, name=f"L{i}") for i in range(30)]
    r = await enroll(client, tenant, agent, sequence, {"kommo_lead_ids": [lead.kommo_id for lead in leads]})
    answer = r.json()
    assert answer["enrolled"] == 30
    assert answer["bulk_workflow_id"].startswith(f"bulk-enrollment/{tenant.org_id}/")
    await wait_rows(sessions, sequence, EnrollmentStatus.active, 30)
    # Archiving cancels all of them, in the background.
    assert (await client.delete(f"/api/agents/{agent}/sequences/{sequence}", headers=tenant.headers)).status_code == 204
    await wait_rows(sessions, sequence, EnrollmentStatus.cancelled, 30)
    # History stays readable after archiving.
    listed = await client.get(f"/api/agents/{agent}/sequences/{sequence}/enrollments", headers=tenant.headers)
    assert len(listed.json()["items"]) == 30


async def test_a_paused_sequence_accepts_no_enrolments(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    sequence = (await create_sequence(client, tenant, agent, status="paused"))["id"]
    lead = await make_lead(sessions, tenant.org_id, None, None)
    assert (await enroll(client, tenant, agent, sequence, {"lead_ids": [str(lead.id)]})).status_code == 409


# ---- triggers -----------------------------------------------------------------------------------


async def test_triggers_crud_and_their_references_are_checked(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    sequence = (await create_sequence(client, tenant, agent))["id"]
    base = f"/api/agents/{agent}/triggers"
    created = await create_trigger(client, tenant, agent, conditions=[{"kind": "tag", "tag": "hot"}],
                                   actions=[{"type": "enroll_in_sequence", "sequence_id": sequence},
                                            {"type": "send_message", "text": "Hi {{ first_name }}"}])
    assert (created["event"]["type"], created["per_lead_limit"], created["enabled"]) == ("status_changed", 1, True)
    assert (await client.get(f"{base}/{created['id']}", headers=tenant.headers)).json() == created

    theirs = await create_agent(client, other_tenant)
    their_sequence = (await create_sequence(client, other_tenant, theirs))["id"]
    r = await client.post(base, json={**TRIGGER, "actions": [
        {"type": "enroll_in_sequence", "sequence_id": their_sequence},
        {"type": "assign_agent", "agent_id": theirs},
        {"type": "send_message", "text": "{{ secret }}"}]}, headers=tenant.headers)
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == [
        "body.actions[0].sequence_id", "body.actions[1].agent_id", "body.actions[2].text"]

    patched = (await client.patch(f"{base}/{created['id']}", json={"enabled": False, "per_lead_limit": None,
                                                                   "event": {"type": "tag_added", "tag": "vip"}},
                                  headers=tenant.headers)).json()
    assert (patched["enabled"], patched["per_lead_limit"], patched["event"]["type"]) == (False, None, "tag_added")
    assert (await client.patch(f"{base}/{created['id']}", json={"name": None},
                               headers=tenant.headers)).status_code == 400
    second = await create_trigger(client, tenant, agent, name="Second")
    only_on = (await client.get(base, params={"enabled": "true"}, headers=tenant.headers)).json()
    assert [t["id"] for t in only_on["items"]] == [second["id"]]
    by_event = (await client.get(base, params={"event_type": "tag_added"}, headers=tenant.headers)).json()
    assert [t["id"] for t in by_event["items"]] == [created["id"]]
    assert (await client.delete(f"{base}/{created['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.get(f"{base}/{created['id']}", headers=tenant.headers)).status_code == 404


async def test_deleting_an_agent_archives_its_sequences_and_cancels_their_enrolments(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    sequence = await create_sequence(client, tenant, agent, name="Doomed")
    lead = await make_lead(sessions, tenant.org_id, None, None)
    assert (await enroll(client, tenant, agent, sequence["id"], {"lead_ids": [str(lead.id)]})).status_code == 201
    await wait_rows(sessions, sequence["id"], EnrollmentStatus.active, 1)

    assert (await client.delete(f"/api/agents/{agent}", headers=tenant.headers)).status_code == 204

    await wait_rows(sessions, sequence["id"], EnrollmentStatus.cancelled, 1)
    [row] = await live_rows(sessions, sequence["id"])
    assert row.exit_reason == "sequence_archived"
