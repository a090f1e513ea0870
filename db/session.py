"""Async engine and session factory. Callers own transactions: commit at the request or activity boundary."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Engine for our database; ``pool_pre_ping`` survives a restarted embedded Postgres."""
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit, so handlers can serialise what they saved."""
    return async_sessionmaker(engine, expire_on_commit=False)
