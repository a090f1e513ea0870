"""SQL for an agent's configuration rows. Every query filters by org_id and agent_id.

The parent agent's existence (and that it is not soft-deleted) is checked by the service through
``AgentRepository.get`` before any of these run; these classes only guarantee tenant scoping.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import REAL, REGCONFIG
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    ActionType,
    Agent,
    AgentAction,
    AgentAsset,
    AgentChannel,
    AgentField,
    AgentObjection,
    AgentRule,
    AgentScript,
    AssetKind,
    ChannelType,
    FieldType,
    KnowledgeEntry,
    KnowledgeKind,
    RuleKind,
    ScriptStage,
)
from db.models.agent_config import AgentChildMixin
from db.pagination import InvalidCursorError, Page, paginate

M = TypeVar("M", bound=AgentChildMixin)

# PostgreSQL text-search configurations for the agent languages it ships stemmers for.
SEARCH_CONFIGS = {"en": "english", "ru": "russian", "es": "spanish", "pt": "portuguese", "de": "german",
                  "fr": "french"}
MAX_QUERY_WORDS = 32
_WORD = re.compile(r"\w+")


def search_config_for(language: str) -> str:
    """The regconfig for an agent language ("pt-BR" -> portuguese); "simple" (no stemming) otherwise."""
    return SEARCH_CONFIGS.get(language.split("-")[0].lower(), "simple")


# ---- keyset cursors over other orders than (created_at, id) ------------------------------------


def _encode(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v
                      for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """Inverse of _encode for values of ``kinds`` (int, float, datetime, UUID); InvalidCursorError if not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for kind, value in zip(kinds, raw, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif kind is uuid.UUID:
                out.append(uuid.UUID(value))
            elif kind is int and isinstance(value, int) and not isinstance(value, bool):
                out.append(value)
            elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
                out.append(float(value))
            else:
                raise ValueError("wrong type")
        return out
    except (ValueError, TypeError, AttributeError, binascii.Error, json.JSONDecodeError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc


# ---- base ------------------------------------------------------------------------------------


class _ChildRepository(Generic[M]):
    """Rows of one model that belong to an agent of this organisation."""

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _scoped(self, agent_id: uuid.UUID) -> Select[M]:
        model = self.model
        return select(model).where(model.org_id == self.org_id, model.agent_id == agent_id)

    async def get(self, agent_id: uuid.UUID, item_id: uuid.UUID) -> M | None:
        """The row if it belongs to this agent of this organisation."""
        result: M | None = await self.session.scalar(self._scoped(agent_id).where(self.model.id == item_id))
        return result

    async def add(self, agent_id: uuid.UUID, item: M) -> M:
        """Stage a new row under the agent."""
        item.org_id = self.org_id
        item.agent_id = agent_id
        self.session.add(item)
        await self.session.flush()
        return item

    async def lock_agent(self, agent_id: uuid.UUID) -> Agent | None:
        """The live agent, locked ``FOR UPDATE``: serialises whole-list rewrites of its configuration."""
        stmt = (
            select(Agent)
            .where(Agent.org_id == self.org_id, Agent.id == agent_id, Agent.deleted_at.is_(None))
            .with_for_update()
        )
        result: Agent | None = await self.session.scalar(stmt)
        return result

    async def remove(self, item: M) -> None:
        """Delete a row loaded through this repository."""
        await self.session.delete(item)
        await self.session.flush()

    async def _page(self, stmt: Select[M], *, limit: int, cursor: str | None) -> Page[M]:
        return await paginate(self.session, stmt, self.model, limit=limit, cursor=cursor)


class _OrderedRepository(_ChildRepository[M]):
    """Rows with a ``position``: listed by (position, created_at, id) ascending."""

    async def _page_by_position(self, stmt: Select[M], *, limit: int, cursor: str | None) -> Page[M]:
        model = self.model
        key = tuple_(model.position, model.created_at, model.id)
        if cursor:
            position, created_at, row_id = _decode(cursor, (int, datetime, uuid.UUID))
            stmt = stmt.where(key > tuple_(literal(position), literal(created_at), literal(row_id)))
        stmt = stmt.order_by(model.position, model.created_at, model.id).limit(limit + 1)
        rows = list((await self.session.scalars(stmt)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last: Any = rows[-1]
            next_cursor = _encode([last.position, last.created_at, last.id])
        return Page(items=rows, next_cursor=next_cursor)

    async def next_position(self, agent_id: uuid.UUID) -> int:
        """One past the highest position of the agent's rows (0 for none)."""
        model = self.model
        stmt = select(func.coalesce(func.max(model.position) + 1, 0)).where(
            model.org_id == self.org_id, model.agent_id == agent_id
        )
        return int(await self.session.scalar(stmt) or 0)


# ---- concrete repositories ---------------------------------------------------------------------


class ScriptRepository(_OrderedRepository[AgentScript]):
    """An agent's conversation scripts."""

    model = AgentScript

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None,
        stage: ScriptStage | None = None, is_active: bool | None = None,
    ) -> Page[AgentScript]:
        """In position order, optionally one stage or only (in)active ones."""
        stmt = self._scoped(agent_id)
        if stage is not None:
            stmt = stmt.where(AgentScript.stage == stage)
        if is_active is not None:
            stmt = stmt.where(AgentScript.is_active.is_(is_active))
        return await self._page_by_position(stmt, limit=limit, cursor=cursor)


class ObjectionRepository(_ChildRepository[AgentObjection]):
    """An agent's objection answers."""

    model = AgentObjection

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, category: str | None = None
    ) -> Page[AgentObjection]:
        """Newest first, optionally one category."""
        stmt = self._scoped(agent_id)
        if category is not None:
            stmt = stmt.where(AgentObjection.category == category)
        return await self._page(stmt, limit=limit, cursor=cursor)


class KnowledgeRepository(_ChildRepository[KnowledgeEntry]):
    """An agent's knowledge, with full-text search in the agent's language."""

    model = KnowledgeEntry

    def _filtered(
        self, agent_id: uuid.UUID, kind: KnowledgeKind | None, tag: str | None
    ) -> Select[KnowledgeEntry]:
        stmt = self._scoped(agent_id)
        if kind is not None:
            stmt = stmt.where(KnowledgeEntry.kind == kind)
        if tag is not None:
            stmt = stmt.where(KnowledgeEntry.tags.contains([tag]))
        return stmt

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None,
        kind: KnowledgeKind | None = None, tag: str | None = None,
    ) -> Page[KnowledgeEntry]:
        """Newest first, optionally one kind or tag."""
        return await self._page(self._filtered(agent_id, kind, tag), limit=limit, cursor=cursor)

    async def search(
        self, agent_id: uuid.UUID, query: str, ts_config: str, *, limit: int, cursor: str | None,
        kind: KnowledgeKind | None = None, tag: str | None = None,
    ) -> Page[tuple[KnowledgeEntry, float]]:
        """Entries matching any word of ``query``, most relevant (ts_rank) first, with their rank.

        Words are OR-ed because a lead's question ("How much is delivery?") shares only some words with the
        answer; ts_rank then puts entries matching more (and title/question) words first.
        """
        words = _WORD.findall(query)[:MAX_QUERY_WORDS]
        if not words:
            return Page(items=[], next_cursor=None)
        config = literal(ts_config, REGCONFIG)
        tsquery: ColumnElement[Any] = func.plainto_tsquery(config, words[0])
        for word in words[1:]:
            tsquery = tsquery.op("||")(func.plainto_tsquery(config, word))
        rank = func.ts_rank(KnowledgeEntry.search_vector, tsquery, type_=REAL)
        stmt = (
            self._filtered(agent_id, kind, tag)
            .add_columns(rank)
            .where(KnowledgeEntry.search_vector.op("@@")(tsquery))
        )
        key = tuple_(rank, KnowledgeEntry.created_at, KnowledgeEntry.id)
        if cursor:
            last_rank, created_at, row_id = _decode(cursor, (float, datetime, uuid.UUID))
            stmt = stmt.where(key < tuple_(literal(last_rank, REAL), literal(created_at), literal(row_id)))
        stmt = stmt.order_by(rank.desc(), KnowledgeEntry.created_at.desc(), KnowledgeEntry.id.desc())
        rows = [(entry, float(score)) for entry, score in (await self.session.execute(stmt.limit(limit + 1))).all()]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            entry, score = rows[-1]
            next_cursor = _encode([score, entry.created_at, entry.id])
        return Page(items=rows, next_cursor=next_cursor)

    async def reindex(self, agent_id: uuid.UUID, ts_config: str) -> None:
        """Re-stem entries written under another language (the agent's language changed since)."""
        await self.session.execute(
            update(KnowledgeEntry)
            .where(
                KnowledgeEntry.org_id == self.org_id,
                KnowledgeEntry.agent_id == agent_id,
                KnowledgeEntry.ts_config != literal(ts_config, REGCONFIG),
            )
            .values(ts_config=ts_config)
            .execution_options(synchronize_session=False)
        )


class RuleRepository(_OrderedRepository[AgentRule]):
    """An agent's ordered rules."""

    model = AgentRule

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None,
        kind: RuleKind | None = None, enabled: bool | None = None,
    ) -> Page[AgentRule]:
        """In position order, optionally one kind or only enabled/disabled ones."""
        stmt = self._scoped(agent_id)
        if kind is not None:
            stmt = stmt.where(AgentRule.kind == kind)
        if enabled is not None:
            stmt = stmt.where(AgentRule.enabled.is_(enabled))
        return await self._page_by_position(stmt, limit=limit, cursor=cursor)

    async def replace_all(self, agent_id: uuid.UUID, rules: list[AgentRule]) -> list[AgentRule]:
        """Delete every rule of the agent and insert ``rules`` at positions 0..n-1 (caller holds the agent lock)."""
        await self.session.execute(
            delete(AgentRule)
            .where(AgentRule.org_id == self.org_id, AgentRule.agent_id == agent_id)
            .execution_options(synchronize_session=False)
        )
        for position, rule in enumerate(rules):
            rule.org_id, rule.agent_id, rule.position = self.org_id, agent_id, position
        self.session.add_all(rules)
        await self.session.flush()
        return rules


