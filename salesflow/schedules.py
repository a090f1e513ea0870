"""Create-or-update and delete of Temporal Schedules, shared by every per-organisation schedule."""

from __future__ import annotations

from temporalio.client import Client, Schedule, ScheduleAlreadyRunningError, ScheduleUpdate, ScheduleUpdateInput
from temporalio.service import RPCError, RPCStatusCode


async def upsert_schedule(client: Client, schedule_id: str, desired: Schedule) -> str:
    """Create the schedule, or bring an existing one to ``desired`` (spec, action and policy)."""
    try:
        await client.create_schedule(schedule_id, desired)
        return schedule_id
    except ScheduleAlreadyRunningError:
        pass

    def _update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=desired)

    await client.get_schedule_handle(schedule_id).update(_update)
    return schedule_id


async def delete_schedule(client: Client, schedule_id: str) -> bool:
    """Delete the schedule; False if there was none."""
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def schedules_unsupported(exc: BaseException) -> bool:
    """Temporal's time-skipping test server does not implement schedules."""
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.UNIMPLEMENTED
