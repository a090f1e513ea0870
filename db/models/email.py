"""The email outbox: every message we send is a row first, then delivered by an activity."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class EmailStatus(enum.StrEnum):
    """Queued until delivered; failed when the server refused it for good or retries ran out."""

    queued = "queued"
    sent = "sent"
    failed = "failed"


class EmailOutbox(RecordMixin, TenantMixin, Base):
    """One rendered message to one recipient.

    ``idempotency_key`` is unique, so a retried activity or a repeated request queues the message once;
    delivery is keyed by the row id (also the message's Message-ID, so a receiver can drop a duplicate
    if a crash lands between the SMTP send and marking the row sent).
    """

    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_org_created", "org_id", "created_at", "id"),
        Index("ix_email_outbox_org_status", "org_id", "status"),
    )

    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    template_key: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[EmailStatus] = mapped_column(
        Enum(EmailStatus, name="email_status", native_enum=False, length=16), default=EmailStatus.queued
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Bodies carrying a secret (a password-reset link) are blanked once the row is sent or failed, so
    # the outbox does not keep a usable token at rest longer than delivery takes.
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
