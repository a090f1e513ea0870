"""Email templates: every save is validated by the sandbox rules in ``domain.templates``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound
from api.schemas.email_templates import EmailPreview, EmailTemplateWrite
from db.models import EmailTemplate
from db.pagination import InvalidCursorError, Page
from db.repositories.content import ConstraintViolationError, EmailTemplateRepository
from domain.templates import (
    EmailTemplateSource,
    TemplateRenderError,
    TemplateValidationError,
    placeholder_values,
    render_email,
    validate_template,
)


def source_of(template: EmailTemplate) -> EmailTemplateSource:
    """The pure-domain view of a stored template (what workflows render)."""
    return EmailTemplateSource(
        subject=template.subject, body_html=template.body_html, body_text=template.body_text,
        variables=tuple(template.variables),
    )


def _validate(body: EmailTemplateWrite) -> None:
    source = EmailTemplateSource(body.subject, body.body_html, body.body_text, tuple(body.variables))
    try:
        validate_template(source)
    except TemplateValidationError as exc:
        errors = [
            {"field": f"body.{p.field}", "message": p.message, **({"variable": p.variable} if p.variable else {})}
            for p in exc.problems
        ]
        raise BadRequest(f"The template is not allowed: {exc}", errors=errors) from exc


class EmailTemplateService:
    """Email templates of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.repo = EmailTemplateRepository(session, org_id)

    async def get(self, template_id: uuid.UUID) -> EmailTemplate:
        """The template, or 404 (also for another tenant's)."""
        template = await self.repo.get(template_id)
        if template is None:
            raise NotFound("Email template not found.")
        return template

    async def list(self, *, limit: int, cursor: str | None, key: str | None) -> Page[EmailTemplate]:
        """A page of templates; a foreign or damaged cursor is a 400."""
        try:
            return await self.repo.list_for_org(limit=limit, cursor=cursor, key=key)
        except InvalidCursorError as exc:
            raise BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}]) from exc

    async def create(self, body: EmailTemplateWrite) -> EmailTemplate:
        """Validate and store; 400 names what the sandbox refused, 409 if the key is taken."""
        _validate(body)
        try:
            return await self.repo.add(EmailTemplate(**body.model_dump()))
        except ConstraintViolationError as exc:
            raise Conflict("An email template with this key already exists.") from exc

    async def replace(self, template_id: uuid.UUID, body: EmailTemplateWrite) -> EmailTemplate:
        """Replace every field (PUT); same checks as create."""
        template = await self.get(template_id)
        _validate(body)
        try:
            return await self.repo.update(template, body.model_dump())
        except ConstraintViolationError as exc:
            raise Conflict("An email template with this key already exists.") from exc

    async def delete(self, template_id: uuid.UUID) -> None:
        """Delete the template."""
        await self.repo.delete(await self.get(template_id))

    @staticmethod
    def preview(template: EmailTemplate, samples: Mapping[str, str]) -> EmailPreview:
        """Render with ``<name>`` placeholders overridden by ``samples``; a render failure is reported, not raised.

        Placeholders are text, so a template doing arithmetic on a variable may not render with them;
        that is a property of the sample, not an error of the request.
        """
        unknown = sorted(set(samples) - set(template.variables))
        if unknown:
            raise BadRequest(
                f"sample values for undeclared variables: {', '.join(unknown)}",
                errors=[{"field": "query.sample", "message": f"undeclared variable {name!r}"} for name in unknown],
            )
        values = {**placeholder_values(template.variables), **samples}
        try:
            rendered = render_email(source_of(template), values)
        except TemplateRenderError as exc:
            return EmailPreview(values=values, error=str(exc))
        return EmailPreview(
            values=values, subject=rendered.subject, body_html=rendered.body_html, body_text=rendered.body_text
        )