class FieldRepository(_ChildRepository[AgentField]):
    """An agent's qualification fields."""

    model = AgentField

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None,
        type_: FieldType | None = None, required: bool | None = None,
    ) -> Page[AgentField]:
        """Newest first, optionally one type or only (not) required ones."""
        stmt = self._scoped(agent_id)
        if type_ is not None:
            stmt = stmt.where(AgentField.type == type_)
        if required is not None:
            stmt = stmt.where(AgentField.required.is_(required))
        return await self._page(stmt, limit=limit, cursor=cursor)

    async def key_exists(self, agent_id: uuid.UUID, key: str) -> bool:
        """Whether the agent already has a field with ``key``."""
        stmt = select(AgentField.id).where(
            AgentField.org_id == self.org_id, AgentField.agent_id == agent_id, AgentField.key == key
        )
        return await self.session.scalar(stmt) is not None


class ActionRepository(_ChildRepository[AgentAction]):
    """An agent's allowed actions."""

    model = AgentAction

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None,
        type_: ActionType | None = None, enabled: bool | None = None,
    ) -> Page[AgentAction]:
        """Newest first, optionally one type or only enabled/disabled ones."""
        stmt = self._scoped(agent_id)
        if type_ is not None:
            stmt = stmt.where(AgentAction.type == type_)
        if enabled is not None:
            stmt = stmt.where(AgentAction.enabled.is_(enabled))
        return await self._page(stmt, limit=limit, cursor=cursor)


