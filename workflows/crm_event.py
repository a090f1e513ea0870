"""CrmEventWorkflow: act on one inbound Kommo CRM event, exactly once per event key."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.conversations import ConversationActivities
    from activities.kommo import KommoActivities
    from workflows.conversation_models import MAX_TEXT, IncomingMessage, RouteMessageInput
    from workflows.crm_models import (
        CrmEventInput,
        CrmEventResult,
        FetchLeadInput,
        LeadSnapshot,
        RecordOutcomeInput,
    )
    from workflows.trigger_dispatch import dispatch_triggers

# Runs recorded before chat messages were routed to the lead's conversation replay without the routing.
ROUTE_CHAT_MESSAGES = "route-chat-messages-to-conversation"
KOMMO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=10,
)


@workflow.defn
class CrmEventWorkflow:
    """``crm-event/{org}/{event_key}``: re-fetch the entity, dispatch, record the outcome on the inbox row."""

    @workflow.run
    async def run(self, data: CrmEventInput) -> CrmEventResult:
        """Re-fetch the lead through the API, dispatch the event, and record what happened."""
        lead: LeadSnapshot | None = None
        try:
            if data.lead_kommo_id is not None and not (data.entity == "lead" and data.action == "delete"):
                lead = await workflow.execute_activity_method(
                    KommoActivities.fetch_lead,
                    FetchLeadInput(org_id=data.org_id, kommo_lead_id=data.lead_kommo_id),
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=KOMMO_RETRY,
                )
            outcome = await self._dispatch(data, lead)
        except ActivityError as exc:
            # Leave a visible trace on the inbox row, then fail the run so it shows in the UI.
            outcome = f"failed: {exc.cause or exc}"[:2000]
            await self._record(data, outcome)
            raise ApplicationError(outcome, type="CrmEventFailed", non_retryable=True) from exc
        await self._record(data, outcome)
        return CrmEventResult(outcome=outcome, lead_id=lead.lead_id if lead is not None else None)

    async def _dispatch(self, event: CrmEventInput, lead: LeadSnapshot | None) -> str:
        """Hand a chat message to the lead's conversation, then run the org's triggers for the event."""
        routed = ""
        if (event.entity, event.action) == ("message", "add") and lead is not None and lead.found \
                and workflow.patched(ROUTE_CHAT_MESSAGES):
            routed = await self._route_message(event)
        # The conversation signals the lead's enrolments itself; signalling here too would count a reply twice.
        outcome = await dispatch_triggers(event, lead, signal_enrollments=not routed)
        return f"{routed}; {outcome}" if routed else outcome

    async def _route_message(self, event: CrmEventInput) -> str:
        author = event.chat_author()
        if author is None or event.lead_kommo_id is None:
            return ""
        result = await workflow.execute_activity_method(
            ConversationActivities.route_incoming_message,
            RouteMessageInput(org_id=event.org_id, lead_kommo_id=event.lead_kommo_id, message=IncomingMessage(
                message_id=event.entity_id[:200], text=(event.text or "")[:MAX_TEXT], author=author,
                author_name=(event.author_name or "")[:255] or None,
            )),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=KOMMO_RETRY,
            summary=f"{author} message to conversation",
        )
        return f"{author} message routed to {result.workflow_id}" if result.workflow_id else ""

    async def _record(self, data: CrmEventInput, outcome: str) -> None:
        await workflow.execute_activity_method(
            KommoActivities.record_event_outcome,
            RecordOutcomeInput(inbox_event_id=data.inbox_event_id, outcome=outcome,
                               workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=30),
        )
