"""Worker process entry point."""

from __future__ import annotations

import asyncio
import signal

import httpx
import structlog

from db.session import create_engine, create_sessionmaker
from salesflow.settings import Settings
from salesflow.temporal import connect_client
from workers.registry import build_worker

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings) -> None:
    """Poll the salesflow task queue until SIGINT/SIGTERM, then drain and exit."""
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set")
    engine = create_engine(settings.database_url)
    client = await connect_client(settings)
    http = httpx.AsyncClient(timeout=30)
    worker = build_worker(client, create_sessionmaker(engine), settings=settings, http=http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker started", temporal=settings.temporal_address)
        await stop.wait()
        log.info("worker stopping")
    await http.aclose()
    await engine.dispose()
