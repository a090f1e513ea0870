"""Rate limits backed by Postgres, so they hold across API replicas."""

from __future__ import annotations

from fastapi import Request

from api.errors import TooManyRequests
from db.repositories.rate_limits import RateLimitRepository


async def enforce_rate_limit(request: Request, key: str, *, limit: int, window_seconds: int) -> None:
    """Count a hit for ``key``; 429 with Retry-After once the window's limit is exceeded.

    The hit is committed in its own session so it counts even when the request then fails
    (a failed login must still use up an attempt).
    """
    async with request.app.state.sessions() as session:
        decision = await RateLimitRepository(session).hit(key, limit=limit, window_seconds=window_seconds)
        await session.commit()
    if not decision.allowed:
        raise TooManyRequests(decision.retry_after, "Too many attempts; try again later.")


def client_ip(request: Request) -> str:
    """The peer address (behind a proxy, run uvicorn with --proxy-headers so this is the real client)."""
    return request.client.host if request.client else "unknown"
