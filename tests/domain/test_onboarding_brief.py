"""Drafting the first agent from a brief: every supported language, deterministic, user text inert."""

from __future__ import annotations

import pytest

from db.models import RuleKind, ScriptStage
from domain.onboarding_brief import SUPPORTED_LANGUAGES, Brief, BriefTone, draft_agent, is_supported


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_supported_language_gets_a_complete_draft(language: str) -> None:
    draft = draft_agent(Brief(company="Acme", product="solar panels", tone=BriefTone.professional,
                              language=language))
    assert [s.stage for s in draft.scripts] == ["greeting", "qualification", "presentation", "closing", "follow_up"]
    assert all(ScriptStage(s.stage) and s.messages for s in draft.scripts)
    assert len(draft.objections) == 4
    assert all(o.trigger_phrases for o in draft.objections)
    assert {RuleKind(r.kind) for r in draft.rules} == {
        RuleKind.max_length, RuleKind.custom, RuleKind.forbid_topic, RuleKind.handoff_when}
    text = " ".join([draft.persona, *(m for s in draft.scripts for m in s.messages)])
    assert "Acme" in text
    assert "solar panels" in text
    assert "{" not in text  # every placeholder was filled


def test_the_same_brief_always_gives_the_same_draft() -> None:
    brief = Brief(company="Acme", product="bikes", tone=BriefTone.casual, language="es")
    assert draft_agent(brief) == draft_agent(brief)


def test_braces_in_user_text_are_printed_not_interpreted() -> None:
    draft = draft_agent(Brief(company="{product}{0}", product="{company.__class__}", tone=BriefTone.friendly,
                              language="en"))
    assert draft.name == "{product}{0} assistant"
    assert "{company.__class__}" in draft.persona


def test_formal_tones_greet_politely_and_informal_ones_casually() -> None:
    formal = draft_agent(Brief(company="A", product="p", tone=BriefTone.formal, language="en"))
    casual = draft_agent(Brief(company="A", product="p", tone=BriefTone.casual, language="en"))
    assert formal.scripts[0].messages[0].startswith("Good day")
    assert casual.scripts[0].messages[0].startswith("Hi!")


def test_regional_tags_use_their_language_and_others_are_refused() -> None:
    assert is_supported("pt-BR")
    assert not is_supported("de")
    assert draft_agent(Brief(company="A", product="p", tone=BriefTone.friendly, language="pt-BR")).language == "pt-BR"
    with pytest.raises(ValueError, match="no onboarding draft"):
        draft_agent(Brief(company="A", product="p", tone=BriefTone.friendly, language="de"))


def test_a_long_company_name_still_fits_the_agent_name() -> None:
    draft = draft_agent(Brief(company="x" * 200, product="p", tone=BriefTone.friendly, language="ru"))
    assert len(draft.name) == 200