class ChannelRepository(_ChildRepository[AgentChannel]):
    """An agent's channel settings, one row per channel."""

    model = AgentChannel

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, enabled: bool | None = None
    ) -> Page[AgentChannel]:
        """Newest first, optionally only enabled/disabled ones."""
        stmt = self._scoped(agent_id)
        if enabled is not None:
            stmt = stmt.where(AgentChannel.enabled.is_(enabled))
        return await self._page(stmt, limit=limit, cursor=cursor)

    async def get_channel(self, agent_id: uuid.UUID, channel: ChannelType) -> AgentChannel | None:
        """The agent's row for ``channel``, if configured."""
        result: AgentChannel | None = await self.session.scalar(
            self._scoped(agent_id).where(AgentChannel.channel == channel)
        )
        return result


class AssetRepository(_ChildRepository[AgentAsset]):
    """An agent's uploaded files (metadata; the bytes are in storage)."""

    model = AgentAsset

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, kind: AssetKind | None = None
    ) -> Page[AgentAsset]:
        """Newest first, optionally only images or documents."""
        stmt = self._scoped(agent_id)
        if kind is not None:
            stmt = stmt.where(AgentAsset.kind == kind)
        return await self._page(stmt, limit=limit, cursor=cursor)

    def _live_images(self) -> Select[AgentAsset]:
        # Images of soft-deleted agents stay stored but are no longer served.
        return (
            select(AgentAsset)
            .join(Agent, Agent.id == AgentAsset.agent_id)
            .where(
                AgentAsset.org_id == self.org_id,
                AgentAsset.kind == AssetKind.image,
                Agent.org_id == self.org_id,
                Agent.deleted_at.is_(None),
            )
        )

    async def list_images(
        self, *, limit: int, cursor: str | None, agent_id: uuid.UUID | None = None
    ) -> Page[AgentAsset]:
        """The organisation's images (of live agents), newest first, optionally of one agent."""
        stmt = self._live_images()
        if agent_id is not None:
            stmt = stmt.where(AgentAsset.agent_id == agent_id)
        return await self._page(stmt, limit=limit, cursor=cursor)

    async def get_image(self, asset_id: uuid.UUID) -> AgentAsset | None:
        """One image of a live agent of this organisation."""
        result: AgentAsset | None = await self.session.scalar(self._live_images().where(AgentAsset.id == asset_id))
        return result
