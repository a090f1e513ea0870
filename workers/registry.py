"""Which workflows and activities run on the salesflow task queue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from activities.store import StoreActivities
from workflows.ids import TASK_QUEUE
from workflows.onboarding import OnboardingWorkflow

WORKFLOWS: Sequence[type] = (OnboardingWorkflow,)


def build_activities(sessions: async_sessionmaker[AsyncSession]) -> list[Callable[..., Any]]:
    """Activity callables bound to their injected clients."""
    store = StoreActivities(sessions)
    notify = NotifyActivities(sessions)
    return [store.confirm_organization, notify.notify]


def build_worker(
    client: Client, sessions: async_sessionmaker[AsyncSession], *, task_queue: str = TASK_QUEUE
) -> Worker:
    """A worker running every salesflow workflow and activity."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(sessions),
    )
