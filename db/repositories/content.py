"""Knowledge base, email templates and notifications of an organisation: all their SQL, tenant-scoped."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import Select, and_, cast, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, REGCONFIG, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import (
    ArticleStatus,
    EmailTemplate,
    KnowledgeArticle,
    KnowledgeCategory,
    Notification,
)
from db.models.content import ALL_SEARCH_CONFIGS
from db.pagination import InvalidCursorError, Page, paginate

_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"


class ConstraintViolationError(Exception):
    """A write broke a unique or foreign-key constraint (the transaction is still usable)."""

    def __init__(self, kind: Literal["unique", "foreign_key"], constraint: str | None) -> None:
        super().__init__(f"{kind} violation of {constraint or 'a constraint'}")
        self.kind = kind
        self.constraint = constraint


@asynccontextmanager
async def guarded_write(session: AsyncSession) -> AsyncIterator[None]:
    """Make the writes done inside the block in a savepoint and flush them there.

    The database, not a read-then-write check, is the arbiter of uniqueness and references: a
    concurrent request cannot slip between a check and the write. Changes must be made *inside* the
    block, because entering it flushes what is already pending outside the savepoint.
    """
    try:
        async with session.begin_nested():
            yield
            await session.flush()
    except IntegrityError as exc:
        code = getattr(exc.orig, "pgcode", None)
        constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        if code == _UNIQUE_VIOLATION:
            raise ConstraintViolationError("unique", constraint) from exc
        if code == _FOREIGN_KEY_VIOLATION:
            raise ConstraintViolationError("foreign_key", constraint) from exc
        raise


def _apply(row: Any, changes: dict[str, object]) -> None:
    for key, value in changes.items():
        setattr(row, key, value)


class CategoryRepository:
    """Knowledge-base categories of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _scoped(self) -> Select[KnowledgeCategory]:
        return select(KnowledgeCategory).where(KnowledgeCategory.org_id == self.org_id)

    async def get(self, category_id: uuid.UUID) -> KnowledgeCategory | None:
        """The category if it belongs to this organisation."""
        return await self.session.scalar(self._scoped().where(KnowledgeCategory.id == category_id))

    async def list_for_org(
        self, *, limit: int, cursor: str | None, parent_id: uuid.UUID | None = None
    ) -> Page[KnowledgeCategory]:
        """Newest first; ``parent_id`` narrows to the direct children of that category."""
        stmt = self._scoped()
        if parent_id is not None:
            stmt = stmt.where(KnowledgeCategory.parent_id == parent_id)
        return await paginate(self.session, stmt, KnowledgeCategory, limit=limit, cursor=cursor)

    async def add(self, category: KnowledgeCategory) -> KnowledgeCategory:
        """Insert; raises ConstraintViolationError on a duplicate name."""
        category.org_id = self.org_id
        async with guarded_write(self.session):
            self.session.add(category)
        return category

    async def update(self, category: KnowledgeCategory, changes: dict[str, object]) -> KnowledgeCategory:
        """Apply changes; raises ConstraintViolationError on a duplicate name."""
        async with guarded_write(self.session):
            _apply(category, changes)
        return category

    async def lock_tree(self) -> None:
        """Serialise changes to this organisation's category tree until the transaction ends.

        Two concurrent moves (A under B, B under A) would each pass a cycle check alone; the lock makes
        the second one see the first.
        """
        await self.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"kb-categories:{self.org_id}", 0)))
        )

    async def ancestor_ids(self, category_id: uuid.UUID) -> list[uuid.UUID]:
        """The category and every ancestor up to the root (UNION stops even on corrupt cyclic data)."""
        kc = KnowledgeCategory
        tree = (
            select(kc.id, kc.parent_id)
            .where(kc.org_id == self.org_id, kc.id == category_id)
            .cte("ancestors", recursive=True)
        )
        tree = tree.union(
            select(kc.id, kc.parent_id).where(kc.org_id == self.org_id, kc.id == tree.c.parent_id)
        )
        return list((await self.session.scalars(select(tree.c.id))).all())

    async def subtree_ids(self, category_id: uuid.UUID) -> list[uuid.UUID]:
        """The category and all its descendants."""
        kc = KnowledgeCategory
        tree = (
            select(kc.id).where(kc.org_id == self.org_id, kc.id == category_id).cte("subtree", recursive=True)
        )
        tree = tree.union(select(kc.id).where(kc.org_id == self.org_id, kc.parent_id == tree.c.id))
        return list((await self.session.scalars(select(tree.c.id))).all())

    async def count_children(self, category_id: uuid.UUID) -> int:
        """Direct child categories."""
        stmt = select(func.count()).where(
            KnowledgeCategory.org_id == self.org_id, KnowledgeCategory.parent_id == category_id
        )
        return int(await self.session.scalar(stmt) or 0)

    async def count_articles(self, category_ids: Sequence[uuid.UUID]) -> int:
        """Articles filed in any of the categories."""
        stmt = select(func.count()).where(
            KnowledgeArticle.org_id == self.org_id, KnowledgeArticle.category_id.in_(category_ids)
        )
        return int(await self.session.scalar(stmt) or 0)

    async def delete(self, category: KnowledgeCategory) -> None:
        """Delete one category; raises ConstraintViolationError if children or articles still point at it."""
        async with guarded_write(self.session):
            await self.session.delete(category)

    async def delete_subtree(self, category_ids: Sequence[uuid.UUID]) -> int:
        """Delete the categories and their articles; returns how many articles went with them.

        One statement per table: the parent foreign key is checked at the end of the statement, so
        deleting a parent and its children together is fine in any order.
        """
        async with guarded_write(self.session):
            articles = await self.session.execute(
                delete(KnowledgeArticle)
                .where(KnowledgeArticle.org_id == self.org_id, KnowledgeArticle.category_id.in_(category_ids))
                .returning(KnowledgeArticle.id)
            )
            removed = len(articles.all())
            await self.session.execute(
                delete(KnowledgeCategory)
                .where(KnowledgeCategory.org_id == self.org_id, KnowledgeCategory.id.in_(category_ids))
                .execution_options(synchronize_session=False)
            )
        return removed


