"""Email side effects: queue rendered messages in the outbox and deliver outbox rows over SMTP."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.models import EmailOutbox, EmailStatus, Role
from db.repositories.accounts import OrganizationRepository, UserRepository
from db.repositories.content import EmailTemplateRepository
from db.repositories.email import EmailOutboxRepository
from domain.email_defaults import STEP_COPY, compose, reminder_key
from domain.templates import EmailTemplateSource
from integrations.smtp.client import SmtpConfig, SmtpPermanentError, SmtpTransientError, send_message
from salesflow.settings import Settings
from workflows.email_delivery_models import DeliverEmail, DeliveryResult, DeliveryStatus, MarkEmailFailed
from workflows.onboarding_models import OnboardingReminder

log = structlog.get_logger(__name__)

Transport = Callable[[EmailMessage], Awaitable[None]]


def build_message(row: EmailOutbox, sender: str) -> EmailMessage:
    """The MIME message of an outbox row; its Message-ID is the row id, so a duplicate is recognisable."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_address
    message["Subject"] = " ".join(row.subject.splitlines())
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "salesflow.local"
    message["Message-ID"] = f"<{row.id}@{domain}>"
    message.set_content(row.body_text or row.subject)
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message


async def template_source(session: AsyncSession, org_id: uuid.UUID, key: str) -> EmailTemplateSource | None:
    """The organisation's own template stored under ``key``, if any."""
    template = await EmailTemplateRepository(session, org_id).get_by_key(key)
    if template is None:
        return None
    return EmailTemplateSource(
        subject=template.subject, body_html=template.body_html, body_text=template.body_text,
        variables=tuple(template.variables),
    )


class EmailActivities:
    """Outbox and SMTP, with the session factory and settings injected by the worker.

    ``transport`` replaces SMTP entirely (the demo or a test may pass one); by default messages go to
    ``settings.smtp_host``, or, in development with no host, to the log.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, transport: Transport | None = None
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.transport = transport

    async def _send(self, message: EmailMessage) -> None:
        if self.transport is not None:
            await self.transport(message)
            return
        s = self.settings
        if s.smtp_host is None:
            if s.environment == "development":
                log.info("email (development, no SMTP host: logged, not sent)", to=message["To"],
                         subject=message["Subject"], body=message.get_body(preferencelist=("plain",)))
                return
            raise SmtpPermanentError("SMTP is not configured (smtp_host is unset)")
        config = SmtpConfig(host=s.smtp_host, port=s.smtp_port, user=s.smtp_user, password=s.smtp_password,
                            tls=s.smtp_tls, timeout=s.smtp_timeout_seconds)
        await send_message(config, message)

    @activity.defn
    async def deliver(self, data: DeliverEmail) -> DeliveryResult:
        """Send one outbox row once: a row already sent or failed is left alone (idempotent by row id).

        The row stays locked during the send, so two deliveries of one row cannot both send it. A
        permanent refusal marks the row failed and returns; a transient one counts the attempt and
        raises, so Temporal retries.
        """
        async with self.sessions() as session:
            repo = EmailOutboxRepository(session, data.org_id)
            row = await repo.get_for_update(data.outbox_id)
            if row is None:
                raise ApplicationError(f"outbox row {data.outbox_id} not found", non_retryable=True)
            if row.status != EmailStatus.queued:
                return DeliveryResult(outbox_id=row.id, status=DeliveryStatus(row.status.value))
            row.attempts += 1
            try:
                await self._send(build_message(row, self.settings.smtp_from))
            except SmtpPermanentError as exc:
                repo.mark_failed(row, str(exc))
                await session.commit()
                log.warning("email refused for good", outbox_id=str(row.id), error=str(exc))
                return DeliveryResult(outbox_id=row.id, status=DeliveryStatus.failed)
            except SmtpTransientError as exc:
                row.last_error = str(exc)[:2000]
                await session.commit()
                raise
            repo.mark_sent(row, datetime.now(UTC))
            await session.commit()
            return DeliveryResult(outbox_id=row.id, status=DeliveryStatus.sent)

    @activity.defn
    async def mark_failed(self, data: MarkEmailFailed) -> None:
        """Give up on a row that is still queued (its delivery retries ran out)."""
        async with self.sessions() as session:
            repo = EmailOutboxRepository(session, data.org_id)
            row = await repo.get_for_update(data.outbox_id)
            if row is not None and row.status == EmailStatus.queued:
                repo.mark_failed(row, data.error)
                await session.commit()

    @activity.defn
    async def queue_onboarding_reminder(self, data: OnboardingReminder) -> list[uuid.UUID]:
        """Queue the onboarding reminder to every owner of the organisation; returns the outbox row ids.

        Keyed by (org, step, day, owner), so a retried activity queues nothing twice. The organisation's
        template under the reminder key is used when it has one, the built-in one otherwise.
        """
        key = reminder_key(data.day)
        title, hint = STEP_COPY[data.step.value]
        async with self.sessions() as session:
            org = await OrganizationRepository(session).get(data.org_id)
            if org is None:
                raise ApplicationError(f"organization {data.org_id} not found", non_retryable=True)
            owners = await UserRepository(session).members_with_role(data.org_id, Role.owner)
            custom = await template_source(session, data.org_id, key)
            outbox = EmailOutboxRepository(session, data.org_id)
            ids: list[uuid.UUID] = []
            for user in owners:
                values = {"user_name": user.full_name, "org_name": org.name, "step_title": title,
                          "step_hint": hint, "app_url": self.settings.org_app_url(org.slug)}
                rendered, _ = compose(key, values, custom)
                ids.append(await outbox.enqueue(
                    to_address=user.email, subject=rendered.subject, body_text=rendered.body_text,
                    body_html=rendered.body_html, template_key=key,
                    idempotency_key=f"onboarding-reminder/{data.org_id}/{data.step.value}/{data.day}/{user.id}",
                ))
            await session.commit()
        return ids
