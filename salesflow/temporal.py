"""The one way every process (API, worker, tests, benchmarks) connects to Temporal."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.common import TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

from salesflow.settings import Settings
from workflows.ids import search_attributes


async def connect_client(settings: Settings, address: str | None = None) -> Client:
    """Client with the pydantic data converter, so workflow inputs and outputs are pydantic models."""
    target = address or settings.temporal_address
    if target is None:
        raise RuntimeError("TEMPORAL_ADDRESS is not set and no dev server was started")
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=settings.temporal_tls,
        data_converter=pydantic_data_converter,
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our custom search attributes (idempotent): OrgId, AgentId, LeadId, SequenceId."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    from salesflow.stack import SEARCH_ATTRIBUTES

    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


def run_search_attributes(settings: Settings, *, org_id: uuid.UUID, **ids: uuid.UUID | None) -> TypedSearchAttributes:
    """Search attributes for a workflow start, or none where the server cannot hold them."""
    if not settings.temporal_search_attributes:
        return TypedSearchAttributes.empty
    return search_attributes(org_id=org_id, **ids)
