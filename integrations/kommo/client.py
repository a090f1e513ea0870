"""HTTP clients for Kommo: API v4 (``KommoClient``), OAuth (``KommoOAuthClient``), Chats (``AmojoClient``).

They never retry: Temporal retries the activity. Every non-2xx becomes a ``KommoError`` subclass
(see ``errors.py``) that says whether retrying makes sense and after how long.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError

from integrations.kommo.errors import (
    KommoBadResponse,
    KommoNotFound,
    KommoTransportError,
    error_from_response,
)
from integrations.kommo.models import (
    Account,
    AmojoMessageResult,
    ChatParticipant,
    Contact,
    CrmUser,
    CustomField,
    CustomFieldValue,
    Lead,
    LeadsPage,
    Note,
    Pipeline,
    Status,
    Task,
    TokenPair,
    UpdatedEntity,
)
from integrations.kommo.signing import kommo_signed_headers, verify_body_signature

__all__ = [
    "AmojoClient",
    "KommoClient",
    "KommoOAuthClient",
    "NoopRateLimiter",
    "RateLimiter",
    "SlidingWindowRateLimiter",
]

M = TypeVar("M", bound=BaseModel)

# Kommo's documented maximum page size.
MAX_PAGE_LIMIT = 250


class RateLimiter(Protocol):
    """Awaited before every request; ``key`` identifies the Kommo account (7 requests/s each)."""

    async def acquire(self, key: str) -> None:
        """Return when a request for ``key`` may be sent."""
        ...


class NoopRateLimiter:
    """Default limiter: lets everything through (the caller throttles, or relies on 429 + retry)."""

    async def acquire(self, key: str) -> None:
        """Return immediately."""
        return None


class SlidingWindowRateLimiter:
    """In-process sliding-window limiter: at most ``max_calls`` per ``period`` seconds per key.

    It only coordinates requests made by this process; several workers need a shared budget
    (e.g. one task queue per account) on top. The default period is 1.1 s, not 1 s: requests
    spaced exactly 1 s apart on our side can land inside one second on Kommo's after network
    jitter, and a 429 costs more than the 10 % margin.
    """

    def __init__(
        self,
        max_calls: int = 7,
        period: float = 1.1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be >= 1 and period > 0")
        self._max_calls = max_calls
        self._period = period
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, key: str) -> None:
        """Wait until the window for ``key`` has room, then take a slot."""
        # One lock per key keeps waiters in FIFO order and lets other accounts proceed.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            sent = self._sent.setdefault(key, deque())
            while True:
                now = self._clock()
                while sent and sent[0] <= now - self._period:
                    sent.popleft()
                if len(sent) < self._max_calls:
                    sent.append(now)
                    return
                await asyncio.sleep(sent[0] + self._period - now)


def _response_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


class _HttpBase:
    """Shared plumbing: owned-or-injected httpx client, error mapping, model parsing."""

    # API v4 uses 403 for rate-limit blocks; amojo for signature failures (see error_from_response).
    _forbidden_is_block = True

    def __init__(self, base_url: str, http: httpx.AsyncClient | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._timeout = timeout

    async def aclose(self) -> None:
        """Close the httpx client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        url = self.base_url + path
        try:
            if json_body is not None:
                response = await self._http.request(
                    method, url, params=params, json=json_body, headers=headers, timeout=self._timeout
                )
            else:
                response = await self._http.request(
                    method, url, params=params, content=content, headers=headers, timeout=self._timeout
                )
        except httpx.TimeoutException as exc:
            raise KommoTransportError(f"{method} {path}: timeout ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise KommoTransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(
                response.status_code,
                _response_body(response),
                response.headers,
                forbidden_is_block=self._forbidden_is_block,
            )
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise KommoBadResponse(
                f"{response.request.method} {response.request.url.path}: body is not JSON",
                status=response.status_code,
            ) from exc

    @staticmethod
    def _model(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise KommoBadResponse(f"unexpected {what} shape: {exc}") from exc

    @classmethod
    def _embedded(cls, data: Any, key: str, what: str) -> list[Any]:
        if not isinstance(data, dict):
            raise KommoBadResponse(f"unexpected {what} shape: not an object")
        items = (data.get("_embedded") or {}).get(key)
        if not isinstance(items, list):
            raise KommoBadResponse(f"unexpected {what} shape: no _embedded.{key} list")
        return items


def _cf_payload(values: Sequence[Mapping[str, Any] | CustomFieldValue]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for value in values:
        if isinstance(value, CustomFieldValue):
            out.append(value.model_dump(exclude_none=True, include={"field_id", "values"}))
        else:
            out.append(dict(value))
    return out


class KommoClient(_HttpBase):
    """Kommo API v4 client for one account.

    ``base_url`` is ``https://{subdomain}.kommo.com`` (or the sandbox URL). The rate limiter is
    awaited before each request with ``rate_limit_key`` (default: the base URL's host, i.e. the
    account). No retries here: errors carry ``retryable``/``retry_after`` for Temporal.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        http: httpx.AsyncClient | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: float = 10,
        *,
        rate_limit_key: str | None = None,
    ) -> None:
        super().__init__(base_url, http, timeout)
        self.access_token = access_token
        self._rate_limiter: RateLimiter = rate_limiter or NoopRateLimiter()
        # All sandbox accounts share one host, so callers may key by account id instead.
        self.rate_limit_key = rate_limit_key or httpx.URL(self.base_url).host

    async def _api(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        await self._rate_limiter.acquire(self.rate_limit_key)
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        return await self._send(method, path, params=params, json_body=json_body, headers=headers)

    async def get_account(self) -> Account:
        """``GET /api/v4/account`` including ``amojo_id`` (needed for chat scope ids)."""
        response = await self._api("GET", "/api/v4/account", params={"with": "amojo_id"})
        return self._model(Account, self._json(response), "account")

    async def list_leads(
        self,
        page: int = 1,
        limit: int = MAX_PAGE_LIMIT,
        updated_since: int | None = None,
        *,
        with_contacts: bool = False,
        order: Literal["id", "updated_at", "created_at"] | None = None,
    ) -> LeadsPage:
        """One page of leads; ``updated_since`` filters ``updated_at >= ts``; 204 is an empty page.

        ``limit`` above 250 is sent as is and Kommo answers 400 (``KommoBadRequest``).
        """
        params: dict[str, str | int] = {"page": page, "limit": limit}
        if updated_since is not None:
            params["filter[updated_at][from]"] = updated_since
        if with_contacts:
            params["with"] = "contacts"
        if order is not None:
            params[f"order[{order}]"] = "asc"
        response = await self._api("GET", "/api/v4/leads", params=params)
        if response.status_code == 204 or not response.content:
            return LeadsPage(items=[], page=page, has_next=False)
        data = self._json(response)
        items = [self._model(Lead, item, "lead") for item in self._embedded(data, "leads", "leads page")]
        has_next = bool((data.get("_links") or {}).get("next"))
        return LeadsPage(items=items, page=page, has_next=has_next)

    async def iter_leads(
        self,
        limit: int = MAX_PAGE_LIMIT,
        updated_since: int | None = None,
        *,
        start_page: int = 1,
        with_contacts: bool = False,
        order: Literal["id", "updated_at", "created_at"] | None = None,
    ) -> AsyncIterator[LeadsPage]:
        """Yield non-empty pages until Kommo has no next page (checkpoint by ``page.page``)."""
        page_number = start_page
        while True:
            page = await self.list_leads(page_number, limit, updated_since, with_contacts=with_contacts, order=order)
            if page.items:
                yield page
            if not page.has_next:
                return
            page_number += 1

    async def get_lead(self, lead_id: int, *, with_contacts: bool = True) -> Lead:
        """``GET /api/v4/leads/{id}``; a missing lead -> ``KommoNotFound`` (404, or Kommo's odd 204)."""
        params: dict[str, str | int] = {"with": "contacts"} if with_contacts else {}
        response = await self._api("GET", f"/api/v4/leads/{lead_id}", params=params)
        if response.status_code == 204 or not response.content:
            raise KommoNotFound(f"lead {lead_id} not found", status=response.status_code)
        return self._model(Lead, self._json(response), "lead")

    async def update_lead(
        self,
        lead_id: int,
        *,
        name: str | None = None,
        price: int | None = None,
        status_id: int | None = None,
        pipeline_id: int | None = None,
        responsible_user_id: int | None = None,
        loss_reason_id: int | None = None,
        custom_fields_values: Sequence[Mapping[str, Any] | CustomFieldValue] | None = None,
        tags: Sequence[str] | None = None,
    ) -> UpdatedEntity:
        """``PATCH /api/v4/leads/{id}``; only the given fields change. ``tags`` *replaces* the tags."""
        body: dict[str, Any] = {}
        for key, value in (
            ("name", name),
            ("price", price),
            ("status_id", status_id),
            ("pipeline_id", pipeline_id),
            ("responsible_user_id", responsible_user_id),
            ("loss_reason_id", loss_reason_id),
        ):
            if value is not None:
                body[key] = value
        if custom_fields_values is not None:
            body["custom_fields_values"] = _cf_payload(custom_fields_values)
        if tags is not None:
            body["_embedded"] = {"tags": [{"name": t} for t in tags]}
        response = await self._api("PATCH", f"/api/v4/leads/{lead_id}", json_body=body)
        return self._model(UpdatedEntity, self._json(response), "lead update")

    async def update_leads(self, updates: Sequence[Mapping[str, Any]]) -> list[UpdatedEntity]:
        """Batch ``PATCH /api/v4/leads``: raw Kommo lead patches, each with ``id`` (Kommo advises <= 50)."""
        response = await self._api("PATCH", "/api/v4/leads", json_body=[dict(u) for u in updates])
        items = self._embedded(self._json(response), "leads", "leads update")
        return [self._model(UpdatedEntity, item, "lead update") for item in items]

    async def add_tags(self, lead_id: int, tags: Sequence[str]) -> UpdatedEntity:
        """Add tags to a lead without touching its other tags (``tags_to_add``)."""
        body = {"tags_to_add": [{"name": t} for t in tags]}
        response = await self._api("PATCH", f"/api/v4/leads/{lead_id}", json_body=body)
        return self._model(UpdatedEntity, self._json(response), "lead update")

    async def list_pipelines(self) -> list[Pipeline]:
        """``GET /api/v4/leads/pipelines`` with each pipeline's statuses."""
        response = await self._api("GET", "/api/v4/leads/pipelines")
        if response.status_code == 204 or not response.content:
            return []
        items = self._embedded(self._json(response), "pipelines", "pipelines")
        return [self._model(Pipeline, item, "pipeline") for item in items]

    async def list_statuses(self, pipeline_id: int) -> list[Status]:
        """``GET /api/v4/leads/pipelines/{id}/statuses``."""
        response = await self._api("GET", f"/api/v4/leads/pipelines/{pipeline_id}/statuses")
        if response.status_code == 204 or not response.content:
            return []
        items = self._embedded(self._json(response), "statuses", "statuses")
        return [self._model(Status, item, "status") for item in items]

    async def _all_pages(self, path: str, key: str, model: type[M]) -> list[M]:
        out: list[M] = []
        page = 1
        while True:
            response = await self._api("GET", path, params={"page": page, "limit": MAX_PAGE_LIMIT})
            if response.status_code == 204 or not response.content:
                return out
            data = self._json(response)
            out.extend(self._model(model, item, key) for item in self._embedded(data, key, key))
            if not (data.get("_links") or {}).get("next"):
                return out
            page += 1

    async def list_users(self) -> list[CrmUser]:
        """All users of the account (``GET /api/v4/users``, every page)."""
        return await self._all_pages("/api/v4/users", "users", CrmUser)

    async def list_lead_custom_fields(self) -> list[CustomField]:
        """All lead custom fields (``GET /api/v4/leads/custom_fields``, every page)."""
        return await self._all_pages("/api/v4/leads/custom_fields", "custom_fields", CustomField)

    async def get_contact(self, contact_id: int) -> Contact:
        """``GET /api/v4/contacts/{id}``."""
        response = await self._api("GET", f"/api/v4/contacts/{contact_id}", params={"with": "leads"})
        if response.status_code == 204 or not response.content:
            raise KommoNotFound(f"contact {contact_id} not found", status=response.status_code)
        return self._model(Contact, self._json(response), "contact")

    async def add_note(self, lead_id: int, text: str) -> Note:
        """Add a common (text) note to a lead (``POST /api/v4/leads/notes``)."""
        body = [{"entity_id": lead_id, "note_type": "common", "params": {"text": text}}]
        response = await self._api("POST", "/api/v4/leads/notes", json_body=body)
        items = self._embedded(self._json(response), "notes", "notes")
        if not items or not isinstance(items[0], dict):
            raise KommoBadResponse("note creation answered no note")
        # Kommo answers only ids; complete the model from what we sent.
        return self._model(Note, {**body[0], **items[0]}, "note")

    async def add_task(
        self,
        lead_id: int,
        text: str,
        complete_till: int,
        *,
        task_type_id: int = 1,
        responsible_user_id: int | None = None,
    ) -> Task:
        """Create a task on a lead due at ``complete_till`` (unix time); type 1 = follow-up call."""
        item: dict[str, Any] = {
            "entity_id": lead_id,
            "entity_type": "leads",
            "text": text,
            "complete_till": complete_till,
            "task_type_id": task_type_id,
        }
        if responsible_user_id is not None:
            item["responsible_user_id"] = responsible_user_id
        response = await self._api("POST", "/api/v4/tasks", json_body=[item])
        items = self._embedded(self._json(response), "tasks", "tasks")
        if not items or not isinstance(items[0], dict):
            raise KommoBadResponse("task creation answered no task")
        # Kommo answers only ids; complete the model from what we sent.
        return self._model(Task, {**item, **items[0]}, "task")


class KommoOAuthClient(_HttpBase):
    """OAuth2 for a Kommo integration: build the consent URL, exchange a code, refresh tokens.

    Refresh tokens are single-use: persist the returned pair before using it, and never run two
    refreshes of one account at once (the loser's token is already revoked -> 401).
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10,
    ) -> None:
        super().__init__(base_url, http, timeout)
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri

    def authorize_url(self, state: str, *, base_url: str | None = None) -> str:
        """Consent page URL (real Kommo: ``https://www.kommo.com/oauth``); ``state`` is echoed back."""
        query = urlencode(
            {
                "client_id": self.client_id,
                "state": state,
                "redirect_uri": self.redirect_uri,
                "mode": "post_message",
            }
        )
        return f"{(base_url or self.base_url).rstrip('/')}/oauth?{query}"

    async def _token(self, grant: dict[str, str]) -> TokenPair:
        body = {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "redirect_uri": self.redirect_uri,
            **grant,
        }
        response = await self._send("POST", "/oauth2/access_token", json_body=body)
        return self._model(TokenPair, self._json(response), "token")

    async def exchange_code(self, code: str) -> TokenPair:
        """Exchange an authorization code (single use, valid 20 min) for a token pair."""
        return await self._token({"grant_type": "authorization_code", "code": code})

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate the pair; the old refresh token is revoked as soon as this succeeds."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})


class AmojoClient(_HttpBase):
    """Kommo Chats API (amojo) client for one channel; every request is HMAC-signed."""

    _forbidden_is_block = False

    def __init__(
        self,
        base_url: str,
        channel_id: str,
        channel_secret: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(base_url, http, timeout)
        self.channel_id = channel_id
        self._secret = channel_secret
        self._clock = clock or (lambda: datetime.now(UTC))

    def verify_hook(self, body: bytes, signature: str | None) -> bool:
        """Check the ``X-Signature`` of a hook amojo sent us for this channel."""
        return verify_body_signature(self._secret, body, signature)

    async def _signed_post(self, path: str, payload: Mapping[str, Any]) -> httpx.Response:
        # Sign the exact bytes we send: amojo hashes the raw body, whitespace included.
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        signed_path = httpx.URL(self.base_url + path).path
        headers = kommo_signed_headers(self._secret, "POST", signed_path, body, now=self._clock())
        headers["Accept"] = "application/json"
        return await self._send("POST", path, content=body, headers=headers)

    async def send_message(
        self,
        scope_id: str,
        conversation_id: str,
        text: str,
        msgid: str,
        *,
        receiver: ChatParticipant | None = None,
        sender: ChatParticipant | None = None,
        silent: bool = False,
        timestamp: float | None = None,
    ) -> AmojoMessageResult:
        """Post a text ``new_message`` to ``/v2/origin/custom/{scope_id}``.

        ``msgid`` is our idempotency key (amojo dedupes on it). Outgoing messages (agent -> client)
        need ``receiver`` = the client; with no ``receiver`` amojo treats ``sender`` as the client,
        i.e. an *incoming* message. The default sender is this channel's bot.
        """
        when = timestamp if timestamp is not None else self._clock().timestamp()
        sender = sender or ChatParticipant(id=f"{self.channel_id}-bot", name="salesflow")
        payload: dict[str, Any] = {
            "timestamp": int(when),
            "msec_timestamp": int(when * 1000),
            "msgid": msgid,
            "conversation_id": conversation_id,
            "sender": sender.model_dump(exclude_none=True),
            "message": {"type": "text", "text": text},
            "silent": silent,
        }
        if receiver is not None:
            payload["receiver"] = receiver.model_dump(exclude_none=True)
        response = await self._signed_post(
            f"/v2/origin/custom/{scope_id}", {"event_type": "new_message", "payload": payload}
        )
        data = self._json(response)
        if not isinstance(data, dict) or not isinstance(data.get("new_message"), dict):
            raise KommoBadResponse("amojo answer has no new_message")
        return self._model(AmojoMessageResult, data["new_message"], "amojo message")
