"""/api/email-templates: sandboxed Jinja email templates of the organisation."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep
from api.errors import BadRequest
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.email_templates import KEY_PATTERN, EmailTemplateRead, EmailTemplateWrite
from api.services.email_templates import EmailTemplateService

router = APIRouter(prefix="/api/email-templates", tags=["email templates"])

_SAMPLE = re.compile(r"^([A-Za-z][A-Za-z0-9_]{0,63})=(.*)$", re.DOTALL)


def _parse_samples(raw: list[str]) -> dict[str, str]:
    samples: dict[str, str] = {}
    for item in raw:
        match = _SAMPLE.match(item)
        if match is None:
            raise BadRequest(
                "sample must look like name=value",
                errors=[{"field": "query.sample", "message": f"not name=value: {item[:80]!r}"}],
            )
        samples[match.group(1)] = match.group(2)
    return samples


@router.get("", response_model=ListResponse[EmailTemplateRead])
async def list_email_templates(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    key: Annotated[str | None, Query(max_length=100, pattern=KEY_PATTERN)] = None,
) -> ListResponse[EmailTemplateRead]:
    """List templates, newest first, optionally the one with ``key``."""
    page = await EmailTemplateService(session, principal.org_id).list(limit=limit, cursor=cursor, key=key)
    return ListResponse(items=[EmailTemplateRead.model_validate(t) for t in page.items], next_cursor=page.next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EmailTemplateRead)
async def create_email_template(
    body: EmailTemplateWrite, principal: CurrentPrincipal, session: SessionDep
) -> EmailTemplateRead:
    """Create a template; 400 names any undeclared variable or construct the sandbox refuses."""
    template = await EmailTemplateService(session, principal.org_id).create(body)
    return EmailTemplateRead.model_validate(template)


@router.get("/{id}", response_model=EmailTemplateRead)
async def get_email_template(
    id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    preview: Annotated[bool, Query(description="Also render the template with sample values")] = False,
    sample: Annotated[
        list[str] | None,
        Query(max_length=100, description="Sample value for the preview, as name=value (repeatable)"),
    ] = None,
) -> EmailTemplateRead:
    """One template; with ``preview=true`` also rendered with ``<name>`` placeholders or ``sample`` values."""
    service = EmailTemplateService(session, principal.org_id)
    template = await service.get(id)
    read = EmailTemplateRead.model_validate(template)
    if preview:
        read.preview = service.preview(template, _parse_samples(sample or []))
    return read


@router.put("/{id}", response_model=EmailTemplateRead)
async def replace_email_template(
    id: uuid.UUID, body: EmailTemplateWrite, principal: CurrentPrincipal, session: SessionDep
) -> EmailTemplateRead:
    """Replace a template entirely (fields left out take their defaults)."""
    template = await EmailTemplateService(session, principal.org_id).replace(id, body)
    return EmailTemplateRead.model_validate(template)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_email_template(id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Response:
    """Delete a template."""
    await EmailTemplateService(session, principal.org_id).delete(id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
