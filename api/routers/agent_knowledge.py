"""/api/agents/{id}/knowledge: what the agent knows, with full-text search in the agent's language."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.agent_config import KnowledgeCreate, KnowledgeRead
from api.schemas.common import Cursor, Limit, ListResponse
from api.services.agent_config import KnowledgeService
from db.models import KnowledgeKind

router = APIRouter(prefix="/api/agents/{id}/knowledge", tags=["agent configuration"])

AgentId = Annotated[uuid.UUID, Path(alias="id", description="Agent id")]
KnowledgeId = Annotated[uuid.UUID, Path(alias="knowledgeId")]


@router.get("", response_model=ListResponse[KnowledgeRead])
async def list_knowledge(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    q: Annotated[str | None, Query(max_length=500, description="Search text; results ranked by relevance")] = None,
    kind: KnowledgeKind | None = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
) -> ListResponse[KnowledgeRead]:
    """List knowledge newest first, or with ``q`` the entries matching it, most relevant first."""
    page = await KnowledgeService(session, principal.org_id).list(
        agent_id, limit=limit, cursor=cursor, q=q, kind=kind, tag=tag
    )
    items = [KnowledgeRead.model_validate(entry).model_copy(update={"rank": rank}) for entry, rank in page.items]
    return ListResponse(items=items, next_cursor=page.next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KnowledgeRead)
async def create_knowledge(
    agent_id: AgentId, body: KnowledgeCreate, principal: CurrentPrincipal, session: SessionDep
) -> KnowledgeRead:
    """Add a text, faq or document entry."""
    return KnowledgeRead.model_validate(await KnowledgeService(session, principal.org_id).create(agent_id, body))


@router.delete("/{knowledgeId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_knowledge(
    agent_id: AgentId, knowledge_id: KnowledgeId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete a knowledge entry."""
    await KnowledgeService(session, principal.org_id).delete(agent_id, knowledge_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
