"""Which workflows and activities run on the salesflow task queue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.backup import BackupActivities
from activities.billing import BillingActivities
from activities.brain import BrainActivities
from activities.conversations import ConversationActivities
from activities.email import EmailActivities
from activities.enrollments import EnrollmentActivities
from activities.kommo import KommoActivities
from activities.notify import NotifyActivities
from activities.sequences import SequenceActivities
from activities.store import StoreActivities
from activities.trigger_clock import TriggerClockActivities
from activities.triggers import TriggerActivities
from activities.webhooks import WebhookActivities
from integrations.crypto import SecretBox
from salesflow.brain import Brain, provider_from_settings
from salesflow.conversations import ConnectionKommoClients
from salesflow.settings import Settings, get_settings
from workflows.backup import DatabaseBackupWorkflow
from workflows.billing_event import BillingEventWorkflow
from workflows.bulk_enrollment import BulkEnrollmentWorkflow
from workflows.conversation import LeadConversationWorkflow
from workflows.crm_event import CrmEventWorkflow
from workflows.crm_sync import CrmSyncWorkflow
from workflows.email_delivery import EmailDeliveryWorkflow
from workflows.ids import TASK_QUEUE
from workflows.onboarding import OnboardingWorkflow
from workflows.sequence_enrollment import SequenceEnrollmentWorkflow
from workflows.trigger_clock import TriggerClockWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOWS: Sequence[type] = (OnboardingWorkflow, CrmSyncWorkflow, CrmEventWorkflow, EmailDeliveryWorkflow,
                             LeadConversationWorkflow, SequenceEnrollmentWorkflow, BulkEnrollmentWorkflow,
                             TriggerClockWorkflow, BillingEventWorkflow, DatabaseBackupWorkflow,
                             WebhookDeliveryWorkflow)


def build_activities(
    sessions: async_sessionmaker[AsyncSession],
    *,
    settings: Settings | None = None,
    http: httpx.AsyncClient | None = None,
    temporal: Client | None = None,
) -> list[Callable[..., Any]]:
    """Activity callables bound to their injected clients.

    ``http`` is the pool every third-party call shares; pass the process's own (and close it at
    shutdown). Without one a pool is created for the process lifetime.
    """
    settings = settings or get_settings()
    http = http or httpx.AsyncClient(timeout=30)
    store = StoreActivities(sessions)
    notify = NotifyActivities(sessions)
    kommo = KommoActivities(sessions, settings, SecretBox(settings.token_encryption_key), http)
    email = EmailActivities(sessions, settings)
    kommo_clients = ConnectionKommoClients(sessions, settings, http)
    conversations = ConversationActivities(sessions, settings, kommo_clients, temporal)
    sequences = SequenceActivities(sessions, settings, kommo_clients)
    triggers = TriggerActivities(sessions, settings, kommo_clients)
    trigger_clock = TriggerClockActivities(sessions, settings, triggers)
    enrollments = EnrollmentActivities(sessions, settings)
    brain = BrainActivities(sessions, settings, Brain(provider_from_settings(settings, http)), kommo_clients, http)
    return [
        store.confirm_organization,
        notify.notify,
        kommo.reconcile_sync_schedule,
        kommo.plan_sync,
        kommo.sync_pipelines,
        kommo.sync_users,
        kommo.sync_custom_fields,
        kommo.sync_leads,
        kommo.finish_sync,
        kommo.fetch_lead,
        kommo.record_event_outcome,
        kommo.update_lead_status,
        kommo.add_note,
        kommo.add_tag,
        kommo.create_task,
        kommo.set_lead_field,
        email.deliver,
        email.mark_failed,
        email.queue_onboarding_reminder,
        conversations.open_conversation,
        conversations.record_inbound,
        conversations.record_reply,
        conversations.send_reply,
        conversations.close_draft,
        conversations.record_handoff,
        conversations.save_state,
        conversations.signal_lead_replied,
        conversations.opt_out_lead,
        conversations.route_incoming_message,
        brain.generate_reply,
        brain.apply_crm_updates,
        brain.compose_follow_up,
        *sequences.all(),
        triggers.run_triggers,
        trigger_clock.plan,
        trigger_clock.fire_due,
        enrollments.run_batch,
        BillingActivities(sessions, settings, http).apply_event,
        BackupActivities(settings).dump_database,
        *_webhook_activities(sessions, settings),
    ]


def _webhook_activities(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> list[Callable[..., Any]]:
    webhooks = WebhookActivities(sessions, settings)
    return [webhooks.deliver, webhooks.mark_failed]


def build_worker(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    *,
    task_queue: str = TASK_QUEUE,
    settings: Settings | None = None,
    http: httpx.AsyncClient | None = None,
) -> Worker:
    """A worker running every salesflow workflow and activity."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(sessions, settings=settings, http=http, temporal=client),
    )
