"""Input and result of ``DatabaseBackupWorkflow``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BackupInput(BaseModel):
    """One backup, named by ``backup_id`` (a retry writes the same file, never a second one)."""

    backup_id: str = Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")
    keep: int = Field(default=14, ge=1, le=1000)


class BackupResult(BaseModel):
    """The dump written and the old ones removed to stay within ``keep``."""

    file: str
    bytes: int
    pruned: list[str] = Field(default_factory=list)
