"""Fixed-window counters in Postgres, so a limit holds across every API replica and worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import RateLimitWindow


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one hit: allowed or not, and how long until the window resets."""

    allowed: bool
    retry_after: int


class RateLimitRepository:
    """One atomic upsert per hit; old windows are pruned opportunistically."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def hit(self, key: str, *, limit: int, window_seconds: int, now: datetime | None = None) -> RateDecision:
        """Count one hit against ``key`` and say whether it is within ``limit`` per window."""
        now = now or datetime.now(UTC)
        epoch = int(now.timestamp())
        start = datetime.fromtimestamp(epoch - epoch % window_seconds, UTC)
        stmt = (
            insert(RateLimitWindow)
            .values(key=key, window_start=start, hits=1)
            .on_conflict_do_update(
                index_elements=[RateLimitWindow.key, RateLimitWindow.window_start],
                set_={"hits": RateLimitWindow.hits + 1},
            )
            .returning(RateLimitWindow.hits)
        )
        hits = int((await self.session.execute(stmt)).scalar_one())
        retry_after = max(1, int((start + timedelta(seconds=window_seconds) - now).total_seconds()))
        return RateDecision(allowed=hits <= limit, retry_after=retry_after)

    async def prune(self, older_than: datetime) -> None:
        """Drop windows that can no longer matter."""
        await self.session.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start < older_than))
