"""The brain with its I/O: load an agent's playbook, retrieve knowledge (PostgreSQL full-text search), run a
provider, check the guardrails. The one way the worker's activities and the API playground get an answer.

Two providers behind ``BrainProvider``: ``PlaybookProvider`` (offline, default) answers from configured content
only; ``LlmProvider`` asks any OpenAI-compatible chat-completions endpoint with a prompt built from the same
analysis, then holds its answer to the same guardrails (falling back to the playbook when nothing is left).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Agent, ArticleStatus, Message, MessageAuthor
from db.repositories.agent_config import (
    ActionRepository,
    FieldRepository,
    KnowledgeRepository,
    ObjectionRepository,
    RuleRepository,
    ScriptRepository,
    search_config_for,
)
from db.repositories.agents import AgentRepository
from db.repositories.content import ArticleRepository
from domain.brain import (
    Action,
    Analysis,
    BrainRequest,
    Field,
    FollowUpRequest,
    Objection,
    Passage,
    Playbook,
    Reply,
    Rule,
    Script,
    Turn,
    analyse,
    build_prompt,
    compose_follow_up,
    compose_reply,
    enforce_guardrails,
)
from domain.brain.text import STOP_WORDS, words
from integrations.llm import ChatCompletionsClient
from salesflow.settings import Settings

CONFIG_LIMIT = 200
PASSAGES_PER_SOURCE = 5
MAX_SEARCH_WORDS = 16


@dataclass(frozen=True)
class BrainOutcome:
    """A reply and how it was produced (provider, model, tokens, fallbacks)."""

    reply: Reply
    provider: str
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback: str | None = None
    playbook: Playbook | None = None

    def meta(self) -> dict[str, Any]:
        """The audit trail stored with the agent's message."""
        return {
            "provider": self.provider, "model": self.model, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "fallback": self.fallback, "stage": self.reply.stage,
            "objection_id": self.reply.objection_id, "passage_ids": list(self.reply.passage_ids),
            "violations": list(self.reply.violations), "extracted": self.reply.extracted,
            "invalid": self.reply.invalid, "handoff_reason": self.reply.handoff_reason,
        }


class BrainProvider(Protocol):
    """Writes the reply text for an analysed request."""

    name: str

    async def reply(self, request: BrainRequest, analysis: Analysis) -> BrainOutcome:
        """The reply, guardrails applied."""
        ...


class PlaybookProvider:
    """Offline: configured scripts, objection answers and retrieved knowledge, nothing else."""

    name = "playbook"

    async def reply(self, request: BrainRequest, analysis: Analysis) -> BrainOutcome:
        """Compose from the playbook."""
        return BrainOutcome(reply=compose_reply(request, analysis), provider=self.name)


