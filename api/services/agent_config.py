"""An agent's configuration: scripts, objections, knowledge, rules, qualification fields, actions, channels.

Every operation first resolves the parent agent in the caller's organisation; a missing agent, another
tenant's agent and a soft-deleted agent all answer 404 for every sub-route. Deleting an agent is soft
(``AgentService.delete``): its configuration rows stay in the database but become unreachable here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound
from api.schemas.agent_config import (
    ActionCreate,
    ChannelCreate,
    FieldCreate,
    KnowledgeCreate,
    ObjectionCreate,
    RuleCreate,
    RuleItem,
    ScriptCreate,
    SendAssetAction,
    SetFieldAction,
)
from db.base import utcnow
from db.models import (
    ActionType,
    Agent,
    AgentAction,
    AgentChannel,
    AgentField,
    AgentObjection,
    AgentRule,
    AgentScript,
    ChannelType,
    FieldType,
    KnowledgeEntry,
    KnowledgeKind,
    RuleKind,
    ScriptStage,
)
from db.pagination import InvalidCursorError, Page
from db.repositories.agent_config import (
    ActionRepository,
    AssetRepository,
    ChannelRepository,
    FieldRepository,
    KnowledgeRepository,
    ObjectionRepository,
    RuleRepository,
    ScriptRepository,
    search_config_for,
)
from db.repositories.agents import AgentRepository

T = TypeVar("T")


async def paged(page: Awaitable[Page[T]]) -> Page[T]:
    """Await a repository page; a foreign or damaged cursor is a 400, like for agents."""
    try:
        return await page
    except InvalidCursorError as exc:
        raise BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}]) from exc


def _validation_problem(exc: ValidationError, prefix: str = "body") -> BadRequest:
    errors = [
        {"field": ".".join([prefix, *(str(p) for p in err["loc"])]), "message": err["msg"], "code": err["type"]}
        for err in exc.errors()
    ]
    return BadRequest("The request is invalid; see errors.", errors=errors)


def _touch(row: Any, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()


class AgentScopedService:
    """Base of the sub-resource services: resolves the parent agent of the caller's organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id
        self.agents = AgentRepository(session, org_id)

    async def agent(self, agent_id: uuid.UUID) -> Agent:
        """The live agent, or 404 (missing, another tenant's, or soft-deleted)."""
        agent = await self.agents.get(agent_id)
        if agent is None:
            raise NotFound("Agent not found.")
        return agent


class ScriptService(AgentScopedService):
    """Conversation scripts of an agent."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = ScriptRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, stage: ScriptStage | None,
        is_active: bool | None,
    ) -> Page[AgentScript]:
        """A page of scripts in position order."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, stage=stage,
                                                    is_active=is_active))

    async def create(self, agent_id: uuid.UUID, body: ScriptCreate) -> AgentScript:
        """Add a script (after the last one unless a position is given)."""
        await self.agent(agent_id)
        fields = body.model_dump()
        if fields["position"] is None:
            fields["position"] = await self.repo.next_position(agent_id)
        return await self.repo.add(agent_id, AgentScript(**fields))

    async def get(self, agent_id: uuid.UUID, script_id: uuid.UUID) -> AgentScript:
        """The script, or 404."""
        await self.agent(agent_id)
        script = await self.repo.get(agent_id, script_id)
        if script is None:
            raise NotFound("Script not found.")
        return script

    async def update(self, agent_id: uuid.UUID, script_id: uuid.UUID, changes: dict[str, Any]) -> AgentScript:
        """Apply a partial update."""
        script = await self.get(agent_id, script_id)
        _touch(script, changes)
        await self.session.flush()
        return script

    async def delete(self, agent_id: uuid.UUID, script_id: uuid.UUID) -> None:
        """Remove a script."""
        await self.repo.remove(await self.get(agent_id, script_id))


