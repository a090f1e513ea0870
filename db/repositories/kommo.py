"""SQL of the Kommo integration: connection, OAuth states, CRM mirror, inbox, agent links, rate slots."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import (
    AgentIntegration,
    AgentPipelineSettings,
    CrmCustomField,
    CrmPipeline,
    CrmStatus,
    CrmUser,
    InboxEvent,
    KommoConnection,
    KommoOAuthState,
    KommoRateSlots,
    Lead,
)
from db.pagination import Page, paginate

KOMMO_CRM_SOURCE = "kommo_crm"


class KommoConnectionRepository:
    """The organisation's one Kommo connection."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self) -> KommoConnection | None:
        """The connection row, whatever its status."""
        return await self.session.scalar(select(KommoConnection).where(KommoConnection.org_id == self.org_id))

    async def get_by_id(self, connection_id: uuid.UUID) -> KommoConnection | None:
        """The connection if ``connection_id`` is this organisation's."""
        return await self.session.scalar(
            select(KommoConnection).where(KommoConnection.org_id == self.org_id, KommoConnection.id == connection_id)
        )

    async def get_for_update(self, *, lock_timeout_ms: int = 15_000) -> KommoConnection | None:
        """Lock the row until the transaction ends: the one-refresh-per-account guarantee.

        ``populate_existing`` makes a caller that waited for the lock see the winner's new tokens
        instead of the values its session loaded earlier.
        """
        # A bounded wait: a stuck refresher must not pile up every worker behind it forever.
        await self.session.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        stmt = (
            select(KommoConnection)
            .where(KommoConnection.org_id == self.org_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return await self.session.scalar(stmt)

    async def get_or_create(self, webhook_secret: str) -> KommoConnection:
        """The row, created ``pending`` (with its webhook secret) on first use; race-safe."""
        stmt = (
            insert(KommoConnection)
            .values(id=uuid.uuid4(), org_id=self.org_id, webhook_secret=webhook_secret, status="pending",
                    long_lived=False, settings={})
            .on_conflict_do_nothing(index_elements=[KommoConnection.org_id])
        )
        await self.session.execute(stmt)
        connection = await self.session.scalar(
            select(KommoConnection).where(KommoConnection.org_id == self.org_id).execution_options(
                populate_existing=True
            )
        )
        assert connection is not None
        return connection


class KommoOAuthStateRepository:
    """OAuth states of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def add(self, state_hash: str, user_id: uuid.UUID, expires_at: datetime) -> None:
        """Store a new state (hashed)."""
        self.session.add(KommoOAuthState(org_id=self.org_id, state_hash=state_hash, user_id=user_id,
                                         expires_at=expires_at))
        await self.session.flush()

    async def consume(self, state_hash: str, now: datetime) -> bool:
        """Mark the state used if it is this org's, unused and unexpired; one atomic UPDATE, so two
        concurrent callbacks with the same state cannot both succeed."""
        stmt = (
            update(KommoOAuthState)
            .where(
                KommoOAuthState.org_id == self.org_id,
                KommoOAuthState.state_hash == state_hash,
                KommoOAuthState.used_at.is_(None),
                KommoOAuthState.expires_at > now,
            )
            .values(used_at=now, updated_at=now)
            .returning(KommoOAuthState.id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def prune(self, older_than: datetime) -> None:
        """Drop states that can no longer be used (opportunistic housekeeping)."""
        await self.session.execute(
            delete(KommoOAuthState).where(KommoOAuthState.org_id == self.org_id,
                                          KommoOAuthState.expires_at < older_than)
        )


@dataclass(frozen=True)
class PipelineRow:
    """A pipeline and its statuses, as the sync writes them."""

    kommo_id: int
    name: str
    sort: int
    is_main: bool
    is_archived: bool
    statuses: Sequence[dict[str, Any]]


class CrmMirrorRepository:
    """Synced Kommo data of one organisation (pipelines, statuses, users, fields, leads)."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def replace_pipelines(self, pipelines: Sequence[PipelineRow]) -> tuple[int, int]:
        """Upsert pipelines and statuses; pipelines Kommo no longer has are archived, their vanished
        statuses deleted. Returns (pipelines, statuses) written."""
        now = utcnow()
        seen: list[int] = []
        statuses = 0
        for row in pipelines:
            seen.append(row.kommo_id)
            stmt = insert(CrmPipeline).values(
                id=uuid.uuid4(), org_id=self.org_id, kommo_id=row.kommo_id, name=row.name, sort=row.sort,
                is_main=row.is_main, is_archived=row.is_archived,
            )
            await self.session.execute(stmt.on_conflict_do_update(
                index_elements=[CrmPipeline.org_id, CrmPipeline.kommo_id],
                set_={"name": stmt.excluded.name, "sort": stmt.excluded.sort, "is_main": stmt.excluded.is_main,
                      "is_archived": stmt.excluded.is_archived, "updated_at": now},
            ))
            status_ids = [int(s["kommo_id"]) for s in row.statuses]
            if row.statuses:
                sstmt = insert(CrmStatus).values([
                    {"id": uuid.uuid4(), "org_id": self.org_id, "pipeline_kommo_id": row.kommo_id, **s}
                    for s in row.statuses
                ])
                await self.session.execute(sstmt.on_conflict_do_update(
                    index_elements=[CrmStatus.org_id, CrmStatus.pipeline_kommo_id, CrmStatus.kommo_id],
                    set_={"name": sstmt.excluded.name, "sort": sstmt.excluded.sort, "type": sstmt.excluded.type,
                          "color": sstmt.excluded.color, "updated_at": now},
                ))
            statuses += len(status_ids)
            await self.session.execute(delete(CrmStatus).where(
                CrmStatus.org_id == self.org_id, CrmStatus.pipeline_kommo_id == row.kommo_id,
                CrmStatus.kommo_id.not_in(status_ids or [-1]),
            ))
        await self.session.execute(
            update(CrmPipeline)
            .where(CrmPipeline.org_id == self.org_id, CrmPipeline.kommo_id.not_in(seen or [-1]))
            .values(is_archived=True, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return len(seen), statuses

    async def upsert_users(self, users: Iterable[dict[str, Any]]) -> int:
        """Upsert CRM users by Kommo id."""
        rows = [{"id": uuid.uuid4(), "org_id": self.org_id, **u} for u in users]
        if not rows:
            return 0
        stmt = insert(CrmUser).values(rows)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=[CrmUser.org_id, CrmUser.kommo_id],
            set_={"name": stmt.excluded.name, "email": stmt.excluded.email, "updated_at": utcnow()},
        ))
        return len(rows)

    async def upsert_custom_fields(self, fields: Iterable[dict[str, Any]]) -> int:
        """Upsert lead custom field definitions by Kommo id."""
        rows = [{"id": uuid.uuid4(), "org_id": self.org_id, **f} for f in fields]
        if not rows:
            return 0
        stmt = insert(CrmCustomField).values(rows)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=[CrmCustomField.org_id, CrmCustomField.kommo_id],
            set_={"name": stmt.excluded.name, "type": stmt.excluded.type, "code": stmt.excluded.code,
                  "enums": stmt.excluded.enums, "updated_at": utcnow()},
        ))
        return len(rows)

    async def upsert_lead(self, values: dict[str, Any]) -> uuid.UUID:
        """Insert or refresh a lead mirror; an older Kommo snapshot never overwrites a newer one.

        Only Kommo-owned columns are written: our own (time zone, opt-out, agent) survive a sync.
        """
        base = insert(Lead).values(id=uuid.uuid4(), org_id=self.org_id, opted_out=False, **values)
        kommo_owned = {k: getattr(base.excluded, k) for k in values if k != "kommo_id"}
        stmt = base.on_conflict_do_update(
            index_elements=[Lead.org_id, Lead.kommo_id],
            set_={**kommo_owned, "updated_at": utcnow()},
            where=or_(Lead.kommo_updated_at.is_(None), base.excluded.kommo_updated_at.is_(None),
                      base.excluded.kommo_updated_at >= Lead.kommo_updated_at),
        ).returning(Lead.id)
        lead_id: uuid.UUID | None = (await self.session.execute(stmt)).scalar_one_or_none()
        if lead_id is None:
            lead_id = await self.session.scalar(
                select(Lead.id).where(Lead.org_id == self.org_id, Lead.kommo_id == values["kommo_id"])
            )
        assert lead_id is not None
        return lead_id

    async def get_lead_by_kommo_id(self, kommo_id: int, *, for_update: bool = False) -> Lead | None:
        """Our mirror of a Kommo lead (locked for this transaction with ``for_update``)."""
        stmt = select(Lead).where(Lead.org_id == self.org_id, Lead.kommo_id == kommo_id)
        return await self.session.scalar(stmt.with_for_update() if for_update else stmt)

    async def list_pipelines(self, *, limit: int, cursor: str | None) -> Page[CrmPipeline]:
        """Synced pipelines (archived ones too; the flag says so), newest first."""
        stmt = select(CrmPipeline).where(CrmPipeline.org_id == self.org_id)
        return await paginate(self.session, stmt, CrmPipeline, limit=limit, cursor=cursor)

    async def statuses_by_pipeline(self, pipeline_ids: Sequence[int]) -> dict[int, list[CrmStatus]]:
        """Statuses of the given pipelines, in Kommo's ``sort`` order."""
        out: dict[int, list[CrmStatus]] = {pid: [] for pid in pipeline_ids}
        if not pipeline_ids:
            return out
        rows = await self.session.scalars(
            select(CrmStatus)
            .where(CrmStatus.org_id == self.org_id, CrmStatus.pipeline_kommo_id.in_(pipeline_ids))
            .order_by(CrmStatus.pipeline_kommo_id, CrmStatus.sort, CrmStatus.kommo_id)
        )
        for status in rows:
            out[status.pipeline_kommo_id].append(status)
        return out

    async def get_pipeline(self, kommo_id: int) -> CrmPipeline | None:
        """A synced pipeline by Kommo id."""
        return await self.session.scalar(
            select(CrmPipeline).where(CrmPipeline.org_id == self.org_id, CrmPipeline.kommo_id == kommo_id)
        )

    async def user_exists(self, kommo_id: int) -> bool:
        """Whether a CRM user with this Kommo id was synced."""
        found = await self.session.scalar(
            select(CrmUser.id).where(CrmUser.org_id == self.org_id, CrmUser.kommo_id == kommo_id)
        )
        return found is not None

    async def counts(self) -> dict[str, int]:
        """How many pipelines, statuses, users, fields and leads are mirrored."""
        out: dict[str, int] = {}
        for name, model in (("pipelines", CrmPipeline), ("statuses", CrmStatus), ("users", CrmUser),
                            ("custom_fields", CrmCustomField), ("leads", Lead)):
            stmt = select(func.count()).select_from(model).where(model.org_id == self.org_id)
            out[name] = int(await self.session.scalar(stmt) or 0)
        return out