def _encode_rank_cursor(rank: float, row_id: uuid.UUID) -> str:
    raw = json.dumps(["rank", rank, str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_rank_cursor(cursor: str) -> tuple[float, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, rank, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if tag != "rank" or not isinstance(rank, int | float) or isinstance(rank, bool):
            raise ValueError("not a search cursor")
        return float(rank), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc


class ArticleRepository:
    """Knowledge-base articles of one organisation, with language-aware full-text search."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _filtered(
        self, category_id: uuid.UUID | None, status: ArticleStatus | None, stmt: Select[Any] | None = None
    ) -> Select[Any]:
        stmt = (select(KnowledgeArticle) if stmt is None else stmt).where(KnowledgeArticle.org_id == self.org_id)
        if category_id is not None:
            stmt = stmt.where(KnowledgeArticle.category_id == category_id)
        if status is not None:
            stmt = stmt.where(KnowledgeArticle.status == status)
        return stmt

    async def get(self, article_id: uuid.UUID) -> KnowledgeArticle | None:
        """The article if it belongs to this organisation."""
        return await self.session.scalar(
            select(KnowledgeArticle).where(KnowledgeArticle.org_id == self.org_id, KnowledgeArticle.id == article_id)
        )

    async def list_for_org(
        self, *, limit: int, cursor: str | None, category_id: uuid.UUID | None = None,
        status: ArticleStatus | None = None,
    ) -> Page[KnowledgeArticle]:
        """Newest first, optionally narrowed to a category and a status."""
        stmt = self._filtered(category_id, status)
        return await paginate(self.session, stmt, KnowledgeArticle, limit=limit, cursor=cursor)

    async def search(
        self, words: Sequence[str], *, limit: int, cursor: str | None,
        category_id: uuid.UUID | None = None, status: ArticleStatus | None = None,
    ) -> Page[KnowledgeArticle]:
        """Articles matching any of ``words``, best first, each matched in its own language.

        The words are OR-ed (a question rarely shares every word with its answer) and ranked with
        ts_rank, so articles matching more of them, and in the title rather than the body, come first.
        Each article is matched with the query parsed by its own text-search configuration: "денег"
        finds a Russian article mentioning "деньги", "refunds" an English one saying "refund". There
        is one arm per configuration so the GIN index on ``search_vector`` serves every arm.
        """
        query_text = " or ".join(words)
        arms = [
            and_(
                KnowledgeArticle.search_config == cast(literal(config), REGCONFIG),
                KnowledgeArticle.search_vector.op("@@")(
                    func.websearch_to_tsquery(cast(literal(config), REGCONFIG), query_text)
                ),
            )
            for config in ALL_SEARCH_CONFIGS
        ]
        # Cast to double so the value survives the JSON cursor exactly and compares equal next page.
        rank = cast(
            func.ts_rank(
                KnowledgeArticle.search_vector,
                func.websearch_to_tsquery(KnowledgeArticle.search_config, query_text),
                1,  # divide by 1 + log(length): long articles do not win just by being long
            ),
            DOUBLE_PRECISION,
        )
        stmt = self._filtered(category_id, status, select(KnowledgeArticle, rank.label("rank"))).where(or_(*arms))
        if cursor:
            last_rank, last_id = _decode_rank_cursor(cursor)
            stmt = stmt.where(or_(rank < last_rank, and_(rank == last_rank, KnowledgeArticle.id < last_id)))
        stmt = stmt.order_by(rank.desc(), KnowledgeArticle.id.desc()).limit(limit + 1)
        rows = list((await self.session.execute(stmt)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _encode_rank_cursor(float(rows[-1][1]), rows[-1][0].id)
        return Page(items=[row[0] for row in rows], next_cursor=next_cursor)

    async def add(self, article: KnowledgeArticle) -> KnowledgeArticle:
        """Insert (the category reference is checked by the composite foreign key)."""
        article.org_id = self.org_id
        async with guarded_write(self.session):
            self.session.add(article)
        return article

    async def update(self, article: KnowledgeArticle, changes: dict[str, object]) -> KnowledgeArticle:
        """Apply changes."""
        async with guarded_write(self.session):
            _apply(article, changes)
        return article

    async def delete(self, article: KnowledgeArticle) -> None:
        """Delete the article."""
        await self.session.delete(article)
        await self.session.flush()


class EmailTemplateRepository:
    """Email templates of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _scoped(self) -> Select[EmailTemplate]:
        return select(EmailTemplate).where(EmailTemplate.org_id == self.org_id)

    async def get(self, template_id: uuid.UUID) -> EmailTemplate | None:
        """The template if it belongs to this organisation."""
        return await self.session.scalar(self._scoped().where(EmailTemplate.id == template_id))

    async def get_by_key(self, key: str) -> EmailTemplate | None:
        """The template with this key (how workflows address templates)."""
        return await self.session.scalar(self._scoped().where(EmailTemplate.key == key))

    async def list_for_org(self, *, limit: int, cursor: str | None, key: str | None = None) -> Page[EmailTemplate]:
        """Newest first, optionally the one with ``key``."""
        stmt = self._scoped()
        if key is not None:
            stmt = stmt.where(EmailTemplate.key == key)
        return await paginate(self.session, stmt, EmailTemplate, limit=limit, cursor=cursor)

    async def add(self, template: EmailTemplate) -> EmailTemplate:
        """Insert; raises ConstraintViolationError on a duplicate key."""
        template.org_id = self.org_id
        async with guarded_write(self.session):
            self.session.add(template)
        return template

    async def update(self, template: EmailTemplate, changes: dict[str, object]) -> EmailTemplate:
        """Apply changes; raises ConstraintViolationError on a duplicate key."""
        async with guarded_write(self.session):
            _apply(template, changes)
        return template

    async def delete(self, template: EmailTemplate) -> None:
        """Delete the template."""
        await self.session.delete(template)
        await self.session.flush()


class NotificationRepository:
    """Notifications of one organisation, as one user sees them: theirs plus the org-wide ones."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _visible_to(self, user_id: uuid.UUID) -> Any:
        return and_(
            Notification.org_id == self.org_id,
            or_(Notification.user_id.is_(None), Notification.user_id == user_id),
        )

    async def get_visible(self, notification_id: uuid.UUID, user_id: uuid.UUID) -> Notification | None:
        """The notification if the user may see it (someone else's personal one is None)."""
        return await self.session.scalar(
            select(Notification).where(self._visible_to(user_id), Notification.id == notification_id)
        )

    async def list_visible(
        self, user_id: uuid.UUID, *, limit: int, cursor: str | None,
        unread: bool | None = None, kind: str | None = None,
    ) -> Page[Notification]:
        """Newest first, optionally only unread (or only read) ones of a kind."""
        stmt = select(Notification).where(self._visible_to(user_id))
        if unread is True:
            stmt = stmt.where(Notification.read_at.is_(None))
        elif unread is False:
            stmt = stmt.where(Notification.read_at.is_not(None))
        if kind is not None:
            stmt = stmt.where(Notification.kind == kind)
        return await paginate(self.session, stmt, Notification, limit=limit, cursor=cursor)

    async def mark_read(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None = None) -> int:
        """Mark unread visible notifications (all, or those in ``ids``) read; returns how many changed.

        Ids the user cannot see (another tenant's, another user's) are simply not matched.
        """
        stmt = (
            update(Notification)
            .where(self._visible_to(user_id), Notification.read_at.is_(None))
            .values(read_at=utcnow(), updated_at=utcnow())
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
        if ids is not None:
            stmt = stmt.where(Notification.id.in_(ids))
        return len((await self.session.execute(stmt)).all())

    async def delete_many(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
        """Delete the visible notifications among ``ids``; returns how many went."""
        stmt = (
            delete(Notification)
            .where(self._visible_to(user_id), Notification.id.in_(ids))
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
        return len((await self.session.execute(stmt)).all())

    async def delete(self, notification: Notification) -> None:
        """Delete one notification."""
        await self.session.delete(notification)
        await self.session.flush()

    async def create_once(
        self, *, kind: str, title: str, body: str, user_id: uuid.UUID | None, dedupe_key: str | None
    ) -> uuid.UUID:
        """Insert unless a notification with this ``dedupe_key`` exists; either way return its id.

        ON CONFLICT DO NOTHING (rather than catching the error) keeps concurrent retries race-free.
        """
        values = {
            "id": uuid.uuid4(), "org_id": self.org_id, "user_id": user_id, "kind": kind, "title": title,
            "body": body, "dedupe_key": dedupe_key,
        }
        stmt = (
            insert(Notification)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["org_id", "dedupe_key"])
            .returning(Notification.id)
        )
        created = await self.session.scalar(stmt)
        if created is not None:
            return created
        existing = await self.session.scalar(
            select(Notification.id).where(Notification.org_id == self.org_id, Notification.dedupe_key == dedupe_key)
        )
        assert existing is not None  # the conflict that skipped the insert is this very row
        return existing
