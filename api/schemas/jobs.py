"""Jobs: background work started on request (a Temporal workflow each), and its status."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import InputModel

JobType = Literal["crm_sync", "crm_full_sync", "trigger_clock"]


class JobCreate(InputModel):
    """``crm_sync``: pull what changed in Kommo; ``crm_full_sync``: every lead again; ``trigger_clock``:
    fire the due time-based triggers now instead of at the next hourly tick."""

    type: JobType


class JobRead(BaseModel):
    """A job's run as Temporal reports it."""

    job_id: str = Field(description="The workflow id; pass it to GET /api/jobs/status")
    type: str
    status: Literal["running", "completed", "failed", "canceled", "terminated", "timed_out", "continued_as_new"]
    started_at: datetime | None
    closed_at: datetime | None
    temporal_url: str
