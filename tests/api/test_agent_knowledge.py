"""/api/agents/{id}/knowledge: entry shapes, filters, and full-text search in the agent's language."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Tenant

MISSING = "00000000-0000-4000-8000-000000000000"


async def _agent(client: httpx.AsyncClient, tenant: Tenant, language: str = "en") -> str:
    r = await client.post("/api/agents", json={"name": "Helper", "language": language}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _add(client: httpx.AsyncClient, tenant: Tenant, agent: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/api/agents/{agent}/knowledge", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def _search(client: httpx.AsyncClient, tenant: Tenant, agent: str, q: str, **params: Any) -> dict[str, Any]:
    r = await client.get(f"/api/agents/{agent}/knowledge", params={"q": q, **params}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_each_kind_of_entry_is_stored_with_its_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    text = await _add(client, tenant, agent, kind="text", content="We are open 9 to 6.", tags=["hours"])
    faq = await _add(client, tenant, agent, kind="faq", question="Do you ship abroad?", answer="Yes, to the EU.")
    doc = await _add(client, tenant, agent, kind="document", title="Price list", content="Basic: 10 EUR")
    assert (text["content"], text["tags"], text["question"]) == ("We are open 9 to 6.", ["hours"], None)
    assert (faq["question"], faq["answer"], faq["content"]) == ("Do you ship abroad?", "Yes, to the EU.", None)
    assert (doc["title"], doc["content"], doc["rank"]) == ("Price list", "Basic: 10 EUR", None)
    base = f"/api/agents/{agent}/knowledge"
    listed = (await client.get(base, headers=tenant.headers)).json()
    assert [e["id"] for e in listed["items"]] == [doc["id"], faq["id"], text["id"]]
    faqs = (await client.get(base, params={"kind": "faq"}, headers=tenant.headers)).json()
    assert [e["id"] for e in faqs["items"]] == [faq["id"]]
    tagged = (await client.get(base, params={"tag": "hours"}, headers=tenant.headers)).json()
    assert [e["id"] for e in tagged["items"]] == [text["id"]]
    page = (await client.get(base, params={"limit": 2}, headers=tenant.headers)).json()
    rest = (await client.get(base, params={"limit": 2, "cursor": page["next_cursor"]}, headers=tenant.headers)).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [doc["id"], faq["id"], text["id"]]
    assert rest["next_cursor"] is None


async def test_entries_must_have_the_fields_of_their_kind(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    base = f"/api/agents/{agent}/knowledge"
    for body in (
        {"kind": "text"},
        {"kind": "text", "content": ""},
        {"kind": "faq", "question": "Only a question?"},
        {"kind": "faq", "question": "Q", "answer": "A", "content": "extra"},
        {"kind": "document", "content": "no title"},
        {"kind": "poem", "content": "roses"},
        {"kind": "text", "content": "x", "tags": ["t"] * 21},
        {"kind": "text", "content": "x", "tags": ["t" * 51]},
        {"kind": "text", "content": "x" * 100_001},
        {"kind": "text", "content": "nul \x00"},
    ):
        r = await client.post(base, json=body, headers=tenant.headers)
        assert r.status_code == 400, body
    assert (await client.get(base, headers=tenant.headers)).json()["items"] == []


async def test_russian_question_finds_the_delivery_entry(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant, language="ru")
    await _add(client, tenant, agent, kind="faq", question="Какие способы оплаты вы принимаете?",
               answer="Карты, наличные и банковский перевод.")
    delivery = await _add(client, tenant, agent, kind="document", title="Доставка",
                          content="Доставка по Москве бесплатная, по России — от 300 рублей, срок 2-5 дней.")
    await _add(client, tenant, agent, kind="text", content="Гарантия на всю технику — два года.")
    await _add(client, tenant, agent, kind="faq", question="Где находится ваш офис?", answer="Москва, Тверская 1.")
    found = await _search(client, tenant, agent, "Сколько стоит доставка?")
    assert found["items"], found
    assert found["items"][0]["id"] == delivery["id"]
    assert found["items"][0]["rank"] > 0
    # Stemming: an inflected form ("доставки") still matches "Доставка".
    inflected = await _search(client, tenant, agent, "условия доставки")
    assert [e["id"] for e in inflected["items"]] == [delivery["id"]]


async def test_english_search_stems_and_ranks_by_relevance(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant, language="en-GB")
    shipping = await _add(client, tenant, agent, kind="faq", question="How long does shipping take?",
                          answer="Orders are shipped within two days.")
    returns = await _add(client, tenant, agent, kind="text", content="Returns are accepted within 30 days.")
    await _add(client, tenant, agent, kind="document", title="Company history", content="Founded in 1999.")
    found = await _search(client, tenant, agent, "when will my order ship")
    assert found["items"][0]["id"] == shipping["id"]
    # "returning" and "Returns" share the stem "return"; nothing else mentions it.
    stemmed = await _search(client, tenant, agent, "returning")
    assert [e["id"] for e in stemmed["items"]] == [returns["id"]]
    assert (await _search(client, tenant, agent, "quantum"))["items"] == []
    # Text that yields no search words is simply no match, never an error.
    assert (await _search(client, tenant, agent, "?! & | ( ) :*"))["items"] == []


async def test_search_paginates_by_rank_and_combines_with_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    ids = [(await _add(client, tenant, agent, kind="text", content=f"Pricing plan number {i} pricing",
                       tags=["plans"] if i % 2 else []))["id"] for i in range(5)]
    best = await _add(client, tenant, agent, kind="document", title="Pricing", content="pricing plans and prices")
    seen: list[str] = []
    cursor = None
    while True:
        page = await _search(client, tenant, agent, "pricing plans", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[0] == best["id"]
    assert sorted(seen) == sorted([*ids, best["id"]])
    tagged = await _search(client, tenant, agent, "pricing", tag="plans")
    assert sorted(e["id"] for e in tagged["items"]) == sorted(ids[1::2])
    # A cursor of the plain list is not a search cursor.
    plain = (await client.get(f"/api/agents/{agent}/knowledge", params={"limit": 1}, headers=tenant.headers)).json()
    r = await client.get(f"/api/agents/{agent}/knowledge", params={"q": "pricing", "cursor": plain["next_cursor"]},
                         headers=tenant.headers)
    assert r.status_code == 400


async def test_search_follows_a_change_of_the_agents_language(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant, language="en")
    entry = await _add(client, tenant, agent, kind="text", content="Доставка занимает три дня.")
    r = await client.patch(f"/api/agents/{agent}", json={"language": "ru"}, headers=tenant.headers)
    assert r.status_code == 200
    found = await _search(client, tenant, agent, "доставки")
    assert [e["id"] for e in found["items"]] == [entry["id"]]


async def test_knowledge_search_rejects_an_overlong_query(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    r = await client.get(f"/api/agents/{agent}/knowledge", params={"q": "x" * 501}, headers=tenant.headers)
    assert r.status_code == 400


async def test_delete_knowledge_removes_it_from_lists_and_search(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    entry = await _add(client, tenant, agent, kind="text", content="Secret discount code")
    path = f"/api/agents/{agent}/knowledge/{entry['id']}"
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"/api/agents/{agent}/knowledge/{MISSING}", headers=tenant.headers)).status_code == 404
    assert (await _search(client, tenant, agent, "discount"))["items"] == []


async def test_search_never_crosses_agents_or_tenants(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await _agent(client, tenant)
    sibling = await _agent(client, tenant)
    theirs = await _agent(client, other_tenant)
    await _add(client, tenant, sibling, kind="text", content="Warranty is two years")
    await _add(client, other_tenant, theirs, kind="text", content="Warranty is five years")
    assert (await _search(client, tenant, mine, "warranty"))["items"] == []
    r = await client.get(f"/api/agents/{theirs}/knowledge", params={"q": "warranty"}, headers=tenant.headers)
    assert r.status_code == 404