class ObjectionService(AgentScopedService):
    """Objection answers of an agent."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = ObjectionRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, category: str | None
    ) -> Page[AgentObjection]:
        """A page of objections, newest first."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, category=category))

    async def create(self, agent_id: uuid.UUID, body: ObjectionCreate) -> AgentObjection:
        """Add an objection answer."""
        await self.agent(agent_id)
        return await self.repo.add(agent_id, AgentObjection(**body.model_dump()))

    async def delete(self, agent_id: uuid.UUID, objection_id: uuid.UUID) -> None:
        """Remove an objection answer, or 404."""
        await self.agent(agent_id)
        objection = await self.repo.get(agent_id, objection_id)
        if objection is None:
            raise NotFound("Objection not found.")
        await self.repo.remove(objection)


class KnowledgeService(AgentScopedService):
    """Knowledge entries of an agent, searchable in the agent's language."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = KnowledgeRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, q: str | None,
        kind: KnowledgeKind | None, tag: str | None,
    ) -> Page[tuple[KnowledgeEntry, float | None]]:
        """Newest first; with ``q``, the matching entries by relevance, each with its rank."""
        agent = await self.agent(agent_id)
        if q is None or not q.strip():
            page = await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, kind=kind, tag=tag))
            return Page(items=[(entry, None) for entry in page.items], next_cursor=page.next_cursor)
        config = search_config_for(agent.language)
        # Entries written before a language change were stemmed for the old language; bring them over
        # lazily (a no-op, and no locks, when nothing changed) so search and index agree.
        await self.repo.reindex(agent_id, config)
        found = await paged(self.repo.search(agent_id, q, config, limit=limit, cursor=cursor, kind=kind, tag=tag))
        return Page(items=[(entry, rank) for entry, rank in found.items], next_cursor=found.next_cursor)

    async def create(self, agent_id: uuid.UUID, body: KnowledgeCreate) -> KnowledgeEntry:
        """Add an entry, indexed with the agent's language."""
        agent = await self.agent(agent_id)
        entry = KnowledgeEntry(**body.model_dump(), ts_config=search_config_for(agent.language))
        return await self.repo.add(agent_id, entry)

    async def delete(self, agent_id: uuid.UUID, knowledge_id: uuid.UUID) -> None:
        """Remove an entry, or 404."""
        await self.agent(agent_id)
        entry = await self.repo.get(agent_id, knowledge_id)
        if entry is None:
            raise NotFound("Knowledge entry not found.")
        await self.repo.remove(entry)


class RuleService(AgentScopedService):
    """The ordered rules of an agent."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = RuleRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, kind: RuleKind | None,
        enabled: bool | None,
    ) -> Page[AgentRule]:
        """A page of rules in position order."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, kind=kind,
                                                    enabled=enabled))

    async def create(self, agent_id: uuid.UUID, body: RuleCreate) -> AgentRule:
        """Add a rule (after the last one unless a position is given)."""
        await self.agent(agent_id)
        fields = body.model_dump()
        if fields["position"] is None:
            fields["position"] = await self.repo.next_position(agent_id)
        return await self.repo.add(agent_id, AgentRule(**fields))

    async def replace(self, agent_id: uuid.UUID, items: Sequence[RuleItem]) -> Sequence[AgentRule]:
        """Make ``items`` the agent's whole rule list, positions 0..n-1, in this one transaction.

        The agent row is locked first so two concurrent replaces serialise instead of interleaving
        (which could leave the union of both lists).
        """
        if await self.repo.lock_agent(agent_id) is None:
            raise NotFound("Agent not found.")
        return await self.repo.replace_all(agent_id, [AgentRule(**item.model_dump()) for item in items])

    async def get(self, agent_id: uuid.UUID, rule_id: uuid.UUID) -> AgentRule:
        """The rule, or 404."""
        await self.agent(agent_id)
        rule = await self.repo.get(agent_id, rule_id)
        if rule is None:
            raise NotFound("Rule not found.")
        return rule

    async def update(self, agent_id: uuid.UUID, rule_id: uuid.UUID, changes: dict[str, Any]) -> AgentRule:
        """Apply a partial update; the resulting rule must be valid as a whole (e.g. kind vs parameters)."""
        rule = await self.get(agent_id, rule_id)
        merged = {"kind": rule.kind, "instruction": rule.instruction, "parameters": rule.parameters,
                  "enabled": rule.enabled}
        merged.update({k: v for k, v in changes.items() if k != "position"})
        try:
            RuleItem.model_validate(merged)
        except ValidationError as exc:
            raise _validation_problem(exc) from exc
        _touch(rule, changes)
        await self.session.flush()
        return rule

    async def delete(self, agent_id: uuid.UUID, rule_id: uuid.UUID) -> None:
        """Remove a rule (the others keep their positions; order is what matters, not gaps)."""
        await self.repo.remove(await self.get(agent_id, rule_id))