@dataclass(frozen=True)
class InboxRow:
    """One inbound event to store."""

    external_key: str
    event_type: str
    payload: dict[str, Any]
    workflow_id: str


class InboxRepository:
    """The webhook inbox: insert-or-drop by (source, external key), then record outcomes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, org_id: uuid.UUID | None, source: str, rows: Sequence[InboxRow],
                         received_at: datetime) -> dict[str, uuid.UUID]:
        """One INSERT .. ON CONFLICT DO NOTHING; returns external key -> id of the rows that were new."""
        if not rows:
            return {}
        stmt = (
            insert(InboxEvent)
            .values([
                {"id": uuid.uuid4(), "org_id": org_id, "source": source, "external_key": r.external_key,
                 "event_type": r.event_type, "payload": r.payload, "received_at": received_at,
                 "workflow_id": r.workflow_id}
                for r in rows
            ])
            .on_conflict_do_nothing(index_elements=[InboxEvent.source, InboxEvent.external_key])
            .returning(InboxEvent.external_key, InboxEvent.id)
        )
        return {key: row_id for key, row_id in (await self.session.execute(stmt)).all()}

    async def unprocessed(self, source: str, keys: Sequence[str]) -> dict[str, uuid.UUID]:
        """Of these already-stored keys, those no workflow has finished yet (key -> id)."""
        if not keys:
            return {}
        stmt = select(InboxEvent.external_key, InboxEvent.id).where(
            InboxEvent.source == source, InboxEvent.external_key.in_(keys), InboxEvent.processed_at.is_(None)
        )
        return {key: row_id for key, row_id in (await self.session.execute(stmt)).all()}

    async def record_outcome(self, event_id: uuid.UUID, outcome: str, workflow_id: str, at: datetime) -> bool:
        """Mark the event processed with its outcome; False if the row does not exist."""
        stmt = (
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(processed_at=at, outcome=outcome, workflow_id=workflow_id, updated_at=at)
            .returning(InboxEvent.id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def get(self, event_id: uuid.UUID) -> InboxEvent | None:
        """One inbox row."""
        return await self.session.get(InboxEvent, event_id)


class AgentIntegrationRepository:
    """Agents' links to the organisation's Kommo connection."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, agent_id: uuid.UUID, connection_id: uuid.UUID) -> AgentIntegration | None:
        """The agent's link to that connection, if installed."""
        return await self.session.scalar(select(AgentIntegration).where(
            AgentIntegration.org_id == self.org_id, AgentIntegration.agent_id == agent_id,
            AgentIntegration.connection_id == connection_id,
        ))

    async def install(self, agent_id: uuid.UUID, connection_id: uuid.UUID) -> AgentIntegration:
        """Create the link (or re-enable it); race-safe on the unique (agent, connection)."""
        now = utcnow()
        stmt = insert(AgentIntegration).values(
            id=uuid.uuid4(), org_id=self.org_id, agent_id=agent_id, connection_id=connection_id, enabled=True,
            settings={}, installed_at=now,
        )
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=[AgentIntegration.agent_id, AgentIntegration.connection_id],
            set_={"enabled": True, "updated_at": now},
        ))
        link = await self.session.scalar(
            select(AgentIntegration)
            .where(AgentIntegration.org_id == self.org_id, AgentIntegration.agent_id == agent_id,
                   AgentIntegration.connection_id == connection_id)
            .execution_options(populate_existing=True)
        )
        assert link is not None
        return link


