"""Uploaded files of an agent and the organisation's image gallery (/api/images).

Bytes live in :mod:`integrations.storage` under ``org_id/agent_id/<uuid>``; the database row holds the
sanitised display name, the sniffed type and the key. Assets of a soft-deleted agent stay stored but
become unreachable (404 through the parent agent, absent from /api/images).
"""

from __future__ import annotations

import hashlib
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, NotFound
from api.services.agent_config import AgentScopedService, paged
from api.services.uploads import ContentTooLarge, UploadRejectedError, check_upload
from db.models import AgentAsset, AssetKind
from db.pagination import Page
from db.repositories.agent_config import AssetRepository
from integrations.storage import BlobNotFoundError, Storage

log = structlog.get_logger(__name__)


class AssetService(AgentScopedService):
    """Upload, list, serve and delete an organisation's agent assets."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, storage: Storage) -> None:
        super().__init__(session, org_id)
        self.repo = AssetRepository(session, org_id)
        self.storage = storage

    async def list(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, kind: AssetKind | None
    ) -> Page[AgentAsset]:
        """A page of the agent's assets, newest first."""
        await self.agent(agent_id)
        return await paged(self.repo.list_for_agent(agent_id, limit=limit, cursor=cursor, kind=kind))

    async def upload(
        self, agent_id: uuid.UUID, *, data: bytes, filename: str | None, declared_type: str | None,
        title: str, max_bytes: int,
    ) -> AgentAsset:
        """Check the file (size, real type, name), store it under a generated key and record it."""
        await self.agent(agent_id)
        if len(data) > max_bytes:
            raise ContentTooLarge(f"The file is larger than {max_bytes} bytes.")
        try:
            checked = check_upload(data, filename, declared_type)
        except UploadRejectedError as exc:
            raise BadRequest(str(exc), errors=[{"field": "body.file", "message": str(exc)}]) from exc
        key = f"{self.org_id}/{agent_id}/{uuid.uuid4().hex}"
        await self.storage.put(key, data)
        asset = AgentAsset(
            filename=checked.filename, title=title, content_type=checked.content_type,
            kind=AssetKind.image if checked.is_image else AssetKind.document, size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(), storage_key=key,
        )
        try:
            return await self.repo.add(agent_id, asset)
        except BaseException:
            # No row will point at these bytes. (If the commit itself fails later, the blob is an orphan:
            # harmless, and cheaper than holding the upload in memory until after the commit.)
            await self.storage.delete(key)
            raise

    async def delete(self, agent_id: uuid.UUID, asset_id: uuid.UUID) -> None:
        """Remove the asset's row and then its bytes."""
        await self.agent(agent_id)
        asset = await self.repo.get(agent_id, asset_id)
        if asset is None:
            raise NotFound("Asset not found.")
        key = asset.storage_key
        await self.repo.remove(asset)
        # Storage is outside the transaction: commit first, so a rollback can never leave a row whose
        # bytes are gone. A failed blob delete after that only leaves an unreachable orphan.
        await self.session.commit()
        try:
            await self.storage.delete(key)
        except OSError:
            log.warning("asset blob not deleted", storage_key=key, exc_info=True)

    async def list_images(
        self, *, limit: int, cursor: str | None, agent_id: uuid.UUID | None
    ) -> Page[AgentAsset]:
        """A page of the organisation's images (live agents only), optionally of one agent."""
        return await paged(self.repo.list_images(limit=limit, cursor=cursor, agent_id=agent_id))

    async def image(self, asset_id: uuid.UUID) -> tuple[AgentAsset, bytes]:
        """An image of the organisation and its bytes, or 404 (also for another tenant's id)."""
        asset = await self.repo.get_image(asset_id)
        if asset is None:
            raise NotFound("Image not found.")
        try:
            return asset, await self.storage.get(asset.storage_key)
        except BlobNotFoundError as exc:
            log.warning("image row without bytes", asset_id=str(asset_id), storage_key=asset.storage_key)
            raise NotFound("Image not found.") from exc