class LlmProvider:
    """An OpenAI-compatible model, prompted with the same retrieval, script, objections and rules."""

    name = "llm"

    def __init__(self, client: ChatCompletionsClient) -> None:
        self.client = client

    async def reply(self, request: BrainRequest, analysis: Analysis) -> BrainOutcome:
        """Ask the model; handoffs and blocked answers use the playbook's wording. ``LlmError`` propagates."""
        offline = compose_reply(request, analysis)
        if analysis.handoff_reason is not None:
            # What we say when handing over is fixed wording, not the model's.
            return BrainOutcome(reply=offline, provider=self.name, fallback="handoff")
        completion = await self.client.complete(build_prompt(request, analysis))
        guarded = enforce_guardrails(completion.text, request.playbook.rules)
        outcome = BrainOutcome(reply=offline, provider=self.name, model=completion.model,
                               prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
        if guarded.blocked or not guarded.text.strip():
            return replace(outcome, reply=replace(offline, violations=guarded.violations), fallback="guardrails")
        reply = replace(offline, text=guarded.text, violations=guarded.violations,
                        passage_ids=(analysis.passage.id,) if analysis.passage else ())
        return replace(outcome, reply=reply)


def provider_from_settings(settings: Settings, http: httpx.AsyncClient | None = None,
                           name: str | None = None) -> BrainProvider:
    """The configured provider (``name`` overrides ``settings.brain_provider``)."""
    chosen = name or settings.brain_provider
    if chosen == "llm":
        if not settings.llm_base_url:
            raise ValueError("brain_provider is 'llm' but llm_base_url is not set")
        return LlmProvider(ChatCompletionsClient(settings.llm_base_url, settings.llm_api_key, settings.llm_model,
                                                 http=http, timeout=settings.llm_timeout_seconds))
    return PlaybookProvider()


def _turn(message: Message) -> Turn:
    author = message.author.value if isinstance(message.author, MessageAuthor) else str(message.author)
    return Turn(author=author if author in ("lead", "agent", "manager") else "system", text=message.text)  # type: ignore[arg-type]


class Brain:
    """Loads what the agent knows and asks a provider for the answer."""

    def __init__(self, provider: BrainProvider, fallback: BrainProvider | None = None) -> None:
        self.provider = provider
        self.playbook_provider = fallback or PlaybookProvider()

    @staticmethod
    async def load_playbook(session: AsyncSession, org_id: uuid.UUID, agent: Agent) -> Playbook:
        """The agent's configuration as the pure brain reads it."""
        agent_id = agent.id
        scripts = (await ScriptRepository(session, org_id).list_for_agent(
            agent_id, limit=CONFIG_LIMIT, cursor=None, is_active=True)).items
        objections = (await ObjectionRepository(session, org_id).list_for_agent(
            agent_id, limit=CONFIG_LIMIT, cursor=None)).items
        rules = (await RuleRepository(session, org_id).list_for_agent(
            agent_id, limit=CONFIG_LIMIT, cursor=None, enabled=True)).items
        fields = (await FieldRepository(session, org_id).list_for_agent(
            agent_id, limit=CONFIG_LIMIT, cursor=None)).items
        actions = (await ActionRepository(session, org_id).list_for_agent(
            agent_id, limit=CONFIG_LIMIT, cursor=None, enabled=True)).items
        return Playbook(
            agent_name=agent.name, persona=agent.persona, tone=agent.tone, language=agent.language,
            scripts=tuple(Script(s.stage.value, s.name, tuple(s.messages), s.position) for s in scripts),
            objections=tuple(
                Objection(str(o.id), o.objection, o.answer, tuple(o.trigger_phrases), o.category)
                for o in sorted(objections, key=lambda o: (o.created_at, o.id))
            ),
            rules=tuple(Rule(r.kind.value, r.instruction, dict(r.parameters)) for r in rules),
            # Oldest first: the order the business added them is the order the agent asks.
            fields=tuple(
                Field(f.key, f.label, f.type.value, f.required, dict(f.validation), f.kommo_field_id)
                for f in sorted(fields, key=lambda f: (f.created_at, f.id))
            ),
            actions=tuple(Action(a.type.value, a.description, dict(a.parameters)) for a in actions),
        )

    @staticmethod
    async def retrieve(session: AsyncSession, org_id: uuid.UUID, agent: Agent, text: str) -> tuple[Passage, ...]:
        """The agent's knowledge, then the organisation's published KB articles, each ranked by ts_rank."""
        passages: list[Passage] = []
        page = await KnowledgeRepository(session, org_id).search(
            agent.id, text, search_config_for(agent.language), limit=PASSAGES_PER_SOURCE, cursor=None
        )
        for entry, rank in page.items:
            if entry.question is not None and entry.answer:
                passages.append(Passage("knowledge", str(entry.id), entry.title or entry.question, entry.answer,
                                        rank, question=entry.question))
            elif entry.content or entry.answer:
                passages.append(Passage("knowledge", str(entry.id), entry.title or "",
                                        entry.content or entry.answer or "", rank))
        terms = [w for w in words(text) if w not in STOP_WORDS][:MAX_SEARCH_WORDS]
        if terms:
            articles = await ArticleRepository(session, org_id).search(
                terms, limit=PASSAGES_PER_SOURCE, cursor=None, status=ArticleStatus.published
            )
            passages += [Passage("article", str(a.id), a.title, a.body) for a in articles.items]
        return tuple(passages)

    async def answer(
        self, session: AsyncSession, org_id: uuid.UUID, agent: Agent, *, texts: list[str], history: list[Message],
        known_fields: dict[str, Any], stage: str | None, turn: int, summary: str = "",
        provider: BrainProvider | None = None,
    ) -> BrainOutcome:
        """Answer the burst ``texts`` in the context of ``history`` (oldest first)."""
        playbook = await self.load_playbook(session, org_id, agent)
        request = BrainRequest(
            messages=tuple(texts), playbook=playbook,
            passages=await self.retrieve(session, org_id, agent, " ".join(texts)),
            history=tuple(_turn(m) for m in history), known_fields=dict(known_fields), stage=stage, turn=turn,
            summary=summary,
        )
        outcome = await (provider or self.provider).reply(request, analyse(request))
        return replace(outcome, playbook=playbook)

    async def follow_up(
        self, session: AsyncSession, org_id: uuid.UUID, agent: Agent, *, history: list[Message],
        known_fields: dict[str, Any], stage: str | None, attempt: int, lead_name: str | None,
    ) -> BrainOutcome:
        """An outbound nudge in context (the offline composer: it must never invent a reason to write)."""
        playbook = await self.load_playbook(session, org_id, agent)
        request = FollowUpRequest(playbook=playbook, history=tuple(_turn(m) for m in history),
                                  known_fields=dict(known_fields), stage=stage, attempt=attempt, lead_name=lead_name)
        return BrainOutcome(reply=compose_follow_up(request), provider="playbook", playbook=playbook)

    @staticmethod
    async def agent(session: AsyncSession, org_id: uuid.UUID, agent_id: uuid.UUID) -> Agent | None:
        """A live agent of the organisation."""
        return await AgentRepository(session, org_id).get(agent_id)
