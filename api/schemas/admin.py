"""Platform-operator response bodies."""

from __future__ import annotations

from api.schemas.common import ReadModel


class PlanStats(ReadModel):
    """Counts for the organisations on one plan."""

    organizations: int
    users: int
    agents: int
    notifications: int


class AdminStatsRead(ReadModel):
    """Platform totals (agents exclude deleted ones) and the same counts per plan."""

    organizations: int
    users: int
    agents: int
    notifications: int
    by_plan: dict[str, PlanStats]
