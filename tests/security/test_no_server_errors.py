"""Schemathesis over the app's own OpenAPI: no generated input may produce a 5xx.

Every documented operation is fuzzed in-process, authenticated as a real tenant, through the same
ASGI client the other tests use (so the session's event loop, database pool and Temporal client are
shared). New routes join automatically.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from salesflow.settings import Settings
from tests.harness import Tenant

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop the session's async fixtures live on; sync Hypothesis tests drive it directly."""
    return asyncio.get_running_loop()


@pytest.fixture(scope="session")
async def fuzz_tenant(make_session_tenant: Any) -> Tenant:
    """One tenant for the whole fuzz run (its data is throwaway)."""
    tenant: Tenant = await make_session_tenant()
    return tenant


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_generated_input_causes_a_server_error(
    operation: Any, app_client: httpx.AsyncClient, fuzz_tenant: Tenant, session_loop: asyncio.AbstractEventLoop
) -> None:
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url=str(app_client.base_url), headers=fuzz_tenant.headers)
        response = session_loop.run_until_complete(_send(app_client, kwargs))
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()


def _as_bytes(value: Any) -> Any:
    return value if isinstance(value, bytes | str) else json.dumps(value, default=str).encode()


def _encodable_files(files: Any) -> Any:
    """Generated multipart parts may be numbers or objects; send them as the bytes a client would."""
    items = files.items() if isinstance(files, dict) else files
    out = []
    for name, part in items:
        out.append((name, (part[0], _as_bytes(part[1]), *part[2:]) if isinstance(part, tuple) else _as_bytes(part)))
    return out


async def _send(client: httpx.AsyncClient, kwargs: dict[str, Any]) -> httpx.Response:
    allowed = {"method", "url", "headers", "params", "json", "content", "data", "files"}
    kwargs = {k: v for k, v in kwargs.items() if k in allowed}
    if kwargs.get("files"):
        kwargs["files"] = _encodable_files(kwargs["files"])
    response = await client.request(**kwargs)
    # Multipart bodies are streamed; schemathesis reads the request back when it reports a failure.
    await response.request.aread()
    return response