class AgentPipelineSettingsRepository:
    """Per-agent pipeline settings."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, agent_id: uuid.UUID) -> AgentPipelineSettings | None:
        """The agent's settings, if any were saved."""
        return await self.session.scalar(select(AgentPipelineSettings).where(
            AgentPipelineSettings.org_id == self.org_id, AgentPipelineSettings.agent_id == agent_id
        ))

    async def save(self, agent_id: uuid.UUID, values: dict[str, Any]) -> AgentPipelineSettings:
        """Replace the agent's settings (upsert on the unique agent id)."""
        stmt = insert(AgentPipelineSettings).values(id=uuid.uuid4(), org_id=self.org_id, agent_id=agent_id,
                                                    **values)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=[AgentPipelineSettings.agent_id], set_={**values, "updated_at": utcnow()},
        ))
        row = await self.session.scalar(
            select(AgentPipelineSettings)
            .where(AgentPipelineSettings.org_id == self.org_id, AgentPipelineSettings.agent_id == agent_id)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


@dataclass(frozen=True)
class Reservation:
    """A granted request slot (database-clock epoch seconds) and the wait until it."""

    slot: float
    delay: float


class KommoRateSlotRepository:
    """Sliding-window slot reservations per Kommo account, shared by every process via Postgres."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def reserve(self, key: str, limit: int, period: float) -> Reservation:
        """Reserve the next slot for ``key``: when it is, and how long to wait for it from now.

        A slot is granted at max(now, the ``limit``-th latest grant + ``period``), so no ``period``
        ever holds more than ``limit`` grants, across all callers. Time is the database's clock,
        so workers on hosts with skewed clocks still agree. The caller commits.
        """
        await self.session.execute(
            insert(KommoRateSlots).values(key=key, grants=[]).on_conflict_do_nothing(
                index_elements=[KommoRateSlots.key]
            )
        )
        row = (await self.session.execute(
            select(KommoRateSlots.grants, func.extract("epoch", func.clock_timestamp()))
            .where(KommoRateSlots.key == key)
            .with_for_update()
        )).one()
        grants, now = list(row[0] or []), float(row[1])
        slot = now
        if len(grants) >= limit:
            slot = max(now, grants[-limit] + period)
        grants = [*grants[-(limit - 1):], slot] if limit > 1 else [slot]
        await self.session.execute(
            update(KommoRateSlots).where(KommoRateSlots.key == key).values(grants=grants)
        )
        return Reservation(slot=slot, delay=max(0.0, slot - now))
