"""The chat-completions client and the LLM brain provider against the local sandbox over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.brain import BrainActivities
from db.models import ConversationChannel, Lead
from db.repositories.conversations import ConversationRepository
from integrations.llm import ChatCompletionsClient, LlmError
from integrations.llm.sandbox import LlmSandbox
from salesflow.brain import Brain, LlmProvider
from salesflow.conversations import ConnectionKommoClients
from salesflow.settings import Settings
from tests.chat_support import seed_agent
from tests.harness import Tenant
from workflows.conversation_models import ReplyInput

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[LlmSandbox]:
    async with LlmSandbox(api_key="sk-test") as sandbox:
        yield sandbox


async def test_a_completion_reports_its_token_usage(llm: LlmSandbox) -> None:
    llm.reply_with("Our panels carry a 25-year warranty.")
    client = ChatCompletionsClient(llm.base_url, "sk-test", "sandbox-chat-1")
    completion = await client.complete([{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Warranty?"}])
    await client.aclose()
    assert completion.text == "Our panels carry a 25-year warranty."
    assert (completion.prompt_tokens, completion.completion_tokens) == (3, 6)
    assert llm.requests[-1]["model"] == "sandbox-chat-1"


async def test_a_bad_key_is_not_retried_and_a_rate_limit_is(llm: LlmSandbox) -> None:
    wrong = ChatCompletionsClient(llm.base_url, "sk-wrong", "m")
    with pytest.raises(LlmError) as denied:
        await wrong.complete([{"role": "user", "content": "hi"}])
    assert (denied.value.status, denied.value.retryable) == (401, False)
    llm.fail_next(429, retry_after=2)
    right = ChatCompletionsClient(llm.base_url, "sk-test", "m")
    with pytest.raises(LlmError) as limited:
        await right.complete([{"role": "user", "content": "hi"}])
    assert (limited.value.status, limited.value.retryable, limited.value.retry_after) == (429, True, 2.0)
    await wrong.aclose()
    await right.aclose()


@pytest.fixture
async def conversation(sessions: Sessions, tenant: Tenant) -> uuid.UUID:
    async with sessions() as session:
        agent = await seed_agent(session, tenant.org_id)
        lead = Lead(org_id=tenant.org_id, kommo_id=4242, name="Maria", agent_id=agent.id)
        session.add(lead)
        await session.flush()
        row = await ConversationRepository(session, tenant.org_id).ensure_for_lead(
            lead.id, agent_id=agent.id, channel=ConversationChannel.kommo_chat, workflow_id="conversation/x/y")
        await session.commit()
        return row.id


def brain_activities(sessions: Sessions, settings: Settings, llm: LlmSandbox) -> BrainActivities:
    provider = LlmProvider(ChatCompletionsClient(llm.base_url, "sk-test", "sandbox-chat-1"))
    return BrainActivities(sessions, settings, Brain(provider), ConnectionKommoClients(sessions, settings))


async def test_the_llm_provider_answers_from_retrieved_knowledge_and_records_usage(
    sessions: Sessions, settings: Settings, llm: LlmSandbox, tenant: Tenant, conversation: uuid.UUID,
) -> None:
    activities = brain_activities(sessions, settings, llm)
    out = await ActivityEnvironment().run(activities.generate_reply, ReplyInput(
        org_id=tenant.org_id, conversation_id=conversation, texts=["What warranty do the panels have?"],
        message_ids=["m1"], turn=1))
    assert out.text.startswith("Our panels carry a 25-year performance warranty")
    assert out.meta["provider"] == "llm"
    assert out.meta["prompt_tokens"] > 0
    assert out.meta["completion_tokens"] > 0
    system = llm.requests[-1]["messages"][0]["content"]
    assert "CONTEXT:" in system
    assert "25-year performance warranty" in system


async def test_an_llm_answer_that_breaks_a_rule_is_not_sent(
    sessions: Sessions, settings: Settings, llm: LlmSandbox, tenant: Tenant, conversation: uuid.UUID,
) -> None:
    llm.reply_with("SunCorp is cheaper, but SunCorp breaks down.")
    activities = brain_activities(sessions, settings, llm)
    out = await ActivityEnvironment().run(activities.generate_reply, ReplyInput(
        org_id=tenant.org_id, conversation_id=conversation, texts=["What warranty do the panels have?"],
        message_ids=["m2"], turn=1))
    assert "SunCorp" not in out.text
    assert "25-year performance warranty" in out.text  # the playbook's grounded answer instead
    assert out.meta["fallback"] == "guardrails"
    assert out.meta["violations"] == ["forbid_topic:SunCorp"]


async def test_llm_failures_map_to_temporal_retries(
    sessions: Sessions, settings: Settings, llm: LlmSandbox, tenant: Tenant, conversation: uuid.UUID,
) -> None:
    activities = brain_activities(sessions, settings, llm)
    request = ReplyInput(org_id=tenant.org_id, conversation_id=conversation, texts=["Warranty?"], message_ids=["m3"],
                         turn=1)
    llm.fail_next(429, retry_after=3)
    with pytest.raises(ApplicationError) as limited:
        await ActivityEnvironment().run(activities.generate_reply, request)
    assert limited.value.non_retryable is False
    assert limited.value.next_retry_delay == timedelta(seconds=3)
    llm.fail_next(400)
    with pytest.raises(ApplicationError) as bad:
        await ActivityEnvironment().run(activities.generate_reply, request)
    assert bad.value.non_retryable is True
