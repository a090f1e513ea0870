"""The pure brain on a small realistic playbook (tests/chat_support.py): answers come from configured content only."""

# ruff: noqa: RUF001 - Russian test phrases

from __future__ import annotations

import pytest

from domain.brain import (
    BrainRequest,
    FollowUpRequest,
    Rule,
    Turn,
    analyse,
    build_prompt,
    compose_follow_up,
    compose_reply,
    enforce_guardrails,
    extract_fields,
    wants_human,
)
from tests.chat_support import OBJECTIONS, passages, playbook


def ask(text: str, *, turn: int = 1, known: dict[str, object] | None = None) -> BrainRequest:
    history = (Turn("agent", "Hi! I'm Sunny."),) if turn else ()
    return BrainRequest(messages=(text,), playbook=playbook(), passages=passages(), history=history,
                        known_fields=dict(known or {}), turn=turn)


def test_the_knowledge_answer_that_matches_the_question_is_chosen() -> None:
    reply = compose_reply(ask("What warranty do the panels have?"))
    assert "25-year performance warranty" in reply.text
    assert reply.passage_ids == ("k-0",)
    financing = compose_reply(ask("Can I pay in installments? What financing do you offer?"))
    assert "financing over 5, 10 or 15 years" in financing.text
    area = compose_reply(ask("Do you install in Porto?"))
    assert "Lisbon, Porto and the Algarve" in area.text
    assert area.passage_ids == ("a-0",)


def test_an_unknown_question_is_never_answered_with_invented_facts() -> None:
    reply = compose_reply(ask("Do you sell electric cars?"))
    assert reply.passage_ids == ()
    assert "I don't have that information at hand" in reply.text


@pytest.mark.parametrize("text", ["Honestly this sounds too expensive for us", "it seems to cost too mcuh"])
def test_an_objection_is_answered_with_its_configured_answer(text: str) -> None:
    reply = compose_reply(ask(text))
    assert OBJECTIONS[0][1] in reply.text
    assert reply.objection_id == "obj-0"
    assert reply.stage == "objection_handling"


def test_a_forbidden_topic_is_refused_and_never_quoted() -> None:
    reply = compose_reply(ask("How do you compare to SunCorp on warranty?"))
    assert "I can only speak about BrightSun's own offer." in reply.text
    assert "SunCorp" not in reply.text
    assert "cheaper" not in reply.text  # the competitor passage is never used
    guarded = enforce_guardrails("Our warranty is 25 years. SunCorp only gives 10.", playbook().rules)
    assert guarded.text == "Our warranty is 25 years."
    assert guarded.violations == ("forbid_topic:SunCorp",)


def test_max_length_and_required_phrase_rules_are_enforced() -> None:
    rules = (Rule("max_length", "short", {"max_chars": 60}),
             Rule("require_phrase", 'Always end with "Reply STOP to opt out."', {}))
    guarded = enforce_guardrails("First sentence is here. Second sentence is also here. Third one.", rules)
    assert guarded.text == "First sentence is here. Reply STOP to opt out."
    assert len(guarded.text) <= 60
    assert set(guarded.violations) == {"max_length", "require_phrase"}


def test_fields_are_extracted_and_validated() -> None:
    fields = playbook().fields
    found = {f.key: (f.value, f.error) for f in extract_fields(
        "Hi, my name is Maria Lopez, email Maria.Lopez@Example.com. We have a flat roof and a budget of about "
        "$12,500. Call me on +351 912 345 678", fields)}
    assert found == {"name": ("Maria Lopez", None), "email": ("maria.lopez@example.com", None),
                     "budget": (12500, None), "roof_type": ("flat", None)}
    too_small = {f.key: f for f in extract_fields("our budget is 300 euros", fields)}
    assert too_small["budget"].error == "must be at least 1000"
    bad_email = extract_fields("Email: maria(at)example", fields)
    assert [(f.key, f.error) for f in bad_email] == [("email", "not a valid email address")]
    assert {f.key: f.value for f in extract_fields("Меня зовут Иван, бюджет 300 тыс руб", fields)} == {
        "name": "Иван", "budget": 300000}


def test_a_reply_asks_for_an_invalid_field_again_and_only_stores_valid_ones() -> None:
    analysis = analyse(ask("My budget is 300 euros and my email is maria@example.com"))
    assert analysis.extracted == {"email": "maria@example.com"}
    assert analysis.invalid == {"budget": "must be at least 1000"}
    reply = compose_reply(ask("My budget is 300 euros and my email is maria@example.com"))
    assert "doesn't look right (must be at least 1000)" in reply.text


def test_a_lead_who_gives_the_last_required_field_is_qualified_and_moved() -> None:
    reply = compose_reply(ask("Budget is 15k", known={"name": "Maria", "email": "m@example.com"}))
    assert reply.fields == {"name": "Maria", "email": "m@example.com", "budget": 15000}
    assert reply.stage == "closing"
    assert "personalised quote" in reply.text
    assert [a.type for a in reply.actions] == ["move_stage"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Can I talk to a human please?", True),
    ("connect me with your manager", True),
    ("Позовите, пожалуйста, живого человека", True),
    ("Хочу поговорить с оператором", True),
    ("¿Puedo hablar con una persona real?", True),
    ("Quero falar com um atendente", True),
    ("I am the facilities manager at ACME", False),
    ("Я менеджер проекта", False),
    ("Can we talk about pricing?", False),
])
def test_a_request_for_a_human_is_recognised_in_four_languages(text: str, expected: bool) -> None:
    assert wants_human(text) is expected


def test_a_request_for_a_human_and_a_handoff_rule_hand_the_lead_over() -> None:
    human = compose_reply(ask("I want to speak with a real person"))
    assert human.handoff_reason == "lead_requested_human"
    assert "passing you to a colleague" in human.text
    legal = compose_reply(ask("My lawyer has questions about the contract"))
    assert legal.handoff_reason == "rule: Hand legal questions to a person"


def test_the_first_turn_greets_with_the_script() -> None:
    reply = compose_reply(ask("Hello", turn=0))
    assert reply.text.startswith("Hi! I'm Sunny from BrightSun Solar.")
    assert reply.stage == "greeting"


def test_the_llm_prompt_is_built_from_the_same_retrieval_rules_and_objection() -> None:
    request = ask("This is too expensive. What warranty do you give?")
    prompt = build_prompt(request, analyse(request))
    system = prompt[0]["content"]
    assert "Approved answer: I understand. Most of our customers finance" in system
    assert "25-year performance warranty" in system
    assert "[forbid_topic] Never discuss competitors" in system
    assert "ASK NEXT FOR: Name" in system
    assert prompt[-1] == {"role": "user", "content": "This is too expensive. What warranty do you give?"}


def test_a_follow_up_is_written_in_context_and_asks_for_what_is_missing() -> None:
    reply = compose_follow_up(FollowUpRequest(playbook=playbook(), known_fields={"name": "Maria"},
                                              lead_name="Maria"))
    assert reply.text == (
        "Hi Maria, just following up on our conversation. What is the best email to send your quote to?"
    )
