"""/api/dashboard and /api/analytics: how the organisation stands now, and how its sequences and agents did."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.analytics import AnalyticsRead, ChartsRead, DashboardRead, UpdatesRead
from api.schemas.common import Limit
from api.services.analytics import AnalyticsService

router = APIRouter(tags=["analytics"])

FirstDay = Annotated[date | None, Query(alias="from", description="First local day (default: 30 days ago)")]
LastDay = Annotated[date | None, Query(alias="to", description="Last local day, included (default: today)")]
ReplyWindow = Annotated[int, Query(ge=1, le=720, description="Hours after a send in which a reply counts for it")]


@router.get("/api/dashboard", response_model=DashboardRead)
async def get_dashboard(principal: CurrentPrincipal, session: SessionDep) -> DashboardRead:
    """Agents, leads, running enrolments, conversations needing a person, and today's traffic."""
    return await AnalyticsService(session, principal.org_id).dashboard()


@router.get("/api/dashboard/charts", response_model=ChartsRead)
async def get_dashboard_charts(
    principal: CurrentPrincipal, session: SessionDep, first: FirstDay = None, last: LastDay = None,
    agent_id: uuid.UUID | None = None,
) -> ChartsRead:
    """Daily sequence messages, agent replies, lead messages and enrolments, in the organisation's zone."""
    return await AnalyticsService(session, principal.org_id).charts(first=first, last=last, agent_id=agent_id)


@router.get("/api/dashboard/updates", response_model=UpdatesRead)
async def get_dashboard_updates(
    principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="From the previous answer")] = None,
) -> UpdatesRead:
    """Live activity for polling: messages, enrolments starting and ending, notifications after the cursor."""
    return await AnalyticsService(session, principal.org_id).updates(principal.user_id, cursor, limit)


@router.get("/api/analytics", response_model=AnalyticsRead)
async def get_analytics(
    principal: CurrentPrincipal, session: SessionDep, first: FirstDay = None, last: LastDay = None,
    agent_id: uuid.UUID | None = None, sequence_id: uuid.UUID | None = None, reply_window_hours: ReplyWindow = 168,
) -> AnalyticsRead:
    """Per sequence, step and A/B variant: enrolments, messages sent, replies and reply rate; conversation activity."""
    return await AnalyticsService(session, principal.org_id).analytics(
        first=first, last=last, agent_id=agent_id, sequence_id=sequence_id, reply_window_hours=reply_window_hours)


@router.get("/api/analytics/export", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "One row per step and variant"}})
async def export_analytics(
    principal: CurrentPrincipal, session: SessionDep, first: FirstDay = None, last: LastDay = None,
    agent_id: uuid.UUID | None = None, sequence_id: uuid.UUID | None = None, reply_window_hours: ReplyWindow = 168,
) -> Response:
    """The analytics' step and variant rows as a CSV download."""
    body, filename = await AnalyticsService(session, principal.org_id).export_csv(
        first=first, last=last, agent_id=agent_id, sequence_id=sequence_id, reply_window_hours=reply_window_hours)
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
