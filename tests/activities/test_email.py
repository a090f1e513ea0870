"""EmailActivities against the real database and the SMTP sandbox: once-only delivery and its failure modes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.email import EmailActivities
from db.models import EmailOutbox, EmailStatus
from db.repositories.email import REDACTED, EmailOutboxRepository
from integrations.smtp.client import SmtpTransientError
from integrations.smtp.sandbox import SmtpSandbox
from salesflow.settings import Settings
from tests.harness import Tenant
from workflows.email_delivery import EmailDeliveryWorkflow
from workflows.email_delivery_models import DeliverEmail, DeliveryStatus
from workflows.ids import TASK_QUEUE, email_delivery_id

Sessions = async_sessionmaker[AsyncSession]


async def _queue(sessions: Sessions, tenant: Tenant, *, key: str | None = None, sensitive: bool = False) -> uuid.UUID:
    async with sessions() as session:
        outbox_id = await EmailOutboxRepository(session, tenant.org_id).enqueue(
            to_address=tenant.email, subject="Hello", body_text="secret link", body_html="<p>secret link</p>",
            template_key="test", idempotency_key=key or f"test/{tenant.org_id}/{uuid.uuid4()}", sensitive=sensitive,
        )
        await session.commit()
    return outbox_id


async def _row(sessions: Sessions, tenant: Tenant, outbox_id: uuid.UUID) -> EmailOutbox:
    async with sessions() as session:
        row = await EmailOutboxRepository(session, tenant.org_id).get(outbox_id)
    assert row is not None
    return row


async def test_queueing_is_idempotent_per_key(sessions: Sessions, tenant: Tenant) -> None:
    key = f"test/{tenant.org_id}/once"
    assert await _queue(sessions, tenant, key=key) == await _queue(sessions, tenant, key=key)


async def test_a_row_is_delivered_once_however_often_delivery_runs(
    sessions: Sessions, settings: Settings, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    outbox_id = await _queue(sessions, tenant)
    activities = EmailActivities(sessions, settings)
    env = ActivityEnvironment()
    first = await env.run(activities.deliver, DeliverEmail(org_id=tenant.org_id, outbox_id=outbox_id))
    second = await env.run(activities.deliver, DeliverEmail(org_id=tenant.org_id, outbox_id=outbox_id))
    assert first.status == second.status == DeliveryStatus.sent
    [message] = smtp_sandbox.to(tenant.email)
    assert message.message["Message-ID"] == f"<{outbox_id}@salesflow.dev>"
    row = await _row(sessions, tenant, outbox_id)
    assert (row.status, row.attempts, row.body_text) == (EmailStatus.sent, 1, "secret link")
    assert row.sent_at is not None


async def test_a_permanent_refusal_marks_the_row_failed_and_redacts_a_secret(
    sessions: Sessions, settings: Settings, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    outbox_id = await _queue(sessions, tenant, sensitive=True)
    smtp_sandbox.fail_next("RCPT", 550, "5.1.1 mailbox unknown", to=tenant.email)
    result = await ActivityEnvironment().run(
        EmailActivities(sessions, settings).deliver, DeliverEmail(org_id=tenant.org_id, outbox_id=outbox_id)
    )
    assert result.status == DeliveryStatus.failed
    row = await _row(sessions, tenant, outbox_id)
    assert row.status == EmailStatus.failed
    assert row.last_error is not None
    assert "550" in row.last_error
    assert (row.body_text, row.body_html) == (REDACTED, "")


async def test_a_transient_failure_is_counted_and_raised_for_temporal_to_retry(
    sessions: Sessions, settings: Settings, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    outbox_id = await _queue(sessions, tenant)
    activities = EmailActivities(sessions, settings)
    data = DeliverEmail(org_id=tenant.org_id, outbox_id=outbox_id)
    smtp_sandbox.fail_next("DATA", 451, "4.3.0 try again later", to=tenant.email)
    with pytest.raises(SmtpTransientError):
        await ActivityEnvironment().run(activities.deliver, data)
    row = await _row(sessions, tenant, outbox_id)
    assert (row.status, row.attempts) == (EmailStatus.queued, 1)
    assert row.last_error is not None
    assert "451" in row.last_error
    assert (await ActivityEnvironment().run(activities.deliver, data)).status == DeliveryStatus.sent
    assert (await _row(sessions, tenant, outbox_id)).attempts == 2
    assert len(smtp_sandbox.to(tenant.email)) == 1


async def test_development_without_smtp_logs_and_marks_sent_but_other_environments_fail(
    sessions: Sessions, settings: Settings, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    dev = settings.model_copy(update={"environment": "development", "smtp_host": None})
    logged = await _queue(sessions, tenant)
    result = await ActivityEnvironment().run(
        EmailActivities(sessions, dev).deliver, DeliverEmail(org_id=tenant.org_id, outbox_id=logged)
    )
    assert result.status == DeliveryStatus.sent
    prod = settings.model_copy(update={"environment": "production", "smtp_host": None})
    refused = await _queue(sessions, tenant)
    result = await ActivityEnvironment().run(
        EmailActivities(sessions, prod).deliver, DeliverEmail(org_id=tenant.org_id, outbox_id=refused)
    )
    assert result.status == DeliveryStatus.failed
    assert "not configured" in ((await _row(sessions, tenant, refused)).last_error or "")
    assert smtp_sandbox.to(tenant.email) == []


async def test_another_organisations_row_cannot_be_delivered(
    sessions: Sessions, settings: Settings, tenant: Tenant, other_tenant: Tenant
) -> None:
    outbox_id = await _queue(sessions, tenant)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            EmailActivities(sessions, settings).deliver, DeliverEmail(org_id=other_tenant.org_id, outbox_id=outbox_id)
        )
    assert caught.value.non_retryable
    assert (await _row(sessions, tenant, outbox_id)).status == EmailStatus.queued


async def test_the_delivery_workflow_gives_up_and_marks_the_row_failed_after_its_retries(
    sessions: Sessions, tenant: Tenant, smtp_sandbox: SmtpSandbox, own_temporal: WorkflowEnvironment
) -> None:
    outbox_id = await _queue(sessions, tenant)
    for _ in range(16):
        smtp_sandbox.fail_next("DATA", 451, "4.3.0 busy", to=tenant.email)
    # Its own time-skipping server: the retry backoff (hours in all) passes in moments.
    result = await own_temporal.client.execute_workflow(
        EmailDeliveryWorkflow.run, DeliverEmail(org_id=tenant.org_id, outbox_id=outbox_id),
        id=email_delivery_id(outbox_id), task_queue=TASK_QUEUE,
    )
    assert result.status == DeliveryStatus.failed
    row = await _row(sessions, tenant, outbox_id)
    assert (row.status, row.attempts) == (EmailStatus.failed, 16)
    assert smtp_sandbox.to(tenant.email) == []