class FieldService(AgentScopedService):
    """Qualification fields of an agent."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = FieldRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, type_: FieldType | None,
        required: bool | None,
    ) -> Page[AgentField]:
        """A page of fields, newest first."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, type_=type_,
                                                    required=required))

    async def create(self, agent_id: uuid.UUID, body: FieldCreate) -> AgentField:
        """Add a field; 409 if the agent already has one with that key."""
        await self.agent(agent_id)
        fields = body.model_dump()
        fields["validation"] = body.validation.model_dump(exclude_none=True)
        field = AgentField(**fields)
        try:
            # A savepoint, so the unique violation of a concurrent twin leaves the request usable.
            async with self.session.begin_nested():
                await self.repo.add(agent_id, field)
        except IntegrityError as exc:
            raise Conflict(f"The agent already has a field with key {body.key!r}.") from exc
        return field


class ActionService(AgentScopedService):
    """Actions an agent may take."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = ActionRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, type_: ActionType | None,
        enabled: bool | None,
    ) -> Page[AgentAction]:
        """A page of actions, newest first."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, type_=type_,
                                                    enabled=enabled))

    async def create(self, agent_id: uuid.UUID, body: ActionCreate) -> AgentAction:
        """Add an action; references (asset, field key) must exist on the same agent."""
        await self.agent(agent_id)
        assets, fields = AssetRepository(self.session, self.org_id), FieldRepository(self.session, self.org_id)
        if isinstance(body, SendAssetAction) and await assets.get(agent_id, body.parameters.asset_id) is None:
            raise BadRequest("No such asset on this agent.", errors=[
                {"field": "body.send_asset.parameters.asset_id", "message": "unknown asset"}])
        if isinstance(body, SetFieldAction) and not await fields.key_exists(agent_id, body.parameters.field_key):
            raise BadRequest("No such field on this agent.", errors=[
                {"field": "body.set_field.parameters.field_key", "message": "unknown field key"}])
        action = AgentAction(
            type=ActionType(body.type), description=body.description, enabled=body.enabled,
            parameters=body.parameters.model_dump(mode="json"),
        )
        return await self.repo.add(agent_id, action)


class ChannelService(AgentScopedService):
    """Per-channel behaviour of an agent, addressed by channel type."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.repo = ChannelRepository(session, org_id)

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, enabled: bool | None
    ) -> Page[AgentChannel]:
        """A page of channel settings, newest first."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, enabled=enabled))

    async def create(self, agent_id: uuid.UUID, body: ChannelCreate) -> AgentChannel:
        """Configure a channel; 409 if the agent already has it."""
        await self.agent(agent_id)
        channel = AgentChannel(**body.model_dump())
        try:
            async with self.session.begin_nested():
                await self.repo.add(agent_id, channel)
        except IntegrityError as exc:
            raise Conflict(f"The agent already has a {body.channel.value} channel.") from exc
        return channel

    async def get(self, agent_id: uuid.UUID, channel: ChannelType) -> AgentChannel:
        """The agent's settings for ``channel``, or 404."""
        await self.agent(agent_id)
        row = await self.repo.get_channel(agent_id, channel)
        if row is None:
            raise NotFound(f"The agent has no {channel.value} channel.")
        return row

    async def update(self, agent_id: uuid.UUID, channel: ChannelType, changes: dict[str, Any]) -> AgentChannel:
        """Apply a partial update."""
        row = await self.get(agent_id, channel)
        _touch(row, changes)
        await self.session.flush()
        return row

    async def delete(self, agent_id: uuid.UUID, channel: ChannelType) -> None:
        """Remove the channel's settings."""
        await self.repo.remove(await self.get(agent_id, channel))
