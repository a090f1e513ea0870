"""The email outbox of an organisation: all its SQL, tenant-scoped."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EmailOutbox, EmailStatus


class EmailOutboxRepository:
    """Outbox rows of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def enqueue(
        self, *, to_address: str, subject: str, body_text: str, body_html: str, template_key: str | None,
        idempotency_key: str, sensitive: bool = False,
    ) -> uuid.UUID:
        """Queue a message once per ``idempotency_key``; returns the (new or existing) row id.

        The unique key, not a read-then-write check, decides: concurrent callers get the same row.
        """
        stmt = (
            insert(EmailOutbox)
            .values(
                id=uuid.uuid4(), org_id=self.org_id, to_address=to_address, subject=subject, body_text=body_text,
                body_html=body_html, template_key=template_key, status=EmailStatus.queued, attempts=0,
                idempotency_key=idempotency_key, sensitive=sensitive,
            )
            .on_conflict_do_nothing(index_elements=[EmailOutbox.idempotency_key])
            .returning(EmailOutbox.id)
        )
        new_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if new_id is not None:
            return new_id
        existing = await self.session.scalar(
            select(EmailOutbox.id).where(
                EmailOutbox.org_id == self.org_id, EmailOutbox.idempotency_key == idempotency_key
            )
        )
        if existing is None:
            # The key is taken by another organisation's row: keys must embed the org, so this is a bug.
            raise ValueError(f"idempotency key {idempotency_key!r} belongs to another organisation")
        return existing

    async def get_for_update(self, outbox_id: uuid.UUID) -> EmailOutbox | None:
        """The row, locked, so two deliveries of one message serialise and the second sees it sent."""
        return await self.session.scalar(
            select(EmailOutbox)
            .where(EmailOutbox.org_id == self.org_id, EmailOutbox.id == outbox_id)
            .with_for_update()
        )

    async def get(self, outbox_id: uuid.UUID) -> EmailOutbox | None:
        """The row if it belongs to this organisation."""
        return await self.session.scalar(
            select(EmailOutbox).where(EmailOutbox.org_id == self.org_id, EmailOutbox.id == outbox_id)
        )

    async def list_for_org(
        self, *, template_key: str | None = None, to_address: str | None = None
    ) -> list[EmailOutbox]:
        """Rows oldest first, optionally one template or one recipient (tests, support)."""
        stmt = select(EmailOutbox).where(EmailOutbox.org_id == self.org_id)
        if template_key is not None:
            stmt = stmt.where(EmailOutbox.template_key == template_key)
        if to_address is not None:
            stmt = stmt.where(EmailOutbox.to_address == to_address)
        return list((await self.session.scalars(stmt.order_by(EmailOutbox.created_at, EmailOutbox.id))).all())

    @staticmethod
    def mark_sent(row: EmailOutbox, at: datetime) -> None:
        """Record a successful delivery."""
        row.status = EmailStatus.sent
        row.sent_at = at
        row.last_error = None
        _redact(row)

    @staticmethod
    def mark_failed(row: EmailOutbox, error: str) -> None:
        """Record a delivery that will not be retried."""
        row.status = EmailStatus.failed
        row.last_error = error[:2000]
        _redact(row)


REDACTED = "[redacted after delivery: this message contained a secret]"


def _redact(row: EmailOutbox) -> None:
    if row.sensitive:
        row.body_text = REDACTED
        row.body_html = ""
