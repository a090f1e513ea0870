"""Knowledge-base rules: category tree integrity, delete policy, article filing and search."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound
from db.models import ArticleStatus, KnowledgeArticle, KnowledgeCategory
from db.pagination import InvalidCursorError, Page
from db.repositories.content import ArticleRepository, CategoryRepository, ConstraintViolationError

MAX_QUERY_WORDS = 32
_WORD = re.compile(r"\w+")


def _bad_cursor(exc: InvalidCursorError) -> BadRequest:
    return BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}])


def _no_such(field: str, what: str) -> BadRequest:
    # A referenced id that is missing or another tenant's: the body is wrong, the URL is fine (so 400,
    # not 404), and both cases read the same so nothing leaks.
    return BadRequest(f"{what} not found.", errors=[{"field": f"body.{field}", "message": f"no such {what}"}])


class CategoryService:
    """Categories of one organisation, kept a forest: same-org parents and no cycles."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.repo = CategoryRepository(session, org_id)

    async def get(self, category_id: uuid.UUID) -> KnowledgeCategory:
        """The category, or 404 (also for another tenant's)."""
        category = await self.repo.get(category_id)
        if category is None:
            raise NotFound("Category not found.")
        return category

    async def list(self, *, limit: int, cursor: str | None, parent_id: uuid.UUID | None) -> Page[KnowledgeCategory]:
        """A page of categories; a foreign or damaged cursor is a 400."""
        try:
            return await self.repo.list_for_org(limit=limit, cursor=cursor, parent_id=parent_id)
        except InvalidCursorError as exc:
            raise _bad_cursor(exc) from exc

    async def _require_parent(self, parent_id: uuid.UUID) -> KnowledgeCategory:
        parent = await self.repo.get(parent_id)
        if parent is None:
            raise _no_such("parent_id", "parent category")
        return parent

    async def create(self, *, parent_id: uuid.UUID | None, **fields: object) -> KnowledgeCategory:
        """Create a category; 409 if the name is taken in this organisation, 400 for a bad parent."""
        if parent_id is not None:
            await self._require_parent(parent_id)
        try:
            return await self.repo.add(KnowledgeCategory(parent_id=parent_id, **fields))
        except ConstraintViolationError as exc:
            raise self._violation(exc) from exc

    async def update(self, category_id: uuid.UUID, changes: dict[str, object]) -> KnowledgeCategory:
        """Apply a partial update; moving under a descendant (or itself) is a 400."""
        category = await self.get(category_id)
        parent_id = changes.get("parent_id")
        if isinstance(parent_id, uuid.UUID) and parent_id != category.parent_id:
            await self.repo.lock_tree()
            await self._require_parent(parent_id)
            if category.id in await self.repo.ancestor_ids(parent_id):
                raise BadRequest(
                    "A category cannot be moved under itself or one of its descendants.",
                    errors=[{"field": "body.parent_id", "message": "would create a cycle"}],
                )
        try:
            return await self.repo.update(category, changes)
        except ConstraintViolationError as exc:
            raise self._violation(exc) from exc

    async def delete(self, category_id: uuid.UUID, *, cascade: bool) -> None:
        """Delete a category.

        Without ``cascade`` a category that still has child categories or articles is refused (409),
        so nothing is lost by accident; the check is enforced by the database's foreign keys as well,
        so an article filed concurrently also makes the delete fail instead of vanishing. With
        ``cascade`` the whole subtree goes: the category, every descendant and all their articles.
        """
        category = await self.get(category_id)
        await self.repo.lock_tree()
        try:
            if cascade:
                await self.repo.delete_subtree(await self.repo.subtree_ids(category.id))
                return
            children = await self.repo.count_children(category.id)
            articles = await self.repo.count_articles([category.id])
            if children or articles:
                raise Conflict(
                    f"The category has {children} child categories and {articles} articles; move or delete "
                    "them first, or delete with ?cascade=true to remove them too."
                )
            await self.repo.delete(category)
        except ConstraintViolationError as exc:
            raise Conflict("The category changed while it was being deleted; try again.") from exc

    @staticmethod
    def _violation(exc: ConstraintViolationError) -> BadRequest | Conflict:
        if exc.kind == "unique":
            return Conflict("A category with this name already exists.")
        return _no_such("parent_id", "parent category")  # the parent was deleted meanwhile


class ArticleService:
    """Articles of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.repo = ArticleRepository(session, org_id)
        self.categories = CategoryRepository(session, org_id)

    async def get(self, article_id: uuid.UUID) -> KnowledgeArticle:
        """The article, or 404 (also for another tenant's)."""
        article = await self.repo.get(article_id)
        if article is None:
            raise NotFound("Article not found.")
        return article

    async def list(
        self, *, limit: int, cursor: str | None, category_id: uuid.UUID | None, status: ArticleStatus | None,
        q: str | None,
    ) -> Page[KnowledgeArticle]:
        """Newest first, or with ``q`` the best matches first (see ArticleRepository.search)."""
        try:
            if q is None:
                return await self.repo.list_for_org(limit=limit, cursor=cursor, category_id=category_id, status=status)
            # Words only: the text is re-joined with "or" for websearch_to_tsquery, so no user-typed
            # operator or quote can change the query's shape (and that parser never raises).
            words = [w for w in _WORD.findall(q) if w.lower() != "or"][:MAX_QUERY_WORDS]
            if not words:
                return Page(items=[], next_cursor=None)
            return await self.repo.search(
                words, limit=limit, cursor=cursor, category_id=category_id, status=status
            )
        except InvalidCursorError as exc:
            raise _bad_cursor(exc) from exc

    async def _check_category(self, category_id: object) -> None:
        if isinstance(category_id, uuid.UUID) and await self.categories.get(category_id) is None:
            raise _no_such("category_id", "category")

    async def create(self, **fields: object) -> KnowledgeArticle:
        """Create an article; 400 if its category is not one of this organisation's."""
        await self._check_category(fields.get("category_id"))
        try:
            return await self.repo.add(KnowledgeArticle(**fields))
        except ConstraintViolationError as exc:  # the category was deleted meanwhile
            raise _no_such("category_id", "category") from exc

    async def update(self, article_id: uuid.UUID, changes: dict[str, object]) -> KnowledgeArticle:
        """Apply a partial update (a new language re-indexes the article in that language)."""
        article = await self.get(article_id)
        await self._check_category(changes.get("category_id"))
        try:
            return await self.repo.update(article, changes)
        except ConstraintViolationError as exc:
            raise _no_such("category_id", "category") from exc

    async def delete(self, article_id: uuid.UUID) -> None:
        """Delete the article."""
        await self.repo.delete(await self.get(article_id))
