"""The trigger clock's side effects: decide which time-based events are due and fire them.

``fire_due`` walks one page of an organisation's leads, works out with ``domain.trigger_clock`` which
``schedule`` and ``no_reply_for_hours`` events are due at the tick, and hands each (lead, event) that
would fire something to ``TriggerActivities.run_triggers``, the same code CRM events go through. That
call claims one execution per (trigger, lead, event key), so a retried page or a repeated tick fires
nothing twice and per-lead limits hold. The pre-check here only saves calls that would fire nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.triggers import TriggerActivities, trigger_definition
from db.models import ConnectionStatus, Lead
from db.repositories.kommo import KommoConnectionRepository
from db.repositories.sequences import TriggerRepository
from db.repositories.trigger_clock import TriggerClockRepository
from domain.trigger_clock import ClockEvent, Every, clock_events
from domain.triggers import NoReplyOn, ScheduleOn, TriggerDefinition, TriggerEvent, TriggerEventType, match_triggers
from salesflow.schedules import schedules_unsupported
from salesflow.sequence_facts import lead_facts
from salesflow.settings import Settings
from salesflow.trigger_schedule import delete_trigger_clock_schedule
from workflows.trigger_clock_models import (
    PAGE_ATTEMPTS,
    ClockPlan,
    ClockPlanInput,
    FireDueInput,
    FireDueResult,
)
from workflows.trigger_models import TriggerEventInput, TriggerRunInput

TIME_BASED = (TriggerEventType.schedule, TriggerEventType.no_reply_for_hours)


class TriggerClockActivities:
    """The clock's reads and firing; firing itself is ``TriggerActivities``' (injected, clients and all)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, triggers: TriggerActivities
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.triggers = triggers

    @activity.defn(name="trigger_clock.plan")
    async def plan(self, data: ClockPlanInput) -> ClockPlan:
        """Whether this tick has work: a connected Kommo account and an armed time-based trigger.

        A disconnected org's clock schedule is deleted here, so a disconnect that removed only the
        sync schedule still stops the clock within the hour.
        """
        async with self.sessions() as session:
            connection = await KommoConnectionRepository(session, data.org_id).get()
            connected = connection is not None and connection.status == ConnectionStatus.connected
            armed = False
            if connected:
                repo = TriggerRepository(session, data.org_id)
                armed = bool(await repo.armed(TriggerEventType.schedule.value)
                             or await repo.armed(TriggerEventType.no_reply_for_hours.value))
        if not connected:
            try:
                await delete_trigger_clock_schedule(activity.client(), data.org_id)
            except Exception as exc:
                if not schedules_unsupported(exc):
                    raise
            return ClockPlan(active=False, reason="Kommo is not connected; the clock schedule is removed")
        if not armed:
            return ClockPlan(active=False, reason="no armed schedule or no-reply trigger")
        return ClockPlan(active=True)

    @activity.defn(name="trigger_clock.fire_due")
    async def fire_due(self, data: FireDueInput) -> FireDueResult:
        """Fire the time-based events due at ``data.at`` for one page of leads; safe to retry.

        One failing (lead, event) does not hold up the others: a retryable failure makes Temporal retry
        the page (what already fired is skipped) until the last attempt, which reports it as ``failed``
        and lets the tick go on; the execution it left unfinished is resumed by a later tick.
        """
        page = await self._read_page(data)
        if page is None:
            return FireDueResult()
        lead_ids, due = page
        evaluated = fired = failed = 0
        retryable: list[str] = []
        last_done = data.after_lead_id
        for lead_id, kommo_id, events in due:
            if evaluated >= data.budget:
                return FireDueResult(scanned=len(lead_ids), evaluated=evaluated, fired=fired, failed=failed,
                                     next_after=last_done)
            for event in events:
                activity.heartbeat(event.event_key)
                evaluated += 1
                try:
                    run = await self.triggers.run_triggers(TriggerRunInput(
                        org_id=data.org_id, event_key=event.event_key,
                        event=TriggerEventInput(type=event.type, lead_kommo_id=kommo_id,
                                                hours_without_reply=event.hours_without_reply, every=event.every)))
                except Exception as exc:
                    activity.logger.warning("trigger clock: %s for lead %s failed: %s", event.event_key, lead_id, exc)
                    failed += 1
                    if not (isinstance(exc, ApplicationError) and exc.non_retryable):
                        retryable.append(f"{lead_id}/{event.event_key}")
                    continue
                fired += sum(1 for trigger in run.fired if not trigger.repeated)
            last_done = lead_id
        if retryable and activity.info().attempt < PAGE_ATTEMPTS:
            raise ApplicationError(f"{len(retryable)} due event(s) failed, e.g. {retryable[0]}; retrying the page")
        return FireDueResult(scanned=len(lead_ids), evaluated=evaluated, fired=fired, failed=failed,
                             next_after=lead_ids[-1] if len(lead_ids) == data.limit else None)

    async def _read_page(
        self, data: FireDueInput
    ) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, int, list[ClockEvent]]]] | None:
        # The page's leads (ids in order) and, per lead, the events that would fire something now;
        # None when the org has no armed time-based trigger.
        async with self.sessions() as session:
            repo = TriggerRepository(session, data.org_id)
            definitions: dict[TriggerEventType, list[TriggerDefinition]] = {}
            for kind in TIME_BASED:
                definitions[kind] = [d for d in map(trigger_definition, await repo.armed(kind.value)) if d]
            schedules: set[Every] = {d.on.every for d in definitions[TriggerEventType.schedule]
                                     if isinstance(d.on, ScheduleOn)}
            thresholds = [d.on.hours for d in definitions[TriggerEventType.no_reply_for_hours]
                          if isinstance(d.on, NoReplyOn)]
            if not schedules and not thresholds:
                return None
            clock = TriggerClockRepository(session, data.org_id)
            # Without schedule triggers only silent leads can be due: the database skips the rest.
            unanswered_since = None if schedules else data.at - timedelta(hours=min(thresholds))
            leads = await clock.leads_after(data.after_lead_id, data.limit, unanswered_since=unanswered_since)
            events = {lead.id: clock_events(data.at, schedules=schedules, no_reply_hours=thresholds,
                                            last_contacted_at=lead.last_contacted_at,
                                            last_replied_at=lead.last_replied_at) for lead in leads}
            lead_ids = [lead.id for lead in leads]
            counts = await clock.execution_counts(lead_ids, [d.id for kind in TIME_BASED for d in definitions[kind]])
            executed = await clock.executions_for_keys(lead_ids, [e.event_key for due in events.values() for e in due])
        due = [(lead.id, lead.kommo_id,
                [e for e in events[lead.id] if _would_fire(lead, e, definitions[e.type], counts, executed)])
               for lead in leads]
        return lead_ids, [(lead_id, kommo_id, firing) for lead_id, kommo_id, firing in due if firing]


def _would_fire(
    lead: Lead,
    event: ClockEvent,
    definitions: list[TriggerDefinition],
    counts: dict[tuple[uuid.UUID, uuid.UUID], int],
    executed: dict[tuple[uuid.UUID, str, uuid.UUID], bool],
) -> bool:
    # The same decision run_triggers makes, on rows read once per page: a trigger that matches and has
    # no finished execution for this event key (an unfinished one is resumed by run_triggers).
    mine = {trigger for (lead_id, key, trigger) in executed if lead_id == lead.id and key == event.event_key}
    adjusted = {d.id: counts.get((lead.id, d.id), 0) - (1 if d.id in mine else 0) for d in definitions}
    facts = TriggerEvent(type=event.type, lead=lead_facts(lead), hours_without_reply=event.hours_without_reply,
                         every=event.every)
    return any(not executed.get((lead.id, event.event_key, match.trigger_id), False)
               for match in match_triggers(facts, definitions, adjusted))
