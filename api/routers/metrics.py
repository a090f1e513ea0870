"""/api/metrics: Prometheus text for operators (this process's HTTP traffic and the platform's backlogs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionDep, SettingsDep
from api.metrics import HttpMetrics, gauges, render
from api.services.admin import require_operator
from db.repositories.admin import PlatformGaugesRepository

router = APIRouter(tags=["metrics"])
_bearer = HTTPBearer(auto_error=False, description="The metrics token, or a platform administrator's access token")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labelled(name: str, counts: dict[str, int]) -> dict[tuple[tuple[str, str], ...], float]:
    return {((name, key),): value for key, value in counts.items()}


@router.get("/api/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"}})
async def get_metrics(
    request: Request, settings: SettingsDep, session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Prometheus metrics; the scrape token (setting ``metrics_token``) or a platform administrator's token."""
    await require_operator(session, settings, credentials.credentials if credentials else None,
                           settings.metrics_token)
    figures = await PlatformGaugesRepository(session).gauges(datetime.now(UTC))
    requests: HttpMetrics | None = getattr(request.app.state, "request_metrics", None)
    inbox = figures["inbox"]
    body = render([
        requests.exposition() if requests is not None else [],
        gauges("salesflow_organizations", "Organisations.", figures["organizations"]),
        gauges("salesflow_agents", "Agents by status.", _labelled("status", figures["agents"])),
        gauges("salesflow_enrollments_live", "Sequence enrolments not finished, by status.",
               _labelled("status", figures["enrollments"])),
        gauges("salesflow_conversations", "Lead conversations by status.",
               _labelled("status", figures["conversations"])),
        gauges("salesflow_replies_awaiting_approval", "Agent replies held for a person's approval.",
               figures["awaiting_approval"]),
        gauges("salesflow_email_outbox", "Emails not delivered yet (queued) or given up on (failed).",
               _labelled("status", figures["email_outbox"])),
        gauges("salesflow_inbox_unprocessed", "Inbound webhook events no workflow has finished yet, by source.",
               {(("source", source),): count for source, (count, _) in inbox.items()}),
        gauges("salesflow_inbox_oldest_unprocessed_seconds", "Age of the oldest unprocessed event, by source.",
               {(("source", source),): age for source, (_, age) in inbox.items()}),
    ])
    return Response(body, media_type=CONTENT_TYPE)
