"""`salesflow up` end to end: embedded Postgres + Temporal dev server + worker + API, then a clean stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from salesflow.settings import Settings
from salesflow.stack import free_port
from salesflow.temporal import connect_client
from workflows.ids import ORG_ID

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + 120
    async with httpx.AsyncClient() as http:
        while asyncio.get_running_loop().time() < deadline:
            assert proc.poll() is None, "salesflow up exited early"
            try:
                r = await http.get(f"{base}/api/health/ready", timeout=2)
                if r.status_code == 200:
                    return r
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError("stack never became ready")


async def test_up_serves_a_ready_api_and_the_temporal_ui_then_stops_everything() -> None:
    # Not pytest's tmp_path: its root is private to root, and Postgres runs as its own system user.
    tmp_path = Path(tempfile.mkdtemp(prefix="salesflow-up-test-"))
    ports = {name: free_port() for name in ("api", "pg", "temporal", "ui")}
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEMPORAL_ADDRESS"}}
    env.update({
        "SALESFLOW_DATA_DIR": str(tmp_path / "data"),
        "SALESFLOW_API_PORT": str(ports["api"]),
        "SALESFLOW_EMBEDDED_POSTGRES_PORT": str(ports["pg"]),
        "SALESFLOW_TEMPORAL_DEV_PORT": str(ports["temporal"]),
        "SALESFLOW_TEMPORAL_UI_PORT": str(ports["ui"]),
    })
    proc = subprocess.Popen(  # noqa: ASYNC220 - a child we watch, not a call we wait on
        [sys.executable, "-m", "salesflow", "up"], env=env, cwd=Path(__file__).parent.parent
    )
    try:
        base = f"http://127.0.0.1:{ports['api']}"
        ready = await _wait_ready(base, proc)
        assert ready.json()["checks"] == {"postgres": "up", "temporal": "up"}

        async with httpx.AsyncClient() as http:
            ui = await http.get(f"http://127.0.0.1:{ports['ui']}/", timeout=10)
            assert ui.status_code == 200
            body = {"email": f"up-{uuid.uuid4().hex[:8]}@example.com", "password": "s3cret-passw0rd",
                    "organization_name": "Launcher Co"}
            reg = (await http.post(f"{base}/api/auth/register", json=body, timeout=10)).json()

        client = await connect_client(Settings(temporal_address=f"127.0.0.1:{ports['temporal']}"))
        attrs = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
        assert {"OrgId", "AgentId", "LeadId", "SequenceId"} <= set(attrs.custom_attributes)
        described = await client.get_workflow_handle(reg["onboarding_workflow_id"]).describe()
        assert described.typed_search_attributes.get(ORG_ID) == reg["org_id"]
    finally:
        proc.send_signal(signal.SIGINT)
        exit_code = proc.wait(timeout=60)
    assert exit_code == 0
    for port in ports.values():
        assert not _listening(port), f"port {port} still open after stop"
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
