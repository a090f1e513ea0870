"""/api/health: liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(prefix="/api/health", tags=["health"])


class HealthRead(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"
    version: str


class ReadinessRead(BaseModel):
    """Whether each dependency answers; ``status`` is ready only when all do."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Literal["up", "down"]]


@router.get("", response_model=HealthRead)
async def get_health(request: Request) -> HealthRead:
    """Liveness: answers as long as the process serves HTTP."""
    return HealthRead(version=request.app.version)


async def _postgres_up(request: Request) -> bool:
    try:
        async with request.app.state.sessions() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=2)
        return True
    except Exception:
        return False


async def _temporal_up(request: Request) -> bool:
    client = request.app.state.temporal
    if client is None:
        return False
    try:
        return bool(await asyncio.wait_for(client.service_client.check_health(), timeout=2))
    except Exception:
        return False


@router.get("/ready", response_model=ReadinessRead, responses={503: {"model": ReadinessRead}})
async def get_readiness(request: Request) -> JSONResponse:
    """Readiness: checks PostgreSQL and Temporal and says which is down (503 if any)."""
    pg, temporal = await asyncio.gather(_postgres_up(request), _temporal_up(request))
    checks: dict[str, Literal["up", "down"]] = {
        "postgres": "up" if pg else "down",
        "temporal": "up" if temporal else "down",
    }
    ready = pg and temporal
    body = ReadinessRead(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
