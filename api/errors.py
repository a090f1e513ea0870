"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from db.pagination import InvalidCursorError

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://salesflow.dev/problems/"


class ProblemError(Exception):
    """An error with an HTTP status; raise a subclass from services or handlers."""

    status: int = 500
    title: str = "Internal Server Error"
    type_slug: str = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}


class BadRequest(ProblemError):
    """The input is invalid."""

    status, title, type_slug = 400, "Bad Request", "bad-request"


class Unauthorized(ProblemError):
    """No valid credentials."""

    status, title, type_slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ProblemError):
    """Authenticated, but this role may not do that."""

    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(ProblemError):
    """Missing, or belonging to another tenant (the two are indistinguishable on purpose)."""

    status, title, type_slug = 404, "Not Found", "not-found"


class Conflict(ProblemError):
    """The request conflicts with the current state."""

    status, title, type_slug = 409, "Conflict", "conflict"


class TooManyRequests(ProblemError):
    """Rate limited; ``Retry-After`` says when to come back."""

    status, title, type_slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class BadGateway(ProblemError):
    """A third party (Stripe, Kommo) refused a request we made for the caller."""

    status, title, type_slug = 502, "Bad Gateway", "upstream"


class ServiceUnavailable(ProblemError):
    """A dependency (database, Temporal) is down."""

    status, title, type_slug = 503, "Service Unavailable", "unavailable"


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
           415: "Unsupported Media Type", 429: "Too Many Requests"}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    type_slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (type_slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    # "body.name" / "query.limit" / "path.id": where the problem is, as the client sent it.
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem+json; nothing leaks internals."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status, exc.title, exc.detail, type_slug=exc.type_slug, errors=exc.errors,
            headers=exc.headers, instance=request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(err.get("loc", ())), "message": err.get("msg", "invalid"),
             "code": err.get("type", "invalid")}
            for err in exc.errors()
        ]
        return problem_response(
            400, "Bad Request", "The request is invalid; see errors.", type_slug="validation",
            errors=errors, instance=request.url.path,
        )

    @app.exception_handler(InvalidCursorError)
    async def _cursor(request: Request, exc: InvalidCursorError) -> JSONResponse:
        # Any list that pages: a cursor we did not issue is the client's mistake, whichever service saw it.
        return problem_response(400, "Bad Request", "The cursor is not valid; use next_cursor from a list answer.",
                                type_slug="bad-request", instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(exc.status_code, title, detail, headers=exc.headers, instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path, method=request.method)
        return problem_response(
            500, "Internal Server Error", "An unexpected error occurred.", type_slug="internal",
            instance=request.url.path,
        )


class RejectNulMiddleware:
    """400 for a NUL byte in the path or query string, before any handler can pass it to PostgreSQL."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("query_string", b"") + scope.get("raw_path", b"")
            if b"%00" in raw or b"\x00" in raw or "\x00" in scope.get("path", ""):
                response = problem_response(400, "Bad Request", "NUL characters are not allowed in URLs.")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
