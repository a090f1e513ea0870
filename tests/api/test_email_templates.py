"""/api/email-templates: CRUD, per-organisation keys, the sandbox rules and the preview."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Tenant

MISSING = "00000000-0000-4000-8000-000000000000"
BASE = "/api/email-templates"


def _body(**overrides: object) -> dict[str, object]:
    return {
        "name": "Welcome",
        "key": "welcome",
        "subject": "Welcome, {{ first_name }}!",
        "body_html": "<p>Hello {{ first_name }}, your code is <b>{{ code }}</b>.</p>",
        "body_text": "Hello {{ first_name }}, your code is {{ code }}.",
        "variables": ["first_name", "code"],
        **overrides,
    }


async def _create(client: httpx.AsyncClient, tenant: Tenant, **overrides: object) -> dict[str, Any]:
    r = await client.post(BASE, json=_body(**overrides), headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_create_email_template_is_readable_and_listed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _create(client, tenant, variables=["first_name", "code", "first_name"])
    assert created["org_id"] == str(tenant.org_id)
    assert created["variables"] == ["first_name", "code"]
    assert created["preview"] is None
    fetched = await client.get(f"{BASE}/{created['id']}", headers=tenant.headers)
    assert fetched.json()["subject"] == "Welcome, {{ first_name }}!"
    await _create(client, tenant, key="reminder", name="Reminder")
    listed = (await client.get(BASE, headers=tenant.headers)).json()
    assert {t["key"] for t in listed["items"]} == {"welcome", "reminder"}
    by_key = (await client.get(BASE, params={"key": "reminder"}, headers=tenant.headers)).json()
    assert [t["name"] for t in by_key["items"]] == ["Reminder"]


async def test_email_template_endpoints_require_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", BASE), ("POST", BASE), ("GET", f"{BASE}/{MISSING}"),
                         ("PUT", f"{BASE}/{MISSING}"), ("DELETE", f"{BASE}/{MISSING}")]:
        r = await client.request(method, path, json=_body())
        assert r.status_code == 401, (method, path)


async def test_email_template_bad_input_is_a_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(BASE, json=_body(key="Not A Slug", subject="", variables=["_private", "1st"]),
                          headers=tenant.headers)
    assert r.status_code == 400
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"body.key", "body.subject", "body.variables.0", "body.variables.1"} <= fields
    no_body = await client.post(BASE, json=_body(body_html="", body_text=""), headers=tenant.headers)
    assert no_body.status_code == 400
    mass = await client.post(BASE, json=_body(org_id=MISSING), headers=tenant.headers)
    assert mass.status_code == 400
    assert mass.json()["errors"][0]["field"] == "body.org_id"
    syntax = await client.post(BASE, json=_body(body_text="{{ first_name "), headers=tenant.headers)
    assert syntax.status_code == 400
    assert syntax.json()["errors"][0]["field"] == "body.body_text"
    created = await _create(client, tenant)
    partial = await client.put(f"{BASE}/{created['id']}", json={"name": "only a name"}, headers=tenant.headers)
    assert partial.status_code == 400  # PUT is a full replace: key and subject are required
    assert (await client.get(f"{BASE}/not-a-uuid", headers=tenant.headers)).status_code == 400
    assert (await client.get(BASE, params={"cursor": "garbage!"}, headers=tenant.headers)).status_code == 400
    assert (await client.get(BASE, params={"key": "Bad Key"}, headers=tenant.headers)).status_code == 400


async def test_sandbox_refuses_attribute_escapes(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for source in ("{{ ''.__class__.__mro__ }}", "{{ first_name.__class__ }}", "{{ ''['__class__'] }}",
                   "{% if false %}{{ code.__init__.__globals__ }}{% endif %}", "{{ first_name|attr('__class__') }}",
                   "{{ '{0.__class__}'.format(code) }}"):
        r = await client.post(BASE, json=_body(body_html=source), headers=tenant.headers)
        assert r.status_code == 400, source
        assert r.json()["errors"][0]["field"] == "body.body_html", source


async def test_sandbox_refuses_include_import_and_extends(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for source in ("{% include 'x' %}", "{% import 'x' as x %}", "{% from 'x' import y %}", "{% extends 'x' %}"):
        r = await client.post(BASE, json=_body(body_text=source), headers=tenant.headers)
        assert r.status_code == 400, source
        assert "not allowed" in r.json()["errors"][0]["message"]


async def test_undeclared_variables_are_refused_by_name(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(BASE, json=_body(subject="Your {{ coupon }} inside"), headers=tenant.headers)
    assert r.status_code == 400
    problem = r.json()
    assert "coupon" in problem["detail"]
    assert problem["errors"] == [
        {"field": "body.subject", "message": "undeclared variable 'coupon'", "variable": "coupon"}
    ]
    # Names the template defines itself, and the template's loop variable, are not undeclared.
    ok = await client.post(
        BASE,
        json=_body(key="loop",
                   body_text="{% set greeting = 'Hi' %}{% for c in code %}{{ greeting }} {{ c }}{% endfor %}"),
        headers=tenant.headers,
    )
    assert ok.status_code == 201, ok.text


async def test_preview_renders_placeholders_and_escapes_html(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _create(client, tenant)
    r = await client.get(f"{BASE}/{created['id']}", params={"preview": "true"}, headers=tenant.headers)
    assert r.status_code == 200
    preview = r.json()["preview"]
    assert preview["values"] == {"first_name": "<first_name>", "code": "<code>"}
    assert preview["subject"] == "Welcome, <first_name>!"
    assert preview["body_html"] == "<p>Hello &lt;first_name&gt;, your code is <b>&lt;code&gt;</b>.</p>"
    assert preview["body_text"] == "Hello <first_name>, your code is <code>."
    hostile = "<script>alert(1)</script>"
    r = await client.get(f"{BASE}/{created['id']}", params={"preview": "true", "sample": [f"first_name={hostile}"]},
                         headers=tenant.headers)
    preview = r.json()["preview"]
    assert "<script>" not in preview["body_html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview["body_html"]
    assert preview["body_text"].startswith(f"Hello {hostile},")
    for sample in ("coupon=1", "no-equals-sign"):
        bad = await client.get(f"{BASE}/{created['id']}", params={"preview": "true", "sample": [sample]},
                               headers=tenant.headers)
        assert bad.status_code == 400, sample
        assert bad.json()["errors"][0]["field"] == "query.sample"


async def test_keys_are_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _create(client, tenant)
    assert (await client.post(BASE, json=_body(), headers=tenant.headers)).status_code == 409
    await _create(client, other_tenant)  # the same key in another organisation is fine
    second = await _create(client, tenant, key="second")
    clash = await client.put(f"{BASE}/{second['id']}", json=_body(key="welcome"), headers=tenant.headers)
    assert clash.status_code == 409
    assert (await client.get(f"{BASE}/{second['id']}", headers=tenant.headers)).json()["key"] == "second"


async def test_put_replaces_the_whole_template_and_is_validated(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _create(client, tenant)
    replacement = {"name": "Short", "key": "welcome", "subject": "Hi {{ name }}", "body_text": "Hi {{ name }}",
                   "variables": ["name"]}
    r = await client.put(f"{BASE}/{created['id']}", json=replacement, headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["body_html"], body["variables"]) == ("Short", "", ["name"])  # omitted = default
    refused = await client.put(f"{BASE}/{created['id']}", json=_body(body_html="{{ ''.__class__ }}"),
                               headers=tenant.headers)
    assert refused.status_code == 400
    assert (await client.get(f"{BASE}/{created['id']}", headers=tenant.headers)).json()["name"] == "Short"


async def test_missing_email_template_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = await client.request(method, f"{BASE}/{MISSING}", json=_body(), headers=tenant.headers)
        assert r.status_code == 404, method


async def test_another_tenants_email_template_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _create(client, other_tenant)
    path = f"{BASE}/{theirs['id']}"
    assert (await client.get(path, headers=tenant.headers)).status_code == 404
    assert (await client.get(path, params={"preview": "true"}, headers=tenant.headers)).status_code == 404
    assert (await client.put(path, json=_body(name="mine"), headers=tenant.headers)).status_code == 404
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    assert theirs["id"] not in [t["id"] for t in (await client.get(BASE, headers=tenant.headers)).json()["items"]]
    assert (await client.get(path, headers=other_tenant.headers)).json()["name"] == "Welcome"


async def test_delete_email_template(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _create(client, tenant)
    assert (await client.delete(f"{BASE}/{created['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.get(f"{BASE}/{created['id']}", headers=tenant.headers)).status_code == 404
    await _create(client, tenant)  # the key is free again
