"""/api/knowledge-base: the organisation's knowledge-base categories and articles."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.knowledge_base import (
    ArticleCreate,
    ArticleRead,
    ArticleUpdate,
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
)
from api.services.knowledge_base import ArticleService, CategoryService
from db.models import ArticleStatus

router = APIRouter(prefix="/api/knowledge-base", tags=["knowledge base"])


@router.get("/categories", response_model=ListResponse[CategoryRead])
async def list_categories(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    parent_id: Annotated[uuid.UUID | None, Query(description="Only direct children of this category")] = None,
) -> ListResponse[CategoryRead]:
    """List categories, newest first, optionally the children of one category."""
    page = await CategoryService(session, principal.org_id).list(limit=limit, cursor=cursor, parent_id=parent_id)
    return ListResponse(items=[CategoryRead.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.post("/categories", status_code=status.HTTP_201_CREATED, response_model=CategoryRead)
async def create_category(body: CategoryCreate, principal: CurrentPrincipal, session: SessionDep) -> CategoryRead:
    """Create a category (names are unique per organisation: 409 otherwise)."""
    category = await CategoryService(session, principal.org_id).create(**body.model_dump())
    return CategoryRead.model_validate(category)


@router.get("/categories/{id}", response_model=CategoryRead)
async def get_category(id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CategoryRead:
    """One category."""
    return CategoryRead.model_validate(await CategoryService(session, principal.org_id).get(id))


@router.patch("/categories/{id}", response_model=CategoryRead)
async def update_category(
    id: uuid.UUID, body: CategoryUpdate, principal: CurrentPrincipal, session: SessionDep
) -> CategoryRead:
    """Rename, describe, reorder or move a category (no cycles, same organisation only)."""
    changes = body.model_dump(exclude_unset=True)
    return CategoryRead.model_validate(await CategoryService(session, principal.org_id).update(id, changes))


@router.delete("/categories/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_category(
    id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    cascade: Annotated[bool, Query(description="Also delete child categories and all their articles")] = False,
) -> Response:
    """Delete a category: 409 while it has children or articles, unless ``cascade=true``."""
    await CategoryService(session, principal.org_id).delete(id, cascade=cascade)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/articles", response_model=ListResponse[ArticleRead])
async def list_articles(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    category_id: uuid.UUID | None = None,
    status_filter: Annotated[ArticleStatus | None, Query(alias="status")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=500, description="Full-text search, best matches first"),
    ] = None,
) -> ListResponse[ArticleRead]:
    """List articles newest first, or search them with ``q`` (ranked, in each article's language)."""
    page = await ArticleService(session, principal.org_id).list(
        limit=limit, cursor=cursor, category_id=category_id, status=status_filter, q=q
    )
    return ListResponse(items=[ArticleRead.model_validate(a) for a in page.items], next_cursor=page.next_cursor)


@router.post("/articles", status_code=status.HTTP_201_CREATED, response_model=ArticleRead)
async def create_article(body: ArticleCreate, principal: CurrentPrincipal, session: SessionDep) -> ArticleRead:
    """Create an article (a draft by default)."""
    article = await ArticleService(session, principal.org_id).create(**body.model_dump())
    return ArticleRead.model_validate(article)


@router.get("/articles/{id}", response_model=ArticleRead)
async def get_article(id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> ArticleRead:
    """One article."""
    return ArticleRead.model_validate(await ArticleService(session, principal.org_id).get(id))


@router.patch("/articles/{id}", response_model=ArticleRead)
async def update_article(
    id: uuid.UUID, body: ArticleUpdate, principal: CurrentPrincipal, session: SessionDep
) -> ArticleRead:
    """Change an article's text, category, language, status or tags."""
    changes = body.model_dump(exclude_unset=True)
    return ArticleRead.model_validate(await ArticleService(session, principal.org_id).update(id, changes))


@router.delete("/articles/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_article(id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Response:
    """Delete an article."""
    await ArticleService(session, principal.org_id).delete(id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
