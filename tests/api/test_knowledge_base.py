"""/api/knowledge-base: categories (tree rules, delete policy) and articles (filing, language-aware search)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Tenant

MISSING = "00000000-0000-4000-8000-000000000000"
CATEGORIES = "/api/knowledge-base/categories"
ARTICLES = "/api/knowledge-base/articles"


async def _category(client: httpx.AsyncClient, tenant: Tenant, name: str = "Billing", **body: object) -> dict[str, Any]:
    r = await client.post(CATEGORIES, json={"name": name, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _article(client: httpx.AsyncClient, tenant: Tenant, title: str = "Refunds", **body: object) -> dict[str, Any]:
    r = await client.post(ARTICLES, json={"title": title, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _search(client: httpx.AsyncClient, tenant: Tenant, q: str, **params: str | int) -> list[str]:
    r = await client.get(ARTICLES, params={"q": q, **params}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    return [a["title"] for a in r.json()["items"]]


# ---- categories ---------------------------------------------------------------------------------


async def test_create_category_is_readable_and_listed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    parent = await _category(client, tenant, "Billing", description="Money matters", position=2)
    child = await _category(client, tenant, "Refunds", parent_id=parent["id"])
    assert parent["org_id"] == str(tenant.org_id)
    assert (parent["description"], parent["position"], parent["parent_id"]) == ("Money matters", 2, None)
    fetched = await client.get(f"{CATEGORIES}/{child['id']}", headers=tenant.headers)
    assert fetched.json()["parent_id"] == parent["id"]
    listed = (await client.get(CATEGORIES, headers=tenant.headers)).json()
    assert {c["name"] for c in listed["items"]} == {"Billing", "Refunds"}
    children = (await client.get(CATEGORIES, params={"parent_id": parent["id"]}, headers=tenant.headers)).json()
    assert [c["name"] for c in children["items"]] == ["Refunds"]


async def test_knowledge_base_endpoints_require_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", CATEGORIES), ("POST", CATEGORIES), ("GET", f"{CATEGORIES}/{MISSING}"),
        ("PATCH", f"{CATEGORIES}/{MISSING}"), ("DELETE", f"{CATEGORIES}/{MISSING}"),
        ("GET", ARTICLES), ("POST", ARTICLES), ("GET", f"{ARTICLES}/{MISSING}"),
        ("PATCH", f"{ARTICLES}/{MISSING}"), ("DELETE", f"{ARTICLES}/{MISSING}"),
    ]:
        r = await client.request(method, path, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["content-type"] == "application/problem+json"


async def test_category_bad_input_is_a_400_with_field_paths(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(CATEGORIES, json={"name": "", "parent_id": "nope", "position": -1}, headers=tenant.headers)
    assert r.status_code == 400
    assert {"body.name", "body.parent_id", "body.position"} <= {e["field"] for e in r.json()["errors"]}
    mass = await client.post(CATEGORIES, json={"name": "x", "org_id": MISSING}, headers=tenant.headers)
    assert mass.status_code == 400
    assert mass.json()["errors"][0]["field"] == "body.org_id"
    category = await _category(client, tenant)
    null_name = await client.patch(f"{CATEGORIES}/{category['id']}", json={"name": None}, headers=tenant.headers)
    assert null_name.status_code == 400
    assert null_name.json()["errors"][0]["field"] == "body.name"
    assert (await client.get(f"{CATEGORIES}/not-a-uuid", headers=tenant.headers)).status_code == 400
    assert (await client.get(CATEGORIES, params={"cursor": "garbage!"}, headers=tenant.headers)).status_code == 400
    assert (await client.get(CATEGORIES, params={"limit": 0}, headers=tenant.headers)).status_code == 400
    bad_cascade = await client.delete(f"{CATEGORIES}/{category['id']}", params={"cascade": "maybe"},
                                      headers=tenant.headers)
    assert bad_cascade.status_code == 400


async def test_missing_category_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"{CATEGORIES}/{MISSING}", json={"name": "x"}, headers=tenant.headers)
        assert r.status_code == 404, method


async def test_another_tenants_category_is_not_found_and_cannot_be_a_parent(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _category(client, other_tenant, "Secret")
    path = f"{CATEGORIES}/{theirs['id']}"
    assert (await client.get(path, headers=tenant.headers)).status_code == 404
    assert (await client.patch(path, json={"name": "mine"}, headers=tenant.headers)).status_code == 404
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    listed = (await client.get(CATEGORIES, headers=tenant.headers)).json()
    assert theirs["id"] not in [c["id"] for c in listed["items"]]
    adopt = await client.post(CATEGORIES, json={"name": "Child", "parent_id": theirs["id"]}, headers=tenant.headers)
    assert adopt.status_code == 400
    assert adopt.json()["errors"][0]["field"] == "body.parent_id"
    mine = await _category(client, tenant, "Mine")
    move = await client.patch(f"{CATEGORIES}/{mine['id']}", json={"parent_id": theirs["id"]}, headers=tenant.headers)
    assert move.status_code == 400
    assert (await client.get(path, headers=other_tenant.headers)).json()["name"] == "Secret"


async def test_category_names_are_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _category(client, tenant, "Billing")
    dup = await client.post(CATEGORIES, json={"name": "Billing"}, headers=tenant.headers)
    assert dup.status_code == 409
    await _category(client, other_tenant, "Billing")  # another organisation may reuse it
    other = await _category(client, tenant, "Shipping")
    rename = await client.patch(f"{CATEGORIES}/{other['id']}", json={"name": "Billing"}, headers=tenant.headers)
    assert rename.status_code == 409
    assert (await client.get(f"{CATEGORIES}/{other['id']}", headers=tenant.headers)).json()["name"] == "Shipping"


async def test_update_category_moves_renames_and_refuses_cycles(client: httpx.AsyncClient, tenant: Tenant) -> None:
    a = await _category(client, tenant, "A")
    b = await _category(client, tenant, "B", parent_id=a["id"])
    c = await _category(client, tenant, "C", parent_id=b["id"])
    for new_parent in (c["id"], b["id"], a["id"]):  # under a descendant, or itself
        r = await client.patch(f"{CATEGORIES}/{a['id']}", json={"parent_id": new_parent}, headers=tenant.headers)
        assert r.status_code == 400, new_parent
        assert r.json()["errors"][0]["field"] == "body.parent_id"
    moved = await client.patch(f"{CATEGORIES}/{c['id']}", json={"parent_id": a["id"], "name": "C2", "position": 5},
                               headers=tenant.headers)
    assert moved.status_code == 200
    assert (moved.json()["parent_id"], moved.json()["name"], moved.json()["position"]) == (a["id"], "C2", 5)
    to_root = await client.patch(f"{CATEGORIES}/{b['id']}", json={"parent_id": None}, headers=tenant.headers)
    assert to_root.json()["parent_id"] is None
    assert to_root.json()["name"] == "B"  # untouched fields stay


async def test_delete_refuses_a_category_with_articles_or_children(client: httpx.AsyncClient, tenant: Tenant) -> None:
    with_article = await _category(client, tenant, "Has article")
    await _article(client, tenant, category_id=with_article["id"])
    parent = await _category(client, tenant, "Has child")
    await _category(client, tenant, "Child", parent_id=parent["id"])
    for category in (with_article, parent):
        r = await client.delete(f"{CATEGORIES}/{category['id']}", headers=tenant.headers)
        assert r.status_code == 409
        assert "cascade=true" in r.json()["detail"]
        assert (await client.get(f"{CATEGORIES}/{category['id']}", headers=tenant.headers)).status_code == 200
    empty = await _category(client, tenant, "Empty")
    assert (await client.delete(f"{CATEGORIES}/{empty['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.get(f"{CATEGORIES}/{empty['id']}", headers=tenant.headers)).status_code == 404


async def test_cascade_delete_removes_the_subtree_and_its_articles_only(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    root = await _category(client, tenant, "Root")
    child = await _category(client, tenant, "Child", parent_id=root["id"])
    grandchild = await _category(client, tenant, "Grandchild", parent_id=child["id"])
    sibling = await _category(client, tenant, "Sibling")
    doomed = [await _article(client, tenant, f"In {c['name']}", category_id=c["id"]) for c in (root, child, grandchild)]
    kept = await _article(client, tenant, "In sibling", category_id=sibling["id"])
    loose = await _article(client, tenant, "Uncategorised")
    r = await client.delete(f"{CATEGORIES}/{root['id']}", params={"cascade": "true"}, headers=tenant.headers)
    assert r.status_code == 204
    for gone in (root, child, grandchild):
        assert (await client.get(f"{CATEGORIES}/{gone['id']}", headers=tenant.headers)).status_code == 404
    for article in doomed:
        assert (await client.get(f"{ARTICLES}/{article['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"{CATEGORIES}/{sibling['id']}", headers=tenant.headers)).status_code == 200
    for article in (kept, loose):
        assert (await client.get(f"{ARTICLES}/{article['id']}", headers=tenant.headers)).status_code == 200


# ---- articles -----------------------------------------------------------------------------------


async def test_create_article_defaults_to_a_draft_in_english(client: httpx.AsyncClient, tenant: Tenant) -> None:
    category = await _category(client, tenant)
    article = await _article(client, tenant, body="Within 14 days.", category_id=category["id"],
                             tags=["billing", "refund", "billing"])
    assert (article["status"], article["language"], article["org_id"]) == ("draft", "en", str(tenant.org_id))
    assert article["tags"] == ["billing", "refund"]
    fetched = (await client.get(f"{ARTICLES}/{article['id']}", headers=tenant.headers)).json()
    assert fetched["category_id"] == category["id"]
    assert fetched["body"] == "Within 14 days."


async def test_article_bad_input_is_a_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(ARTICLES, json={"title": "", "language": "english", "status": "live", "tags": [""]},
                          headers=tenant.headers)
    assert r.status_code == 400
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"body.title", "body.language", "body.status"} <= fields
    mass = await client.post(ARTICLES, json={"title": "x", "org_id": MISSING}, headers=tenant.headers)
    assert mass.status_code == 400
    no_category = await client.post(ARTICLES, json={"title": "x", "category_id": MISSING}, headers=tenant.headers)
    assert no_category.status_code == 400
    assert no_category.json()["errors"][0]["field"] == "body.category_id"
    article = await _article(client, tenant)
    for body in ({"status": "archived"}, {"title": None}, {"tags": "one"}, {"id": MISSING}):
        assert (await client.patch(f"{ARTICLES}/{article['id']}", json=body, headers=tenant.headers)).status_code == 400
    for params in ({"status": "bogus"}, {"q": "x" * 501}, {"q": ""}, {"category_id": "nope"}, {"cursor": "@@"}):
        assert (await client.get(ARTICLES, params=params, headers=tenant.headers)).status_code == 400, params
    assert (await client.get(f"{ARTICLES}/not-a-uuid", headers=tenant.headers)).status_code == 400


async def test_missing_article_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"{ARTICLES}/{MISSING}", json={"title": "x"}, headers=tenant.headers)
        assert r.status_code == 404, method


async def test_another_tenants_article_is_not_found_and_their_category_cannot_be_used(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _article(client, other_tenant, "Their refunds", body="refund policy")
    path = f"{ARTICLES}/{theirs['id']}"
    assert (await client.get(path, headers=tenant.headers)).status_code == 404
    assert (await client.patch(path, json={"title": "mine"}, headers=tenant.headers)).status_code == 404
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    assert await _search(client, tenant, "refund") == []
    their_category = await _category(client, other_tenant)
    filed = await client.post(ARTICLES, json={"title": "x", "category_id": their_category["id"]},
                              headers=tenant.headers)
    assert filed.status_code == 400
    mine = await _article(client, tenant)
    moved = await client.patch(f"{ARTICLES}/{mine['id']}", json={"category_id": their_category["id"]},
                               headers=tenant.headers)
    assert moved.status_code == 400
    assert (await client.get(path, headers=other_tenant.headers)).json()["title"] == "Their refunds"


async def test_update_article_changes_only_sent_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    category = await _category(client, tenant)
    article = await _article(client, tenant, body="Old body", category_id=category["id"], tags=["a"])
    r = await client.patch(f"{ARTICLES}/{article['id']}", json={"status": "published", "title": "New"},
                           headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["title"], body["body"], body["tags"]) == ("published", "New", "Old body", ["a"])
    uncategorised = await client.patch(f"{ARTICLES}/{article['id']}", json={"category_id": None},
                                       headers=tenant.headers)
    assert uncategorised.json()["category_id"] is None


async def test_list_articles_filters_by_category_and_status_and_paginates(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    billing = await _category(client, tenant, "Billing")
    for i in range(3):
        await _article(client, tenant, f"Billing {i}", category_id=billing["id"], status="published")
    await _article(client, tenant, "Billing draft", category_id=billing["id"])
    await _article(client, tenant, "Elsewhere", status="published")
    in_billing = (await client.get(ARTICLES, params={"category_id": billing["id"], "status": "published"},
                                   headers=tenant.headers)).json()
    assert sorted(a["title"] for a in in_billing["items"]) == ["Billing 0", "Billing 1", "Billing 2"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(ARTICLES, params=params, headers=tenant.headers)).json()
        seen += [a["title"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))


async def test_delete_article(client: httpx.AsyncClient, tenant: Tenant) -> None:
    article = await _article(client, tenant)
    assert (await client.delete(f"{ARTICLES}/{article['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.get(f"{ARTICLES}/{article['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"{ARTICLES}/{article['id']}", headers=tenant.headers)).status_code == 404


# ---- search -------------------------------------------------------------------------------------


async def _seed_help_centre(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _article(client, tenant, "How refunds work", language="en", status="published",
                   body="Refunds are issued within 14 days after you cancel your subscription.")
    await _article(client, tenant, "Shipping times", language="en", status="published",
                   body="Orders ship within two business days from our warehouse.")
    await _article(client, tenant, "Возврат денег", language="ru", status="published",
                   body="Деньги возвращаются в течение 14 дней после отмены подписки.")
    await _article(client, tenant, "Доставка заказов", language="ru", status="published",
                   body="Заказы отправляются в течение двух рабочих дней.")


async def test_search_answers_an_english_question_with_stemming(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed_help_centre(client, tenant)
    # "refunded", "cancelling", "subscriptions" only match the article through English stemming.
    hits = await _search(client, tenant, "Can I be refunded after cancelling my subscriptions?")
    assert hits == ["How refunds work"]
    assert (await _search(client, tenant, "when do orders ship?"))[0] == "Shipping times"


async def test_search_answers_a_russian_question_with_stemming(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed_help_centre(client, tenant)
    # "деньги" vs "денег"/"Деньги", "подписку" vs "подписки": Russian stemming joins the forms.
    hits = await _search(client, tenant, "Как вернуть деньги за подписку?")
    assert hits[0] == "Возврат денег"
    assert "How refunds work" not in hits
    assert (await _search(client, tenant, "сколько дней идёт доставка заказа"))[0] == "Доставка заказов"


async def test_search_ranks_more_and_title_matches_first(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _article(client, tenant, "Invoices", body="Download invoices from the billing page.")
    await _article(client, tenant, "Account basics", body="The billing page also lists invoices and payment methods.")
    await _article(client, tenant, "Payment methods", body="We accept cards.")
    hits = await _search(client, tenant, "where are my invoices")
    assert hits == ["Invoices", "Account basics"]  # title match outranks a body-only match


async def test_search_respects_filters_and_pages_through_ranked_results(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for i in range(5):
        await _article(client, tenant, f"Refund case {i}", body="refund " * (i + 1), status="published")
    await _article(client, tenant, "Refund draft", body="refund")
    assert "Refund draft" not in await _search(client, tenant, "refunds", status="published")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"q": "refund", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(ARTICLES, params=params, headers=tenant.headers)).json()
        seen += [a["title"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 == len(set(seen))
    # A cursor from the unranked list is not a search cursor.
    plain = (await client.get(ARTICLES, params={"limit": 1}, headers=tenant.headers)).json()["next_cursor"]
    r = await client.get(ARTICLES, params={"q": "refund", "cursor": plain}, headers=tenant.headers)
    assert r.status_code == 400
    assert await _search(client, tenant, "?!") == []  # no words, no matches


async def test_changing_the_language_reindexes_the_article(client: httpx.AsyncClient, tenant: Tenant) -> None:
    article = await _article(client, tenant, "Подписка", body="Отмена подписки в личном кабинете.", language="en")
    assert await _search(client, tenant, "отменить подписку") == []  # not stemmed as Russian yet
    await client.patch(f"{ARTICLES}/{article['id']}", json={"language": "ru"}, headers=tenant.headers)
    assert await _search(client, tenant, "отменить подписку") == ["Подписка"]
