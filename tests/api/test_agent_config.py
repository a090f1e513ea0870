"""Agent sub-resources through every layer: scripts, objections, rules, fields, actions, channels.

The auth/tenancy matrix at the top covers every sub-route of the agent (including knowledge and assets,
whose own behaviour is tested in test_agent_knowledge.py and test_agent_assets.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.harness import Tenant

MISSING = "00000000-0000-4000-8000-000000000000"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SCRIPT = {"stage": "greeting", "name": "Hello", "messages": ["Hi there!", "How can I help?"]}
OBJECTION = {"objection": "Too expensive", "answer": "We pay for ourselves in a month.",
             "trigger_phrases": ["expensive", "price"], "category": "price"}
KNOWLEDGE = {"kind": "faq", "question": "Do you deliver?", "answer": "Yes, everywhere."}
RULE = {"kind": "forbid_topic", "instruction": "Never talk about politics."}
FIELD = {"key": "budget", "label": "Budget", "type": "number", "validation": {"min": 0, "max": 1_000_000}}
ACTION = {"type": "add_tag", "parameters": {"tag": "hot"}}
CHANNEL = {"channel": "telegram", "reply_delay_seconds": 5}


async def create_agent(client: httpx.AsyncClient, tenant: Tenant, **body: object) -> str:
    r = await client.post("/api/agents", json={"name": "Closer", **body}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def post(client: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(path, json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def upload_files(name: str = "pixel.png", data: bytes = PNG_SIGNATURE + b"\x00" * 32) -> dict[str, Any]:
    return {"file": (name, data, "image/png")}


async def populate(client: httpx.AsyncClient, tenant: Tenant, agent: str) -> dict[str, str]:
    """One row of every sub-resource under ``agent``; their ids by placeholder."""
    base = f"/api/agents/{agent}"
    ids = {
        "scriptId": (await post(client, tenant, f"{base}/scripts", SCRIPT))["id"],
        "objectionId": (await post(client, tenant, f"{base}/objections", OBJECTION))["id"],
        "knowledgeId": (await post(client, tenant, f"{base}/knowledge", KNOWLEDGE))["id"],
        "ruleId": (await post(client, tenant, f"{base}/rules", RULE))["id"],
    }
    await post(client, tenant, f"{base}/channels", CHANNEL)
    return ids


# Every operation on an agent's sub-resources, with a body that would succeed on the caller's own agent.
OPERATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/scripts", None), ("POST", "/scripts", SCRIPT),
    ("PATCH", "/scripts/{scriptId}", {"name": "x"}), ("DELETE", "/scripts/{scriptId}", None),
    ("GET", "/objections", None), ("POST", "/objections", OBJECTION), ("DELETE", "/objections/{objectionId}", None),
    ("GET", "/knowledge", None), ("GET", "/knowledge?q=deliver", None), ("POST", "/knowledge", KNOWLEDGE),
    ("DELETE", "/knowledge/{knowledgeId}", None),
    ("GET", "/rules", None), ("POST", "/rules", RULE), ("PUT", "/rules", {"rules": [RULE]}),
    ("PATCH", "/rules/{ruleId}", {"enabled": False}), ("DELETE", "/rules/{ruleId}", None),
    ("GET", "/fields", None), ("POST", "/fields", FIELD),
    ("GET", "/actions", None), ("POST", "/actions", ACTION),
    ("GET", "/channels", None), ("POST", "/channels", {"channel": "viber"}),
    ("PATCH", "/channels/telegram", {"enabled": False}), ("DELETE", "/channels/telegram", None),
    ("GET", "/assets", None), ("POST", "/assets", None), ("DELETE", "/assets/{assetId}", None),
]


async def call(
    client: httpx.AsyncClient, method: str, agent: str, template: str, body: dict[str, Any] | None,
    ids: dict[str, str], headers: dict[str, str] | None,
) -> httpx.Response:
    path = f"/api/agents/{agent}" + template.format(**ids)
    if method == "POST" and template == "/assets":
        return await client.post(path, files=upload_files(), headers=headers)
    return await client.request(method, path, json=body, headers=headers)


def _ids(**overrides: str) -> dict[str, str]:
    return {"scriptId": MISSING, "objectionId": MISSING, "knowledgeId": MISSING, "ruleId": MISSING,
            "assetId": MISSING, **overrides}


async def test_every_sub_route_requires_a_token(client: httpx.AsyncClient) -> None:
    for method, template, body in OPERATIONS:
        r = await call(client, method, MISSING, template, body, _ids(), None)
        assert r.status_code == 401, (method, template, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.get("/api/images")
    assert r.status_code == 401


async def test_every_sub_route_of_a_missing_agent_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for method, template, body in OPERATIONS:
        r = await call(client, method, str(uuid.uuid4()), template, body, _ids(), tenant.headers)
        assert r.status_code == 404, (method, template, r.text)
        assert r.json()["detail"] == "Agent not found."


async def test_every_sub_route_of_another_tenants_agent_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create_agent(client, other_tenant)
    their_ids = await populate(client, other_tenant, theirs)
    for method, template, body in OPERATIONS:
        r = await call(client, method, theirs, template, body, _ids(**their_ids), tenant.headers)
        assert r.status_code == 404, (method, template, r.text)
    # Their rows are untouched.
    rules = (await client.get(f"/api/agents/{theirs}/rules", headers=other_tenant.headers)).json()
    assert [r["instruction"] for r in rules["items"]] == [RULE["instruction"]]


async def test_another_tenants_sub_resource_ids_are_not_found_under_my_agent(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await create_agent(client, tenant)
    theirs = await create_agent(client, other_tenant)
    their_ids = await populate(client, other_tenant, theirs)
    for method, template, body in OPERATIONS:
        if "{" not in template:
            continue
        r = await call(client, method, mine, template, body, _ids(**their_ids), tenant.headers)
        assert r.status_code == 404, (method, template, r.text)
    scripts = (await client.get(f"/api/agents/{theirs}/scripts", headers=other_tenant.headers)).json()
    assert [s["id"] for s in scripts["items"]] == [their_ids["scriptId"]]


async def test_sub_resources_of_a_soft_deleted_agent_become_unreachable(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    ids = await populate(client, tenant, agent)
    assert (await client.delete(f"/api/agents/{agent}", headers=tenant.headers)).status_code == 204
    for method, template, body in OPERATIONS:
        r = await call(client, method, agent, template, body, _ids(**ids), tenant.headers)
        assert r.status_code == 404, (method, template, r.text)


async def test_a_malformed_agent_or_sub_resource_id_is_a_bad_request(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    r = await client.get("/api/agents/not-a-uuid/scripts", headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "path.id"
    r = await client.patch(f"/api/agents/{agent}/scripts/nope", json={"name": "x"}, headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "path.scriptId"
    for path in ("objections/nope", "knowledge/nope", "rules/nope", "assets/nope"):
        assert (await client.delete(f"/api/agents/{agent}/{path}", headers=tenant.headers)).status_code == 400


async def test_lists_reject_bad_paging_and_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    for resource in ("scripts", "objections", "knowledge", "rules", "fields", "actions", "channels", "assets"):
        path = f"/api/agents/{agent}/{resource}"
        assert (await client.get(path, params={"limit": 0}, headers=tenant.headers)).status_code == 400
        r = await client.get(path, params={"cursor": "garbage!"}, headers=tenant.headers)
        assert r.status_code == 400, (resource, r.text)
    for resource, params in [("scripts", {"stage": "nope"}), ("rules", {"kind": "nope"}), ("fields", {"type": "x"}),
                             ("actions", {"type": "fly"}), ("channels", {"enabled": "perhaps"}),
                             ("knowledge", {"kind": "poem"}), ("assets", {"kind": "video"})]:
        r = await client.get(f"/api/agents/{agent}/{resource}", params=params, headers=tenant.headers)
        assert r.status_code == 400, (resource, r.text)


# ---- scripts ---------------------------------------------------------------------------------


async def test_scripts_are_listed_in_position_order_and_paginate(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/scripts"
    first = await post(client, tenant, base, SCRIPT)
    assert first["position"] == 0
    assert first["is_active"] is True
    second = await post(client, tenant, base, {**SCRIPT, "stage": "closing", "name": "Close"})
    assert second["position"] == 1
    await post(client, tenant, base, {**SCRIPT, "stage": "qualification", "name": "Qualify", "position": 1})
    await post(client, tenant, base, {**SCRIPT, "stage": "custom", "name": "Off", "is_active": False, "position": 9})
    names: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(base, params=params, headers=tenant.headers)).json()
        names += [s["name"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Equal positions keep creation order.
    assert names == ["Hello", "Close", "Qualify", "Off"]
    closing = (await client.get(base, params={"stage": "closing"}, headers=tenant.headers)).json()
    assert [s["name"] for s in closing["items"]] == ["Close"]
    inactive = (await client.get(base, params={"is_active": "false"}, headers=tenant.headers)).json()
    assert [s["name"] for s in inactive["items"]] == ["Off"]


async def test_create_script_validates_stage_and_messages(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/scripts"
    bad_bodies = [
        {**SCRIPT, "stage": "small_talk"},
        {**SCRIPT, "messages": []},
        {**SCRIPT, "messages": ["hi"] * 21},
        {**SCRIPT, "messages": ["   "]},
        {**SCRIPT, "name": ""},
        {**SCRIPT, "position": -1},
        {**SCRIPT, "org_id": str(uuid.uuid4())},
        {**SCRIPT, "name": "nul\x00byte"},
    ]
    for body in bad_bodies:
        r = await client.post(base, json=body, headers=tenant.headers)
        assert r.status_code == 400, body
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.post(base, json={**SCRIPT, "messages": ["x"] * 20}, headers=tenant.headers)
    assert r.status_code == 201


async def test_update_script_changes_only_sent_fields_and_refuses_null(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    script = await post(client, tenant, f"/api/agents/{agent}/scripts", SCRIPT)
    path = f"/api/agents/{agent}/scripts/{script['id']}"
    r = await client.patch(path, json={"messages": ["Welcome!"], "is_active": False}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["messages"] == ["Welcome!"]
    assert r.json()["is_active"] is False
    assert r.json()["name"] == "Hello"
    bad_patches: list[dict[str, Any]] = [{"name": None}, {"messages": []}, {"stage": "nope"}, {"agent_id": MISSING}]
    for bad in bad_patches:
        r = await client.patch(path, json=bad, headers=tenant.headers)
        assert r.status_code == 400, bad
    assert (await client.patch(path, json={"name": None}, headers=tenant.headers)).json()["errors"][0]["field"] == (
        "body.name"
    )
    missing = await client.patch(f"/api/agents/{agent}/scripts/{MISSING}", json={"name": "x"}, headers=tenant.headers)
    assert missing.status_code == 404


async def test_delete_script_removes_it(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    script = await post(client, tenant, f"/api/agents/{agent}/scripts", SCRIPT)
    path = f"/api/agents/{agent}/scripts/{script['id']}"
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    listed = (await client.get(f"/api/agents/{agent}/scripts", headers=tenant.headers)).json()
    assert listed["items"] == []


# ---- objections ------------------------------------------------------------------------------


async def test_objections_are_created_filtered_and_deleted(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/objections"
    price = await post(client, tenant, base, OBJECTION)
    assert price["trigger_phrases"] == ["expensive", "price"]
    timing = await post(client, tenant, base, {"objection": "Not now", "answer": "When would suit you?"})
    assert timing["category"] == "general"
    by_category = (await client.get(base, params={"category": "price"}, headers=tenant.headers)).json()
    assert [o["id"] for o in by_category["items"]] == [price["id"]]
    everything = (await client.get(base, headers=tenant.headers)).json()
    assert [o["id"] for o in everything["items"]] == [timing["id"], price["id"]]
    assert (await client.delete(f"{base}/{price['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.delete(f"{base}/{price['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"{base}/{MISSING}", headers=tenant.headers)).status_code == 404


async def test_create_objection_rejects_bad_input(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/objections"
    for body in ({"objection": "x"}, {**OBJECTION, "answer": ""}, {**OBJECTION, "trigger_phrases": ["ok", ""]},
                 {**OBJECTION, "trigger_phrases": ["p"] * 51}, {**OBJECTION, "category": "c" * 65},
                 {**OBJECTION, "trigger_phrases": "price"}):
        r = await client.post(base, json=body, headers=tenant.headers)
        assert r.status_code == 400, body


# ---- rules -----------------------------------------------------------------------------------


async def _rules(client: httpx.AsyncClient, tenant: Tenant, agent: str) -> list[dict[str, Any]]:
    page = (await client.get(f"/api/agents/{agent}/rules", headers=tenant.headers)).json()
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_rules_are_appended_in_order_and_filtered(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/rules"
    await post(client, tenant, base, RULE)
    limit = await post(client, tenant, base, {"kind": "max_length", "instruction": "Be brief.",
                                              "parameters": {"max_chars": 400}})
    await post(client, tenant, base, {"kind": "custom", "instruction": "Use the lead's name.", "enabled": False})
    assert limit["position"] == 1
    assert [r["position"] for r in await _rules(client, tenant, agent)] == [0, 1, 2]
    only = (await client.get(base, params={"kind": "max_length"}, headers=tenant.headers)).json()
    assert [r["parameters"] for r in only["items"]] == [{"max_chars": 400}]
    disabled = (await client.get(base, params={"enabled": False}, headers=tenant.headers)).json()
    assert [r["instruction"] for r in disabled["items"]] == ["Use the lead's name."]


async def test_create_rule_rejects_bad_input(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/rules"
    for body in ({**RULE, "kind": "be_nice"}, {**RULE, "instruction": ""},
                 {"kind": "max_length", "instruction": "Short"},  # max_length needs parameters.max_chars
                 {"kind": "max_length", "instruction": "Short", "parameters": {"max_chars": 0}},
                 {**RULE, "parameters": {"blob": "x" * 20_000}},  # parameters are bounded
                 {**RULE, "parameters": ["not", "an", "object"]},
                 {**RULE, "position": 10_001}):
        r = await client.post(base, json=body, headers=tenant.headers)
        assert r.status_code == 400, body


async def test_put_rules_replaces_the_whole_list_atomically(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/rules"
    old = [await post(client, tenant, base, {**RULE, "instruction": f"old {i}"}) for i in range(3)]
    new: list[dict[str, Any]] = [{"kind": "require_phrase", "instruction": "Say 'Thanks for your time'."},
           {"kind": "max_length", "instruction": "Short answers", "parameters": {"max_chars": 300}},
           {"kind": "handoff_when", "instruction": "Lead asks for a human.", "enabled": False}]
    r = await client.put(base, json={"rules": new}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert [(x["position"], x["instruction"]) for x in r.json()["items"]] == [
        (0, new[0]["instruction"]), (1, "Short answers"), (2, "Lead asks for a human.")]
    current = await _rules(client, tenant, agent)
    assert [x["instruction"] for x in current] == [x["instruction"] for x in new]
    assert not {x["id"] for x in old} & {x["id"] for x in current}
    # The old rules are gone, not just hidden.
    r = await client.patch(f"{base}/{old[0]['id']}", json={"enabled": False}, headers=tenant.headers)
    assert r.status_code == 404


async def test_put_rules_with_one_bad_item_changes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/rules"
    for i in range(2):
        await post(client, tenant, base, {**RULE, "instruction": f"keep {i}"})
    before = await _rules(client, tenant, agent)
    bad_lists = [
        [RULE, {"kind": "max_length", "instruction": "no parameters"}],
        [RULE, {**RULE, "kind": "unknown"}],
        [RULE, {**RULE, "position": 3}],  # positions come from the list order, not the items
        [RULE] * 101,
    ]
    for rules in bad_lists:
        r = await client.put(base, json={"rules": rules}, headers=tenant.headers)
        assert r.status_code == 400, r.text
    r = await client.put(base, json={"rules": [RULE, {"kind": "max_length", "instruction": "x"}]},
                         headers=tenant.headers)
    assert r.json()["errors"][0]["field"].startswith("body.rules.1")
    assert (await client.put(base, json=[RULE], headers=tenant.headers)).status_code == 400
    assert await _rules(client, tenant, agent) == before


async def test_put_rules_with_an_empty_list_clears_them(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    await post(client, tenant, f"/api/agents/{agent}/rules", RULE)
    r = await client.put(f"/api/agents/{agent}/rules", json={"rules": []}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.json()["items"] == []
    assert await _rules(client, tenant, agent) == []


async def test_update_rule_validates_the_resulting_rule(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    rule = await post(client, tenant, f"/api/agents/{agent}/rules", RULE)
    path = f"/api/agents/{agent}/rules/{rule['id']}"
    r = await client.patch(path, json={"kind": "max_length"}, headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"]
    r = await client.patch(path, json={"kind": "max_length", "parameters": {"max_chars": 200}, "position": 4},
                           headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["position"]) == ("max_length", 4)
    for bad in ({"enabled": None}, {"instruction": ""}, {"parameters": {"max_chars": "lots"}}):
        assert (await client.patch(path, json=bad, headers=tenant.headers)).status_code == 400, bad
    after = await client.get(f"/api/agents/{agent}/rules", headers=tenant.headers)
    assert after.json()["items"][0]["parameters"] == {"max_chars": 200}
    assert (await client.patch(f"/api/agents/{agent}/rules/{MISSING}", json={"enabled": False},
                               headers=tenant.headers)).status_code == 404


async def test_delete_rule_removes_it(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    keep = await post(client, tenant, f"/api/agents/{agent}/rules", RULE)
    drop = await post(client, tenant, f"/api/agents/{agent}/rules", {**RULE, "instruction": "drop me"})
    assert (await client.delete(f"/api/agents/{agent}/rules/{drop['id']}", headers=tenant.headers)).status_code == 204
    assert [r["id"] for r in await _rules(client, tenant, agent)] == [keep["id"]]
    r = await client.delete(f"/api/agents/{agent}/rules/{drop['id']}", headers=tenant.headers)
    assert r.status_code == 404


# ---- qualification fields --------------------------------------------------------------------


async def test_fields_are_created_listed_and_filtered(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/fields"
    budget = await post(client, tenant, base, {**FIELD, "kommo_field_id": 123456, "required": True})
    assert budget["validation"] == {"min": 0, "max": 1_000_000}
    assert budget["kommo_field_id"] == 123456
    size = await post(client, tenant, base, {"key": "team_size", "label": "Team size", "type": "select",
                                             "validation": {"options": ["1-10", "11-50", "50+"]}})
    assert size["validation"] == {"options": ["1-10", "11-50", "50+"]}
    phone = await post(client, tenant, base, {"key": "phone", "label": "Phone", "type": "phone",
                                              "validation": {"pattern": r"^\+?\d{7,15}$"}})
    assert phone["required"] is False
    listed = (await client.get(base, headers=tenant.headers)).json()
    assert [f["key"] for f in listed["items"]] == ["phone", "team_size", "budget"]
    selects = (await client.get(base, params={"type": "select"}, headers=tenant.headers)).json()
    assert [f["key"] for f in selects["items"]] == ["team_size"]
    required = (await client.get(base, params={"required": True}, headers=tenant.headers)).json()
    assert [f["key"] for f in required["items"]] == ["budget"]


async def test_a_duplicate_field_key_is_a_conflict(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    other_agent = await create_agent(client, tenant)
    await post(client, tenant, f"/api/agents/{agent}/fields", FIELD)
    r = await client.post(f"/api/agents/{agent}/fields", json={**FIELD, "label": "Again"}, headers=tenant.headers)
    assert r.status_code == 409
    assert r.json()["title"] == "Conflict"
    # Keys are unique per agent, not per organisation; and the request after a 409 still works.
    await post(client, tenant, f"/api/agents/{other_agent}/fields", FIELD)
    await post(client, tenant, f"/api/agents/{agent}/fields", {**FIELD, "key": "budget_2"})


async def test_create_field_validates_key_type_and_rules(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/fields"
    bad_bodies = [
        {**FIELD, "key": "Budget"},
        {**FIELD, "key": "1st"},
        {**FIELD, "key": "bad-key"},
        {**FIELD, "type": "color"},
        {"key": "x", "label": "X", "type": "text", "validation": {"pattern": "(unclosed"}},
        {"key": "x", "label": "X", "type": "select"},
        {"key": "x", "label": "X", "type": "select", "validation": {"options": ["a", "a"]}},
        {"key": "x", "label": "X", "type": "text", "validation": {"options": ["a"]}},
        {"key": "x", "label": "X", "type": "number", "validation": {"min": 5, "max": 1}},
        {"key": "x", "label": "X", "type": "boolean", "validation": {"min": 1}},
        {"key": "x", "label": "X", "type": "date", "validation": {"pattern": ".*"}},
        {**FIELD, "kommo_field_id": 0},
        {**FIELD, "validation": {"regex": ".*"}},
    ]
    for body in bad_bodies:
        r = await client.post(base, json=body, headers=tenant.headers)
        assert r.status_code == 400, (body, r.text)
    assert (await client.get(base, headers=tenant.headers)).json()["items"] == []


# ---- actions ---------------------------------------------------------------------------------


async def test_actions_of_every_type_are_accepted_with_their_parameters(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/actions"
    await post(client, tenant, f"/api/agents/{agent}/fields", FIELD)
    # send_asset needs an uploaded asset: covered in test_agent_assets.py, which owns a storage directory.
    bodies: list[dict[str, Any]] = [
        {"type": "move_stage", "parameters": {"pipeline_id": 111, "status_id": 142}, "description": "Deal agreed"},
        {"type": "add_tag", "parameters": {"tag": "hot"}},
        {"type": "create_task", "parameters": {"text": "Call back", "due_in_minutes": 30}},
        {"type": "set_field", "parameters": {"field_key": "budget"}},
        {"type": "handoff", "parameters": {"reason": "Asked for a human"}},
        {"type": "handoff"},
        {"type": "call_webhook", "parameters": {"url": "https://hooks.example.com/lead"}, "enabled": False},
    ]
    created = [await post(client, tenant, base, body) for body in bodies]
    assert created[0]["parameters"] == {"pipeline_id": 111, "status_id": 142}
    assert created[2]["parameters"]["responsible_user_id"] is None
    assert created[5]["parameters"] == {"reason": "", "responsible_user_id": None}
    assert created[6]["parameters"] == {"url": "https://hooks.example.com/lead", "method": "POST"}
    webhooks = (await client.get(base, params={"type": "call_webhook"}, headers=tenant.headers)).json()
    assert [a["id"] for a in webhooks["items"]] == [created[6]["id"]]
    disabled = (await client.get(base, params={"enabled": "false"}, headers=tenant.headers)).json()
    assert [a["id"] for a in disabled["items"]] == [created[6]["id"]]
    everything = (await client.get(base, params={"limit": 200}, headers=tenant.headers)).json()
    assert len(everything["items"]) == len(bodies)


async def test_action_parameters_must_fit_the_type(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/actions"
    bad_bodies = [
        {"type": "move_stage", "parameters": {"pipeline_id": 1}},
        {"type": "move_stage", "parameters": {"pipeline_id": "one", "status_id": 2}},
        {"type": "move_stage", "parameters": {"tag": "hot"}},
        {"type": "add_tag", "parameters": {}},
        {"type": "add_tag"},
        {"type": "create_task", "parameters": {"text": ""}},
        {"type": "call_webhook", "parameters": {"url": "http://hooks.example.com/lead"}},
        {"type": "call_webhook", "parameters": {"url": "https://localhost/x"}},
        {"type": "call_webhook", "parameters": {"url": "https://10.0.0.5/x"}},
        {"type": "call_webhook", "parameters": {"url": "https://[::1]/x"}},
        {"type": "call_webhook", "parameters": {"url": "not a url"}},
        {"type": "send_asset", "parameters": {"asset_id": MISSING}},  # no such asset on this agent
        {"type": "set_field", "parameters": {"field_key": "budget"}},  # no such field on this agent
        {"type": "teleport", "parameters": {}},
        {"parameters": {"tag": "x"}},
    ]
    for body in bad_bodies:
        r = await client.post(base, json=body, headers=tenant.headers)
        assert r.status_code == 400, (body, r.text)
    r = await client.post(base, json=bad_bodies[0], headers=tenant.headers)
    assert any(e["field"].endswith("parameters.status_id") for e in r.json()["errors"])
    assert (await client.get(base, headers=tenant.headers)).json()["items"] == []


# ---- channels --------------------------------------------------------------------------------

HOURS = {"mon": [{"start": "09:00", "end": "13:00"}, {"start": "14:00", "end": "18:00"}],
         "sat": [{"start": "10:00", "end": "14:00"}]}


async def test_channels_are_configured_once_each_and_updated_by_type(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/channels"
    wa = await post(client, tenant, base, {"channel": "whatsapp", "working_hours": HOURS, "reply_delay_seconds": 30,
                                           "settings": {"greeting": "Olá!"}})
    assert wa["working_hours"] == HOURS
    assert (wa["enabled"], wa["reply_delay_seconds"], wa["settings"]) == (True, 30, {"greeting": "Olá!"})
    duplicate = await client.post(base, json={"channel": "whatsapp"}, headers=tenant.headers)
    assert duplicate.status_code == 409
    await post(client, tenant, base, {"channel": "kommo_chat", "enabled": False})
    r = await client.patch(f"{base}/whatsapp", json={"enabled": False, "working_hours": None}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["enabled"], r.json()["working_hours"], r.json()["reply_delay_seconds"]) == (False, None, 30)
    disabled = (await client.get(base, params={"enabled": False}, headers=tenant.headers)).json()
    assert sorted(c["channel"] for c in disabled["items"]) == ["kommo_chat", "whatsapp"]
    assert (await client.delete(f"{base}/whatsapp", headers=tenant.headers)).status_code == 204
    left = (await client.get(base, headers=tenant.headers)).json()
    assert [c["channel"] for c in left["items"]] == ["kommo_chat"]
    # Deleted, so it can be configured again.
    await post(client, tenant, base, {"channel": "whatsapp"})


async def test_an_unconfigured_channel_is_not_found_and_an_unknown_one_is_a_bad_request(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(client, tenant)
    base = f"/api/agents/{agent}/channels"
    assert (await client.patch(f"{base}/viber", json={"enabled": True}, headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"{base}/viber", headers=tenant.headers)).status_code == 404
    r = await client.patch(f"{base}/pigeon", json={"enabled": True}, headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "path.channel"
    assert (await client.delete(f"{base}/pigeon", headers=tenant.headers)).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "pigeon"},
        {"channel": "email", "reply_delay_seconds": 3601},
        {"channel": "email", "reply_delay_seconds": -1},
        {"channel": "email", "working_hours": {"mon": [{"start": "18:00", "end": "09:00"}]}},
        {"channel": "email", "working_hours": {"mon": [{"start": "09:00", "end": "09:00"}]}},
        {"channel": "email", "working_hours": {"mon": [{"start": "9:00", "end": "18:00"}]}},
        {"channel": "email", "working_hours": {"mon": [{"start": "09:00", "end": "24:30"}]}},
        {"channel": "email", "working_hours": {"funday": [{"start": "09:00", "end": "10:00"}]}},
        {"channel": "email", "working_hours": {"tue": [{"start": "09:00", "end": "12:00"},
                                                       {"start": "11:00", "end": "13:00"}]}},
        {"channel": "email", "settings": {"n": float("inf")}},
        {"channel": "email", "settings": {"k": "\x00"}},
    ],
)
async def test_create_channel_rejects_bad_input(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    agent = await create_agent(client, tenant)
    r = await client.post(f"/api/agents/{agent}/channels", content=_json(body),
                          headers={**tenant.headers, "content-type": "application/json"})
    assert r.status_code == 400, r.text


def _json(body: dict[str, Any]) -> bytes:
    # Python's json writes Infinity for inf, as a sloppy client might.
    return json.dumps(body).encode()


async def test_update_channel_rejects_bad_input(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    await post(client, tenant, f"/api/agents/{agent}/channels", CHANNEL)
    path = f"/api/agents/{agent}/channels/telegram"
    for bad in ({"enabled": None}, {"reply_delay_seconds": 9999}, {"channel": "viber"},
                {"working_hours": {"sun": [{"start": "10:00", "end": "09:00"}]}}):
        r = await client.patch(path, json=bad, headers=tenant.headers)
        assert r.status_code == 400, bad
    unchanged = (await client.get(f"/api/agents/{agent}/channels", headers=tenant.headers)).json()["items"][0]
    assert (unchanged["enabled"], unchanged["reply_delay_seconds"]) == (True, 5)


async def test_members_configure_agents_like_owners(client: httpx.AsyncClient, tenant: Tenant, member: Tenant) -> None:
    # Same policy as /api/agents itself: any member of the organisation may edit its agents.
    agent = await create_agent(client, tenant)
    script = await post(client, member, f"/api/agents/{agent}/scripts", SCRIPT)
    r = await client.put(f"/api/agents/{agent}/rules", json={"rules": [RULE]}, headers=member.headers)
    assert r.status_code == 200
    owner_view = (await client.get(f"/api/agents/{agent}/scripts", headers=tenant.headers)).json()
    assert [s["id"] for s in owner_view["items"]] == [script["id"]]
