"""``salesflow up``: embedded services when none are configured, then migrations, worker and API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from types import FrameType

import structlog

from db.migrate import upgrade
from salesflow.settings import Settings
from salesflow.stack import EmbeddedPostgres, TemporalDevServer
from salesflow.temporal import connect_client, ensure_search_attributes

log = structlog.get_logger(__name__)


class LocalStack:
    """Starts what is missing, runs worker and API as child processes, and stops all of it in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None
        self.children: list[subprocess.Popen[bytes]] = []

    def start_services(self) -> Settings:
        """Embedded Postgres / Temporal dev server where no URL is configured; returns effective settings."""
        data = self.settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        updates: dict[str, object] = {}
        if self.settings.database_url is None:
            self.postgres = EmbeddedPostgres(data / "postgres", self.settings.embedded_postgres_port)
            self.postgres.start()
            updates["database_url"] = self.postgres.url
        if self.settings.temporal_address is None:
            self.temporal = TemporalDevServer(
                data / "temporal.db", self.settings.temporal_dev_port, self.settings.temporal_ui_port
            )
            self.temporal.start(log_file=data / "temporal.log")
            updates["temporal_address"] = self.temporal.address
            updates["temporal_ui_url"] = f"http://localhost:{self.settings.temporal_ui_port}"
        effective = self.settings.model_copy(update=updates)
        if self.temporal is None:
            # An external server may not know our search attributes yet; the dev server got them at start.
            asyncio.run(self._register_search_attributes(effective))
        return effective

    @staticmethod
    async def _register_search_attributes(settings: Settings) -> None:
        client = await connect_client(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)

    def start_processes(self, effective: Settings) -> None:
        """Migrate, then run the worker and the API as children sharing our environment."""
        assert effective.database_url is not None
        upgrade(effective.database_url)
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": effective.database_url,
            "TEMPORAL_ADDRESS": str(effective.temporal_address),
            "SALESFLOW_TEMPORAL_UI_URL": effective.temporal_ui_url,
        })
        cli = [sys.executable, "-m", "salesflow.cli"]
        for command in ("worker", "api"):
            # Own process group: Ctrl-C reaches only us, and we stop children in a known order.
            self.children.append(subprocess.Popen([*cli, command], env=env, start_new_session=True))  # noqa: S603

    def stop(self) -> None:
        """Stop API and worker (SIGTERM, then SIGKILL after 15 s), then Temporal, then Postgres."""
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()
        if self.temporal is not None:
            self.temporal.stop()
        if self.postgres is not None:
            self.postgres.stop()


def run_stack(settings: Settings) -> None:
    """Run until Ctrl-C / SIGTERM or until a child dies, then stop everything cleanly."""
    stack = LocalStack(settings)
    stopping = False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        effective = stack.start_services()
        stack.start_processes(effective)
        base = f"http://{settings.api_host}:{settings.api_port}"
        print(f"\n  salesflow API     {base}/api/docs  (ready: {base}/api/health/ready)", flush=True)
        print(f"  Temporal UI      {effective.temporal_ui_url}", flush=True)
        print("  Ctrl-C stops everything.\n", flush=True)
        while not stopping:
            if any(child.poll() is not None for child in stack.children):
                log.error("a child process exited; stopping the stack")
                break
            time.sleep(0.5)
    finally:
        stack.stop()
        log.info("salesflow stopped")
