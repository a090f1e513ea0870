"""/api/agents/{id}/assets (multipart uploads) and /api/images (the organisation's images, and their bytes).

Uploads are read here with a hard cap on the request body, before anything is spooled to disk, because
FastAPI's ``UploadFile`` parameters would accept and buffer a body of any size first.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.deps import CurrentPrincipal, SessionDep, SettingsDep
from api.errors import BadRequest
from api.schemas.agent_config import AssetRead
from api.schemas.common import Cursor, Limit, ListResponse
from api.services.agent_assets import AssetService
from api.services.uploads import IMAGE_TYPES, ContentTooLarge
from db.models import AssetKind
from integrations.storage import Storage, storage_from_settings
from salesflow.settings import Settings

router = APIRouter(tags=["agent assets"])

AgentId = Annotated[uuid.UUID, Path(alias="id", description="Agent id")]
AssetId = Annotated[uuid.UUID, Path(alias="assetId")]
# Room for boundaries, part headers and the title field on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_TITLE = 200


def get_storage(settings: SettingsDep) -> Storage:
    """The blob storage the app's settings select."""
    return storage_from_settings(settings)


StorageDep = Annotated[Storage, Depends(get_storage)]


@dataclass(frozen=True)
class _Upload:
    data: bytes
    filename: str | None
    content_type: str | None
    title: str


def _file_problem(message: str, field: str = "body.file") -> BadRequest:
    return BadRequest(message, errors=[{"field": field, "message": message}])


async def _read_upload(request: Request, settings: Settings) -> _Upload:
    """Parse a multipart body with one ``file`` and an optional ``title``; 413 past the size limit."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise _file_problem("Send the file as multipart/form-data with a 'file' part.", "body")
    body_limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES

    def too_large() -> ContentTooLarge:
        return ContentTooLarge(f"The file is larger than {settings.max_upload_bytes} bytes.")

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise too_large()

    async def capped() -> AsyncGenerator[bytes, None]:
        # Content-Length may be absent (chunked) or false; count what actually arrives.
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise too_large()
            yield chunk

    parser = MultiPartParser(request.headers, capped(), max_files=1, max_fields=4, max_part_size=16 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise _file_problem(exc.message, "body") from exc
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise _file_problem("A 'file' part is required.")
        raw_title: Any = form.get("title") or ""
        if not isinstance(raw_title, str):
            raise _file_problem("title must be text.", "body.title")
        title = raw_title.strip()
        if len(title) > MAX_TITLE or "\x00" in title:
            raise _file_problem(f"title must be at most {MAX_TITLE} characters of text.", "body.title")
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise too_large()
        return _Upload(data=data, filename=file.filename, content_type=file.content_type, title=title)
    finally:
        await form.close()


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "PNG, JPEG, GIF, WebP, PDF, plain text or CSV; type sniffed from content"},
                "title": {"type": "string", "maxLength": MAX_TITLE},
            },
        }}},
    }
}


@router.get("/api/agents/{id}/assets", response_model=ListResponse[AssetRead])
async def list_assets(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, storage: StorageDep,
    limit: Limit = 50, cursor: Cursor = None, kind: AssetKind | None = None,
) -> ListResponse[AssetRead]:
    """List the agent's uploaded files, newest first, filtered by kind (image or document)."""
    page = await AssetService(session, principal.org_id, storage).list(agent_id, limit=limit, cursor=cursor, kind=kind)
    return ListResponse(items=[AssetRead.model_validate(a) for a in page.items], next_cursor=page.next_cursor)


@router.post(
    "/api/agents/{id}/assets", status_code=status.HTTP_201_CREATED, response_model=AssetRead,
    openapi_extra=_UPLOAD_BODY, responses={413: {"description": "File larger than max_upload_bytes"}},
)
async def upload_asset(
    agent_id: AgentId, request: Request, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
    storage: StorageDep,
) -> AssetRead:
    """Upload a file (multipart ``file`` + optional ``title``); its real type is sniffed from the bytes."""
    service = AssetService(session, principal.org_id, storage)
    # Resolve the agent before reading the body: a stranger's id should not cost us an upload.
    await service.agent(agent_id)
    upload = await _read_upload(request, settings)
    asset = await service.upload(
        agent_id, data=upload.data, filename=upload.filename, declared_type=upload.content_type,
        title=upload.title, max_bytes=settings.max_upload_bytes,
    )
    return AssetRead.model_validate(asset)


@router.delete("/api/agents/{id}/assets/{assetId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_asset(
    agent_id: AgentId, asset_id: AssetId, principal: CurrentPrincipal, session: SessionDep, storage: StorageDep
) -> Response:
    """Delete an asset and its stored bytes."""
    await AssetService(session, principal.org_id, storage).delete(agent_id, asset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/api/images", response_model=ListResponse[AssetRead],
    responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(IMAGE_TYPES)},
                     "description": "A page of images, or with ``id`` the image itself"}},
)
async def get_images(
    principal: CurrentPrincipal, session: SessionDep, storage: StorageDep,
    image_id: Annotated[uuid.UUID | None, Query(alias="id", description="Serve this image's bytes")] = None,
    agent_id: Annotated[uuid.UUID | None, Query(description="Only this agent's images")] = None,
    limit: Limit = 50, cursor: Cursor = None,
) -> Response | ListResponse[AssetRead]:
    """List the organisation's images, or with ``id`` serve one image with its sniffed content type."""
    service = AssetService(session, principal.org_id, storage)
    if image_id is None:
        page = await service.list_images(limit=limit, cursor=cursor, agent_id=agent_id)
        return ListResponse(items=[AssetRead.model_validate(a) for a in page.items], next_cursor=page.next_cursor)
    asset, data = await service.image(image_id)
    return Response(
        content=data,
        media_type=asset.content_type,
        headers={
            # The type was sniffed at upload; browsers must not second-guess it.
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(asset.filename, safe='')}",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
            "ETag": f'"{asset.sha256}"',
        },
    )
