"""A local Kommo (+ amojo) emulator served over real HTTP, for tests and the offline demo.

``KommoSandbox`` runs a FastAPI app with uvicorn inside the caller's asyncio loop on
127.0.0.1 and an ephemeral port::

    async with KommoSandbox() as kommo:
        acme = kommo.add_account("acme")
        token = kommo.issue_tokens(acme).access_token
        client = KommoClient(kommo.base_url, token)

What it honours (see DESIGN.md "Kommo facts"): OAuth codes live 20 min and are single use;
refresh tokens are single use and every refresh rotates the pair; access tokens expire (24 h by
default); HAL JSON with ``_embedded``/``_links``/``_page``; ``limit`` <= 250; an empty list is 204
with no body; problem+json errors; 7 requests/s per account (429), then 403 for an abusive
account; 402 for an unpaid one; amojo signature checks; CRM webhooks retried at +5, +15, +15 and +60 min
and switched off after 100 failures in two hours; chat hooks sent once.

Routing: every account shares the sandbox's one base URL. The account of an API v4 request is
the one its bearer token was issued for (the ``Host`` header is ignored), an amojo request's is
chosen by its ``scope_id``, and an OAuth request's by the code / refresh token / client_id.

Time: ``now()`` is the injectable ``clock`` plus an offset moved by ``advance(seconds)``, and
drives token expiry, rate-limit windows and amojo ``Date`` checks, so tests skip hours instantly.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeGuard

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from integrations.kommo import signing
from integrations.kommo.models import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Contact,
    CrmUser,
    Lead,
    Pipeline,
    TokenPair,
)
from integrations.kommo.webhooks import encode_crm_webhook
from integrations.served_sandbox import ServedSandbox

__all__ = [
    "KommoSandbox",
    "SandboxAccount",
    "SandboxChatMessage",
    "SandboxRequest",
    "SandboxWebhookDelivery",
]

DAY = 86400.0
MAX_LIMIT = 250
DEFAULT_LIMIT = 50
NOTE_TYPES = frozenset(
    {"common", "call_in", "call_out", "service_message", "extended_service_message", "sms_in", "sms_out"}
)
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_ENTRY_KEY = "kommo_sandbox_entry"


# --------------------------------------------------------------------------- records


@dataclass
class SandboxRequest:
    """One request the sandbox served: for asserting call counts and request rates."""

    method: str
    path: str
    query: str
    time: float
    account_id: int | None = None
    status: int | None = None


@dataclass
class SandboxChatMessage:
    """A message posted to amojo; ``duplicate`` marks a repeated ``msgid`` (not delivered twice)."""

    scope_id: str
    account_id: int
    msgid: str
    conversation_id: str
    text: str | None
    sender: dict[str, Any]
    receiver: dict[str, Any] | None
    received_at: float
    duplicate: bool
    payload: dict[str, Any]

    @property
    def direction(self) -> str:
        """``outgoing`` (to the client) when a receiver is given, else ``incoming``."""
        return "outgoing" if self.receiver is not None else "incoming"


@dataclass
class SandboxWebhookDelivery:
    """A webhook the sandbox sent to us, with the answer it got (None: no answer within the timeout)."""

    url: str
    kind: str
    body: bytes
    status: int | None
    attempt: int = 1


@dataclass
class _Redelivery:
    url: str
    body: bytes
    attempt: int
    due: float


# Kommo retries a CRM webhook that got no 2xx within 2 s this long after the previous attempt, then gives
# up on the event; a hook failing 100 times within two hours is switched off.
CRM_WEBHOOK_RETRY_DELAYS = (5 * 60.0, 15 * 60.0, 15 * 60.0, 60 * 60.0)
CRM_WEBHOOK_OFF_AFTER = 100
CRM_WEBHOOK_OFF_WINDOW = 2 * 3600.0


class WebhookSwitchedOff(Exception):
    """Kommo no longer calls this CRM webhook URL: it failed too often (the account must re-enable it)."""


@dataclass
class _Fault:
    status: int
    retry_after: float | None


@dataclass
class _Grant:
    account_id: int
    client_id: str | None
    expires_at: float
    redirect_uri: str | None = None


@dataclass
class SandboxAccount:
    """An emulated Kommo account and its CRM data (plain dicts in Kommo's JSON shape).

    Tests may read and edit the dicts directly; the HTTP API sees the same objects.
    """

    id: int
    subdomain: str
    name: str
    client_id: str
    client_secret: str
    redirect_uri: str | None
    amojo_id: str
    channel_id: str
    channel_secret: str
    created_at: int
    pipelines: dict[int, dict[str, Any]] = field(default_factory=dict)
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    lead_fields: dict[int, dict[str, Any]] = field(default_factory=dict)
    contact_fields: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    paid: bool = True
    blocked_until: float = 0.0
    _recent: deque[float] = field(default_factory=deque, repr=False)
    _violations: deque[float] = field(default_factory=deque, repr=False)
    _faults: deque[_Fault] = field(default_factory=deque, repr=False)

    @property
    def scope_id(self) -> str:
        """amojo scope id of this account's chat channel: ``{channel_id}_{amojo_id}``."""
        return f"{self.channel_id}_{self.amojo_id}"

    @property
    def main_pipeline_id(self) -> int:
        """Id of the main pipeline."""
        for pipeline in self.pipelines.values():
            if pipeline["is_main"]:
                return int(pipeline["id"])
        raise LookupError("account has no main pipeline")

    def status_id(self, name: str, pipeline_id: int | None = None) -> int:
        """Id of the status called ``name`` in a pipeline (the main one by default)."""
        pipeline = self.pipelines[pipeline_id or self.main_pipeline_id]
        for status in pipeline["statuses"]:
            if status["name"] == name:
                return int(status["id"])
        raise LookupError(f"no status {name!r} in pipeline {pipeline['id']}")

    def lead_field_id(self, name: str) -> int:
        """Id of the lead custom field called ``name``."""
        for custom_field in self.lead_fields.values():
            if custom_field["name"] == name:
                return int(custom_field["id"])
        raise LookupError(f"no lead field {name!r}")


# --------------------------------------------------------------------------- errors


class _Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def _problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None
) -> JSONResponse:
    body = {
        "title": _TITLES.get(status, "Error"),
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type="application/problem+json")


def _invalid(errors: Sequence[tuple[str, str, str]]) -> _Problem:
    """400 in Kommo's shape; errors are (request_id, path, detail)."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for request_id, path, detail in errors:
        grouped.setdefault(request_id, []).append({"code": "InvalidValue", "path": path, "detail": detail})
    return _Problem(
        400,
        "Request validation failed",
        extra={"validation-errors": [{"request_id": rid, "errors": errs} for rid, errs in grouped.items()]},
    )


def _hal(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status, media_type="application/hal+json")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _invalid([("0", name, f"{name} must be an integer")]) from None


# --------------------------------------------------------------------------- sandbox


class KommoSandbox(ServedSandbox):
    """In-memory Kommo + amojo emulator on a real local HTTP port (see module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        access_token_ttl: float = DAY,
        refresh_token_ttl: float = 90 * DAY,
        code_ttl: float = 20 * 60,
        rate_limit: int | None = 7,
        rate_window: float = 1.0,
        block_after: int = 20,
        block_window: float = 60.0,
        block_seconds: float = 60.0,
        amojo_date_tolerance: float = 15 * 60,
    ) -> None:
        super().__init__(host, port)
        self._clock = clock
        self._offset = 0.0
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.code_ttl = code_ttl
        # None disables rate limiting, for tests that are not about it.
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        # More than ``block_after`` 429s within ``block_window`` blocks the account (403).
        self.block_after = block_after
        self.block_window = block_window
        self.block_seconds = block_seconds
        self.amojo_date_tolerance = amojo_date_tolerance

        self.accounts: dict[int, SandboxAccount] = {}
        self.requests: list[SandboxRequest] = []
        self.sent_messages: list[SandboxChatMessage] = []
        self.webhook_deliveries: list[SandboxWebhookDelivery] = []
        self.switched_off_webhooks: set[str] = set()
        self._redeliveries: list[_Redelivery] = []
        self._webhook_failures: dict[str, deque[float]] = {}
        self._ids = itertools.count(1_000_001)
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._codes: dict[str, _Grant] = {}
        self._conversations: dict[tuple[str, str], str] = {}
        self._chat_ids: dict[tuple[str, str], dict[str, str]] = {}

        self.app = self._build_app()

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Sandbox time (unix seconds): the clock plus ``advance()`` offsets."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move sandbox time forward (token expiry, rate windows, blocks)."""
        self._offset += seconds

    def _next_id(self) -> int:
        return next(self._ids)

    # ------------------------------------------------------------------ seeding

    def add_account(
        self,
        subdomain: str,
        account_id: int | None = None,
        *,
        name: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uri: str | None = None,
        channel_id: str | None = None,
        channel_secret: str | None = None,
    ) -> SandboxAccount:
        """Create an account with a main pipeline (incl. 142 won / 143 lost), two users and custom fields.

        Several accounts may share ``client_id``/``client_secret`` (one integration installed in
        many accounts) and ``channel_id``/``channel_secret`` (one chat channel).
        """
        if any(a.subdomain == subdomain for a in self.accounts.values()):
            raise ValueError(f"subdomain {subdomain!r} already exists")
        account = SandboxAccount(
            id=account_id if account_id is not None else self._next_id(),
            subdomain=subdomain,
            name=name or subdomain.capitalize(),
            client_id=client_id or str(uuid.uuid4()),
            client_secret=client_secret or secrets.token_urlsafe(32),
            redirect_uri=redirect_uri,
            amojo_id=str(uuid.uuid4()),
            channel_id=channel_id or str(uuid.uuid4()),
            channel_secret=channel_secret or secrets.token_hex(20),
            created_at=int(self.now()),
        )
        if account.id in self.accounts:
            raise ValueError(f"account id {account.id} already exists")
        self.accounts[account.id] = account
        self.add_user(account, "Admin", f"admin@{subdomain}.example")
        self.add_user(account, "Sales Manager", f"manager@{subdomain}.example")
        self.add_pipeline(
            account, "Sales", ["Incoming leads", "Initial contact", "Negotiation", "Decision"], is_main=True
        )
        for field_name, field_type, enums in (
            ("Budget", "numeric", None),
            ("Source", "select", ["Website", "Referral", "Ads"]),
            ("Qualified", "checkbox", None),
            ("Notes from AI", "textarea", None),
        ):
            field_id = self._next_id()
            account.lead_fields[field_id] = {
                "id": field_id,
                "name": field_name,
                "type": field_type,
                "account_id": account.id,
                "code": None,
                "sort": 500 + len(account.lead_fields),
                "is_api_only": False,
                "entity_type": "leads",
                "enums": [{"id": self._next_id(), "value": v, "sort": i} for i, v in enumerate(enums)]
                if enums
                else None,
            }
        for code in ("PHONE", "EMAIL"):
            field_id = self._next_id()
            account.contact_fields[field_id] = {
                "id": field_id,
                "name": code.capitalize(),
                "type": "multitext",
                "code": code,
                "entity_type": "contacts",
            }
        return account

    def account(self, key: int | str) -> SandboxAccount:
        """Look an account up by id or subdomain."""
        for account in self.accounts.values():
            if account.id == key or account.subdomain == key:
                return account
        raise KeyError(key)

    def add_user(self, account: SandboxAccount, name: str, email: str | None = None) -> CrmUser:
        """Add a CRM user (manager) to the account."""
        user_id = self._next_id()
        account.users[user_id] = {
            "id": user_id,
            "name": name,
            "email": email or f"user{user_id}@{account.subdomain}.example",
            "lang": "en",
            "rights": {
                "leads": {"view": "A", "edit": "A", "add": "A", "delete": "A"},
                "is_admin": not account.users,
            },
        }
        return CrmUser.model_validate(account.users[user_id])

    def add_pipeline(
        self, account: SandboxAccount, name: str, statuses: Sequence[str], *, is_main: bool = False
    ) -> Pipeline:
        """Add a pipeline; the first status is the incoming (unsorted) one, 142/143 are appended."""
        pipeline_id = self._next_id()
        rows: list[dict[str, Any]] = []
        for index, status_name in enumerate(statuses):
            rows.append(
                {
                    "id": self._next_id(),
                    "name": status_name,
                    "sort": 10 * (index + 1),
                    "is_editable": index != 0,
                    "pipeline_id": pipeline_id,
                    "color": "#99ccff",
                    "type": 1 if index == 0 else 0,
                    "account_id": account.id,
                }
            )
        # Kommo shares the ids 142/143 across every pipeline of every account.
        for status_id, status_name, sort, color in (
            (WON_STATUS_ID, "Closed - won", 10000, "#CCFF66"),
            (LOST_STATUS_ID, "Closed - lost", 11000, "#D5D8DB"),
        ):
            rows.append(
                {
                    "id": status_id,
                    "name": status_name,
                    "sort": sort,
                    "is_editable": False,
                    "pipeline_id": pipeline_id,
                    "color": color,
                    "type": 0,
                    "account_id": account.id,
                }
            )
        if is_main:
            for other in account.pipelines.values():
                other["is_main"] = False
        account.pipelines[pipeline_id] = {
            "id": pipeline_id,
            "name": name,
            "sort": 1 + len(account.pipelines),
            "is_main": is_main or not account.pipelines,
            "is_unsorted_on": True,
            "is_archive": False,
            "account_id": account.id,
            "statuses": rows,
        }
        return Pipeline.model_validate(self._render_pipeline(account.pipelines[pipeline_id], ""))

    def add_lead(
        self,
        account: SandboxAccount,
        name: str = "Lead",
        status_id: int | None = None,
        pipeline_id: int | None = None,
        *,
        price: int = 0,
        responsible_user_id: int | None = None,
        tags: Iterable[str] = (),
        custom_fields_values: list[dict[str, Any]] | None = None,
        contact_id: int | None = None,
        created_at: int | None = None,
        updated_at: int | None = None,
    ) -> Lead:
        """Add a lead (default: main pipeline, its first regular status, first user)."""
        pipeline = account.pipelines[pipeline_id or account.main_pipeline_id]
        if status_id is None:
            status_id = next(int(s["id"]) for s in pipeline["statuses"] if s["type"] == 0)
        elif not any(s["id"] == status_id for s in pipeline["statuses"]):
            raise ValueError(f"status {status_id} is not in pipeline {pipeline['id']}")
        now = int(self.now())
        lead_id = self._next_id()
        created = created_at if created_at is not None else now
        lead: dict[str, Any] = {
            "id": lead_id,
            "name": name,
            "price": price,
            "responsible_user_id": responsible_user_id or next(iter(account.users)),
            "group_id": 0,
            "status_id": status_id,
            "pipeline_id": pipeline["id"],
            "loss_reason_id": None,
            "created_by": 0,
            "updated_by": 0,
            "created_at": created,
            "updated_at": updated_at if updated_at is not None else created,
            "closed_at": now if status_id in (WON_STATUS_ID, LOST_STATUS_ID) else None,
            "closest_task_at": None,
            "is_deleted": False,
            "custom_fields_values": custom_fields_values,
            "score": None,
            "account_id": account.id,
            "labor_cost": None,
            "_embedded": {"tags": [self._tag(account, t) for t in tags], "companies": [], "contacts": []},
        }
        account.leads[lead_id] = lead
        if contact_id is not None:
            self.link_contact(account, lead_id, contact_id)
        return self.lead(account, lead_id)

    def add_contact(
        self,
        account: SandboxAccount,
        name: str,
        *,
        phone: str | None = None,
        email: str | None = None,
        lead_id: int | None = None,
    ) -> Contact:
        """Add a contact (phone/email in the PHONE/EMAIL fields), optionally linked to a lead."""
        contact_id = self._next_id()
        values: list[dict[str, Any]] = []
        for code, value in (("PHONE", phone), ("EMAIL", email)):
            if value is None:
                continue
            field_id = next(f["id"] for f in account.contact_fields.values() if f["code"] == code)
            values.append(
                {
                    "field_id": field_id,
                    "field_name": code.capitalize(),
                    "field_code": code,
                    "field_type": "multitext",
                    "values": [{"value": value, "enum_code": "WORK"}],
                }
            )
        first, _, last = name.partition(" ")
        now = int(self.now())
        account.contacts[contact_id] = {
            "id": contact_id,
            "name": name,
            "first_name": first,
            "last_name": last,
            "responsible_user_id": next(iter(account.users)),
            "created_at": now,
            "updated_at": now,
            "custom_fields_values": values or None,
            "account_id": account.id,
            "_embedded": {"tags": [], "leads": []},
        }
        if lead_id is not None:
            self.link_contact(account, lead_id, contact_id)
        return Contact.model_validate(account.contacts[contact_id])

    def link_contact(self, account: SandboxAccount, lead_id: int, contact_id: int) -> None:
        """Link a contact to a lead (the first linked contact is the main one)."""
        lead_links = account.leads[lead_id]["_embedded"]["contacts"]
        if not any(link["id"] == contact_id for link in lead_links):
            lead_links.append({"id": contact_id, "is_main": not lead_links})
        contact_links = account.contacts[contact_id]["_embedded"]["leads"]
        if not any(link["id"] == lead_id for link in contact_links):
            contact_links.append({"id": lead_id})

    def move_lead(
        self, account: SandboxAccount, lead_id: int, status_id: int, pipeline_id: int | None = None
    ) -> dict[str, Any]:
        """Move a lead as a user does in Kommo; returns the ``leads[status]`` webhook event the move sends."""
        lead = account.leads[lead_id]
        old_status, old_pipeline = lead["status_id"], lead["pipeline_id"]
        pipeline = account.pipelines[pipeline_id or old_pipeline]
        if not any(s["id"] == status_id for s in pipeline["statuses"]):
            raise ValueError(f"status {status_id} is not in pipeline {pipeline['id']}")
        lead["status_id"], lead["pipeline_id"] = status_id, pipeline["id"]
        lead["updated_at"] = int(self.now())
        return {"entity": "lead", "action": "status", "id": lead_id, "status_id": status_id,
                "pipeline_id": pipeline["id"], "old_status_id": old_status, "old_pipeline_id": old_pipeline,
                "last_modified": lead["updated_at"]}

    def tag_lead(self, account: SandboxAccount, lead_id: int, *tags: str) -> dict[str, Any]:
        """Add tags to a lead as a user does; returns the ``leads[update]`` webhook event (Kommo sends no diff)."""
        lead = account.leads[lead_id]
        present = {t["name"].casefold() for t in lead["_embedded"]["tags"]}
        lead["_embedded"]["tags"] += [self._tag(account, t) for t in tags if t.strip().casefold() not in present]
        lead["updated_at"] = max(int(self.now()), int(lead["updated_at"]) + 1)
        return {"entity": "lead", "action": "update", "id": lead_id, "status_id": lead["status_id"],
                "pipeline_id": lead["pipeline_id"], "last_modified": lead["updated_at"]}

    def chat_message_event(
        self, account: SandboxAccount, lead_id: int, text: str, *, incoming: bool = True,
        author_name: str = "Client", message_id: str | None = None,
    ) -> dict[str, Any]:
        """The ``message[add]`` webhook event of a chat message on a lead: the client's (``incoming``) or a user's."""
        ids = self._chat_ids.setdefault((account.scope_id, f"lead:{lead_id}"),
                                        {"chat": str(uuid.uuid4()), "talk": str(self._next_id())})
        user = next(iter(account.users.values()))
        return {
            "entity": "message", "action": "add", "id": message_id or str(uuid.uuid4()), "chat_id": ids["chat"],
            "talk_id": ids["talk"], "text": text, "created_at": int(self.now()), "element_type": "2",
            "entity_type": "lead", "element_id": lead_id, "entity_id": lead_id,
            "type": "incoming" if incoming else "outgoing",
            "author": {"id": str(uuid.uuid4()) if incoming else str(user["id"]),
                       "type": "external" if incoming else "user", "name": author_name},
            "origin": "com.amocrm.amocrmwa",
        }

    def lead(self, account: SandboxAccount, lead_id: int) -> Lead:
        """Snapshot of a lead as the API would return it ``with=contacts``."""
        return Lead.model_validate(self._render_lead(account.leads[lead_id], "", with_contacts=True))

    def _tag(self, account: SandboxAccount, name: str) -> dict[str, Any]:
        key = name.strip().lower()
        if key not in account.tags:
            account.tags[key] = {"id": self._next_id(), "name": name.strip(), "color": None}
        return dict(account.tags[key])

    # ------------------------------------------------------------------ tokens and faults

    def issue_code(self, account: SandboxAccount, redirect_uri: str | None = None) -> str:
        """An authorization code as the consent page would grant (single use, ``code_ttl``)."""
        code = "def" + secrets.token_urlsafe(48)
        self._codes[code] = _Grant(
            account.id, account.client_id, self.now() + self.code_ttl, redirect_uri or account.redirect_uri
        )
        return code

    def issue_tokens(self, account: SandboxAccount, *, access_ttl: float | None = None) -> TokenPair:
        """A fresh token pair for the account, as the token endpoint would return."""
        ttl = self.access_token_ttl if access_ttl is None else access_ttl
        access = secrets.token_urlsafe(48)
        refresh = "def" + secrets.token_urlsafe(64)
        now = self.now()
        self._access[access] = _Grant(account.id, account.client_id, now + ttl)
        self._refresh[refresh] = _Grant(account.id, account.client_id, now + self.refresh_token_ttl)
        return TokenPair(token_type="Bearer", expires_in=int(ttl), access_token=access, refresh_token=refresh)

    def long_lived_token(self, account: SandboxAccount, ttl: float = 5 * 365 * DAY) -> str:
        """A long-lived access token, as a private integration gets (no refresh token)."""
        token = secrets.token_urlsafe(48)
        self._access[token] = _Grant(account.id, None, self.now() + ttl)
        return token

    def revoke_tokens(self, account: SandboxAccount) -> None:
        """Revoke every access and refresh token of the account (integration uninstalled)."""
        for store in (self._access, self._refresh):
            for token in [t for t, g in store.items() if g.account_id == account.id]:
                del store[token]

    def fail_next(
        self, account: SandboxAccount, n: int = 1, status: int = 500, *, retry_after: float | None = None
    ) -> None:
        """Answer the account's next ``n`` authenticated API requests with ``status`` (problem+json)."""
        account._faults.extend(_Fault(status, retry_after) for _ in range(n))

    def set_paid(self, account: SandboxAccount, paid: bool) -> None:
        """An unpaid account answers 402 to every API request."""
        account.paid = paid

    def requests_for(self, account: SandboxAccount) -> list[SandboxRequest]:
        """The request log filtered to one account."""
        return [r for r in self.requests if r.account_id == account.id]

    # ------------------------------------------------------------------ webhooks to us

    async def send_crm_webhook(
        self,
        url: str,
        account: SandboxAccount,
        events: Sequence[Mapping[str, Any]],
        *,
        response_timeout: float = 2.0,
    ) -> httpx.Response:
        """POST a form-encoded CRM webhook to ``url`` (Kommo waits 2 s; it does not sign it).

        A failed delivery (no 2xx in time) is retried by :meth:`redeliver_crm_webhooks` on Kommo's schedule;
        a transport error is raised after being recorded. A switched-off URL raises ``WebhookSwitchedOff``.
        """
        body = encode_crm_webhook(account.id, account.subdomain, events).encode()
        return await self._deliver_crm(url, body, 1, response_timeout)

    async def redeliver_crm_webhooks(self, *, response_timeout: float = 2.0) -> list[SandboxWebhookDelivery]:
        """Retry every failed CRM webhook whose time has come (sandbox time: use ``advance``); returns them."""
        due = [r for r in self._redeliveries if r.due <= self.now()]
        self._redeliveries = [r for r in self._redeliveries if r.due > self.now()]
        made: list[SandboxWebhookDelivery] = []
        for redelivery in due:
            if redelivery.url in self.switched_off_webhooks:
                continue
            with contextlib.suppress(httpx.HTTPError):
                await self._deliver_crm(redelivery.url, redelivery.body, redelivery.attempt, response_timeout)
            made.append(self.webhook_deliveries[-1])
        return made

    def pending_crm_redeliveries(self) -> list[tuple[str, int, float]]:
        """``(url, attempt, due)`` of every scheduled retry, soonest first."""
        return sorted(((r.url, r.attempt, r.due) for r in self._redeliveries), key=lambda r: r[2])

    async def _deliver_crm(self, url: str, body: bytes, attempt: int, response_timeout: float) -> httpx.Response:
        if url in self.switched_off_webhooks:
            raise WebhookSwitchedOff(url)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            response = await self._deliver(url, "crm", body, headers, response_timeout, attempt=attempt)
        except httpx.HTTPError:
            self._crm_failed(url, body, attempt)
            raise
        if not 200 <= response.status_code < 300:
            self._crm_failed(url, body, attempt)
        return response

    def _crm_failed(self, url: str, body: bytes, attempt: int) -> None:
        now = self.now()
        failures = self._webhook_failures.setdefault(url, deque())
        failures.append(now)
        while failures and failures[0] <= now - CRM_WEBHOOK_OFF_WINDOW:
            failures.popleft()
        if len(failures) >= CRM_WEBHOOK_OFF_AFTER:
            self.switched_off_webhooks.add(url)
            self._redeliveries = [r for r in self._redeliveries if r.url != url]
            return
        if attempt <= len(CRM_WEBHOOK_RETRY_DELAYS):
            self._redeliveries.append(_Redelivery(url, body, attempt + 1, now + CRM_WEBHOOK_RETRY_DELAYS[attempt - 1]))

    async def send_chat_hook(
        self, url: str, account: SandboxAccount, payload: Mapping[str, Any], *, response_timeout: float = 2.0
    ) -> httpx.Response:
        """POST a chat hook signed with ``X-Signature`` = HMAC-SHA1(body, channel secret), sent once."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Signature": signing.sign_body(account.channel_secret, body),
        }
        return await self._deliver(url, "chat", body, headers, response_timeout)

    async def _deliver(
        self, url: str, kind: str, body: bytes, headers: Mapping[str, str], response_timeout: float, *,
        attempt: int = 1,
    ) -> httpx.Response:
        delivery = SandboxWebhookDelivery(url=url, kind=kind, body=body, status=None, attempt=attempt)
        self.webhook_deliveries.append(delivery)
        response = await self._outbound_client().post(
            url, content=body, headers=dict(headers), timeout=response_timeout
        )
        delivery.status = response.status_code
        return response

    def chat_hook_payload(
        self,
        account: SandboxAccount,
        conversation_id: str,
        text: str,
        *,
        client_id: str = "client-1",
        sender_name: str = "Sales Manager",
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A hook as amojo sends it when a Kommo user writes to the client in our channel."""
        now = self.now()
        ids = self._chat_ids.setdefault((account.scope_id, conversation_id), {"conversation": str(uuid.uuid4())})
        return {
            "account_id": account.amojo_id,
            "time": int(now),
            "message": {
                "receiver": {"id": str(uuid.uuid4()), "client_id": client_id},
                "sender": {"id": str(uuid.uuid4()), "name": sender_name},
                "conversation": {"id": ids["conversation"], "client_id": conversation_id},
                "timestamp": int(now),
                "msec_timestamp": int(now * 1000),
                "message": {"id": message_id or str(uuid.uuid4()), "type": "text", "text": text},
            },
        }

    # ------------------------------------------------------------------ HTTP app

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Kommo sandbox", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(_Problem)
        async def on_problem(request: Request, exc: _Problem) -> Response:
            return _problem(exc.status, exc.detail, exc.headers, exc.extra)

        @app.exception_handler(RequestValidationError)
        async def on_validation(request: Request, exc: RequestValidationError) -> Response:
            errors = [("0", ".".join(str(p) for p in e.get("loc", ())), str(e.get("msg"))) for e in exc.errors()]
            problem = _invalid(errors)
            return _problem(problem.status, problem.detail, extra=problem.extra)

        @app.exception_handler(StarletteHTTPException)
        async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
            return _problem(exc.status_code, str(exc.detail))

        @app.middleware("http")
        async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            entry = SandboxRequest(request.method, request.url.path, request.url.query, self.now())
            request.scope[_ENTRY_KEY] = entry
            self.requests.append(entry)
            response = await call_next(request)
            entry.status = response.status_code
            return response

        # -- OAuth
        app.add_api_route("/oauth", self._oauth_authorize, methods=["GET"])
        app.add_api_route("/oauth2/access_token", self._oauth_token, methods=["POST"])

        # -- API v4. Each endpoint authenticates via ``_api_account`` first thing, so the
        # request log, rate limit and faults apply uniformly. ``{id:int}`` keeps
        # ``/leads/pipelines`` from matching ``/leads/{id}``.
        def api(path: str, endpoint: Callable[..., Awaitable[Response]], method: str) -> None:
            app.add_api_route(path, endpoint, methods=[method])

        api("/api/v4/account", self._get_account, "GET")
        api("/api/v4/leads/pipelines", self._list_pipelines, "GET")
        api("/api/v4/leads/pipelines/{pipeline_id:int}", self._get_pipeline, "GET")
        api("/api/v4/leads/pipelines/{pipeline_id:int}/statuses", self._list_statuses, "GET")
        api("/api/v4/leads/custom_fields", self._list_lead_fields, "GET")
        api("/api/v4/leads/tags", self._list_tags, "GET")
        api("/api/v4/leads/notes", self._add_notes, "POST")
        api("/api/v4/leads/{lead_id:int}/notes", self._add_lead_notes, "POST")
        api("/api/v4/leads", self._list_leads, "GET")
        api("/api/v4/leads", self._patch_leads, "PATCH")
        api("/api/v4/leads/{lead_id:int}", self._get_lead, "GET")
        api("/api/v4/leads/{lead_id:int}", self._patch_lead, "PATCH")
        api("/api/v4/contacts/{contact_id:int}", self._get_contact, "GET")
        api("/api/v4/users", self._list_users, "GET")
        api("/api/v4/tasks", self._add_tasks, "POST")

        # -- amojo
        app.add_api_route("/v2/origin/custom/{scope_id}", self._amojo_send, methods=["POST"])
        return app

    # ------------------------------------------------------------------ auth, limits, faults

    def _api_account(self, request: Request) -> SandboxAccount:
        """Authenticate, then apply block, rate limit, injected faults and payment, in Kommo's order."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Problem(401, "Authorization header with a Bearer token is required")
        grant = self._access.get(token.strip())
        if grant is None:
            raise _Problem(401, "Invalid or revoked access token")
        if grant.expires_at <= self.now():
            raise _Problem(401, "Access token has expired")
        account = self.accounts.get(grant.account_id)
        if account is None:
            raise _Problem(401, "Account no longer exists")
        entry = request.scope.get(_ENTRY_KEY)
        if isinstance(entry, SandboxRequest):
            entry.account_id = account.id
        self._check_rate(account)
        if account._faults:
            fault = account._faults.popleft()
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            raise _Problem(fault.status, "Injected fault", headers=headers)
        if not account.paid:
            raise _Problem(402, "Account is not paid")
        return account

    def _check_rate(self, account: SandboxAccount) -> None:
        now = self.now()
        if account.blocked_until > now:
            raise _Problem(
                403,
                "Account is blocked for exceeding the request rate limit",
                headers={"Retry-After": str(max(1, int(account.blocked_until - now + 0.999)))},
            )
        if self.rate_limit is None:
            return
        recent = account._recent
        while recent and recent[0] <= now - self.rate_window:
            recent.popleft()
        if len(recent) < self.rate_limit:
            # Only accepted requests use the budget, so a client that backs off recovers at once.
            recent.append(now)
            return
        violations = account._violations
        while violations and violations[0] <= now - self.block_window:
            violations.popleft()
        violations.append(now)
        if len(violations) > self.block_after:
            account.blocked_until = now + self.block_seconds
            violations.clear()
            raise _Problem(
                403,
                "Account is blocked for exceeding the request rate limit",
                headers={"Retry-After": str(max(1, int(self.block_seconds)))},
            )
        raise _Problem(429, "Too many requests: 7 per second per account", headers={"Retry-After": "1"})

    # ------------------------------------------------------------------ OAuth endpoints

    async def _oauth_authorize(self, request: Request) -> Response:
        """Consent page stand-in: approve at once and redirect with a code.

        ``subdomain`` (sandbox only) picks the account when several installed the client_id.
        """
        params = request.query_params
        client_id = params.get("client_id")
        if not client_id:
            raise _Problem(400, "client_id is required")
        candidates = [a for a in self.accounts.values() if a.client_id == client_id]
        if params.get("subdomain"):
            candidates = [a for a in candidates if a.subdomain == params["subdomain"]]
        if not candidates:
            raise _Problem(400, "Unknown client_id")
        if len(candidates) > 1:
            raise _Problem(400, "Several accounts use this client_id; pass subdomain")
        account = candidates[0]
        redirect_uri = params.get("redirect_uri") or account.redirect_uri
        if not redirect_uri:
            raise _Problem(400, "redirect_uri is required")
        code = self.issue_code(account, redirect_uri)
        query = {"code": code, "referer": f"{account.subdomain}.kommo.com", "client_id": client_id}
        if params.get("state") is not None:
            query["state"] = params["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{httpx.QueryParams(query)}", status_code=302)

    async def _oauth_token(self, request: Request) -> Response:
        """``POST /oauth2/access_token``: grant_type authorization_code or refresh_token, JSON or form."""
        body = await self._read_oauth_body(request)
        grant_type = body.get("grant_type")
        client_id = body.get("client_id")
        client_secret = body.get("client_secret")
        if not client_id or not client_secret or grant_type not in ("authorization_code", "refresh_token"):
            raise _Problem(400, "client_id, client_secret and a supported grant_type are required")
        now = self.now()
        if grant_type == "authorization_code":
            code = body.get("code") or ""
            # Popped before any check: a code is single use even when the exchange fails.
            grant = self._codes.pop(code, None)
            if grant is None:
                revoked = "Authorization code has been revoked"
                raise _Problem(400, revoked, extra={"hint": revoked})
            if grant.expires_at <= now:
                expired = "Authorization code has expired"
                raise _Problem(400, expired, extra={"hint": expired})
            if grant.redirect_uri and body.get("redirect_uri") and body["redirect_uri"] != grant.redirect_uri:
                raise _Problem(400, "redirect_uri does not match the authorization request")
        else:
            refresh = body.get("refresh_token") or ""
            grant = self._refresh.get(refresh)
            if grant is None:
                raise _Problem(401, "The refresh token is invalid", extra={"hint": "Token has been revoked"})
            if grant.expires_at <= now:
                raise _Problem(401, "The refresh token is invalid", extra={"hint": "Token has expired"})
        account = self.accounts.get(grant.account_id)
        if account is None or account.client_id != client_id or account.client_secret != client_secret:
            raise _Problem(401, "Client authentication failed")
        if grant_type == "refresh_token":
            # Single use: the old refresh token dies with this successful rotation.
            self._refresh.pop(body.get("refresh_token") or "", None)
        pair = self.issue_tokens(account)
        return JSONResponse(pair.model_dump())

    @staticmethod
    async def _read_oauth_body(request: Request) -> dict[str, str]:
        content_type = request.headers.get("content-type", "")
        try:
            if content_type.startswith("application/x-www-form-urlencoded"):
                form = await request.form()
                return {k: str(v) for k, v in form.items()}
            data = await request.json()
        except ValueError:
            raise _Problem(400, "Body must be JSON or form-encoded") from None
        if not isinstance(data, dict):
            raise _Problem(400, "Body must be a JSON object")
        return {str(k): str(v) for k, v in data.items() if v is not None}

    # ------------------------------------------------------------------ rendering

    def _render_lead(self, lead: Mapping[str, Any], base: str, *, with_contacts: bool) -> dict[str, Any]:
        out = copy.deepcopy(dict(lead))
        embedded = out["_embedded"]
        if not with_contacts:
            embedded.pop("contacts", None)
        out["_links"] = {"self": {"href": f"{base}/api/v4/leads/{lead['id']}"}}
        return out

    def _render_pipeline(self, pipeline: Mapping[str, Any], base: str) -> dict[str, Any]:
        out = {k: v for k, v in pipeline.items() if k != "statuses"}
        statuses = [
            {
                **s,
                "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines/{pipeline['id']}/statuses/{s['id']}"}},
            }
            for s in pipeline["statuses"]
        ]
        out["_links"] = {"self": {"href": f"{base}/api/v4/leads/pipelines/{pipeline['id']}"}}
        out["_embedded"] = {"statuses": statuses}
        return out

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _paginate(self, request: Request, items: list[dict[str, Any]], key: str) -> Response:
        page = _int_param(request, "page", 1) or 1
        limit = _int_param(request, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
        if page < 1:
            raise _invalid([("0", "page", "page must be >= 1")])
        if not 1 <= limit <= MAX_LIMIT:
            raise _invalid([("0", "limit", f"limit must be between 1 and {MAX_LIMIT}")])
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            # Kommo answers an empty list with 204 and no body at all.
            return Response(status_code=204)
        links: dict[str, Any] = {"self": {"href": str(request.url)}}
        if page * limit < len(items):
            links["next"] = {"href": str(request.url.include_query_params(page=page + 1))}
        if page > 1:
            links["prev"] = {"href": str(request.url.include_query_params(page=page - 1))}
        return _hal({"_page": page, "_links": links, "_embedded": {key: chunk}})

    # ------------------------------------------------------------------ API v4 endpoints

    async def _get_account(self, request: Request) -> Response:
        account = self._api_account(request)
        body: dict[str, Any] = {
            "id": account.id,
            "name": account.name,
            "subdomain": account.subdomain,
            "created_at": account.created_at,
            "created_by": 0,
            "updated_at": account.created_at,
            "updated_by": 0,
            "current_user_id": next(iter(account.users)),
            "country": "US",
            "currency": "USD",
            "currency_symbol": "$",
            "customers_mode": "disabled",
            "is_unsorted_on": True,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": False,
            "contact_name_display_order": 1,
            "_links": {"self": {"href": f"{self._base(request)}/api/v4/account"}},
        }
        if "amojo_id" in request.query_params.get("with", "").split(","):
            body["amojo_id"] = account.amojo_id
        return _hal(body)

    async def _list_leads(self, request: Request) -> Response:
        account = self._api_account(request)
        params = request.query_params
        leads = [lead for lead in account.leads.values() if not lead["is_deleted"]]
        since = _int_param(request, "filter[updated_at][from]")
        until = _int_param(request, "filter[updated_at][to]")
        if since is not None:
            leads = [lead for lead in leads if lead["updated_at"] >= since]
        if until is not None:
            leads = [lead for lead in leads if lead["updated_at"] <= until]
        ids: set[int] = set()
        for key, value in params.multi_items():
            if key == "filter[id]" or key.startswith("filter[id]["):
                try:
                    ids.add(int(value))
                except ValueError:
                    raise _invalid([("0", key, "ids must be integers")]) from None
        if ids:
            leads = [lead for lead in leads if lead["id"] in ids]
        query = params.get("query")
        if query:
            leads = [lead for lead in leads if query.lower() in lead["name"].lower()]
        leads.sort(key=lambda lead: lead["id"])
        for key, direction in params.items():
            if key.startswith("order[") and key.endswith("]"):
                order_field = key[6:-1]
                if order_field not in ("id", "created_at", "updated_at") or direction not in ("asc", "desc"):
                    raise _invalid([("0", key, "order by id|created_at|updated_at, asc|desc")])
                leads.sort(key=lambda lead: (lead[order_field], lead["id"]), reverse=direction == "desc")
        with_contacts = "contacts" in params.get("with", "").split(",")
        base = self._base(request)
        rendered = [self._render_lead(lead, base, with_contacts=with_contacts) for lead in leads]
        return self._paginate(request, rendered, "leads")

    def _find_lead(self, account: SandboxAccount, lead_id: int) -> dict[str, Any]:
        lead = account.leads.get(lead_id)
        if lead is None or lead["is_deleted"]:
            raise _Problem(404, f"Lead {lead_id} not found")
        return lead

    async def _get_lead(self, request: Request, lead_id: int) -> Response:
        account = self._api_account(request)
        lead = self._find_lead(account, lead_id)
        with_contacts = "contacts" in request.query_params.get("with", "").split(",")
        return _hal(self._render_lead(lead, self._base(request), with_contacts=with_contacts))

    async def _json_body(self, request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise _Problem(400, "Body must be valid JSON") from None

    async def _patch_lead(self, request: Request, lead_id: int) -> Response:
        account = self._api_account(request)
        lead = self._find_lead(account, lead_id)
        patch = await self._json_body(request)
        if not isinstance(patch, dict):
            raise _invalid([("0", "", "body must be a JSON object")])
        updated, errors = self._prepare_lead_update(account, lead, patch, "0")
        if errors or updated is None:
            raise _invalid(errors)
        account.leads[lead_id] = updated
        return _hal(
            {
                "id": lead_id,
                "updated_at": updated["updated_at"],
                "_links": {"self": {"href": f"{self._base(request)}/api/v4/leads/{lead_id}"}},
            }
        )

    async def _patch_leads(self, request: Request) -> Response:
        account = self._api_account(request)
        patches = await self._json_body(request)
        if not isinstance(patches, list) or not patches:
            raise _invalid([("0", "", "body must be a non-empty JSON array")])
        if len(patches) > MAX_LIMIT:
            raise _invalid([("0", "", f"at most {MAX_LIMIT} leads per request")])
        errors: list[tuple[str, str, str]] = []
        prepared: list[dict[str, Any]] = []
        for index, patch in enumerate(patches):
            request_id = str(index)
            if not isinstance(patch, dict) or not _is_int(patch.get("id")):
                errors.append((request_id, "id", "each item needs an integer id"))
                continue
            lead = account.leads.get(patch["id"])
            if lead is None or lead["is_deleted"]:
                errors.append((request_id, "id", f"lead {patch['id']} not found"))
                continue
            updated, item_errors = self._prepare_lead_update(account, lead, patch, request_id)
            errors.extend(item_errors)
            if updated is not None:
                prepared.append(updated)
        if errors:
            # All or nothing, so a retried batch never half-applies.
            raise _invalid(errors)
        for updated in prepared:
            account.leads[updated["id"]] = updated
        base = self._base(request)
        items = [
            {
                "id": u["id"],
                "updated_at": u["updated_at"],
                "request_id": str(i),
                "_links": {"self": {"href": f"{base}/api/v4/leads/{u['id']}"}},
            }
            for i, u in enumerate(prepared)
        ]
        return _hal({"_links": {"self": {"href": f"{base}/api/v4/leads"}}, "_embedded": {"leads": items}})

    def _resolve_tags(
        self,
        account: SandboxAccount,
        raw: Any,
        path: str,
        request_id: str,
        errors: list[tuple[str, str, str]],
    ) -> list[dict[str, Any]]:
        if not isinstance(raw, list):
            errors.append((request_id, path, "must be an array of {name} or {id}"))
            return []
        tags: list[dict[str, Any]] = []
        for index, item in enumerate(raw):
            if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
                tags.append(self._tag(account, item["name"]))
            elif isinstance(item, dict) and _is_int(item.get("id")):
                found = next((t for t in account.tags.values() if t["id"] == item["id"]), None)
                if found is None:
                    errors.append((request_id, f"{path}.{index}.id", "unknown tag id"))
                else:
                    tags.append(dict(found))
            else:
                errors.append((request_id, f"{path}.{index}", "must be {name} or {id}"))
        return tags

    def _resolve_custom_fields(
        self,
        account: SandboxAccount,
        raw: Any,
        current: list[dict[str, Any]] | None,
        request_id: str,
        errors: list[tuple[str, str, str]],
    ) -> list[dict[str, Any]] | None:
        path = "custom_fields_values"
        if not isinstance(raw, list):
            errors.append((request_id, path, "must be an array"))
            return current
        by_id = {int(v["field_id"]): v for v in current or []}
        for index, item in enumerate(raw):
            where = f"{path}.{index}"
            raw_id = item.get("field_id") if isinstance(item, dict) else None
            if not _is_int(raw_id):
                errors.append((request_id, f"{where}.field_id", "field_id must be an integer"))
                continue
            field_id = raw_id
            definition = account.lead_fields.get(field_id)
            if definition is None:
                errors.append((request_id, f"{where}.field_id", f"unknown field {field_id}"))
                continue
            values = item.get("values")
            if not values:
                by_id.pop(field_id, None)  # null/[] clears the field, as in Kommo
                continue
            if not isinstance(values, list):
                errors.append((request_id, f"{where}.values", "values must be an array"))
                continue
            normalized: list[dict[str, Any]] = []
            for vi, value in enumerate(values):
                if not isinstance(value, dict):
                    errors.append((request_id, f"{where}.values.{vi}", "must be an object"))
                    continue
                if definition["enums"]:
                    enum = next(
                        (
                            e
                            for e in definition["enums"]
                            if e["id"] == value.get("enum_id") or e["value"] == value.get("value")
                        ),
                        None,
                    )
                    if enum is None:
                        errors.append((request_id, f"{where}.values.{vi}", "unknown enum"))
                        continue
                    normalized.append({"value": enum["value"], "enum_id": enum["id"]})
                elif "value" in value:
                    normalized.append({"value": value["value"]})
                else:
                    errors.append((request_id, f"{where}.values.{vi}.value", "value is required"))
            by_id[field_id] = {
                "field_id": field_id,
                "field_name": definition["name"],
                "field_code": definition["code"],
                "field_type": definition["type"],
                "values": normalized,
            }
        return list(by_id.values()) or None

    def _prepare_lead_update(
        self, account: SandboxAccount, lead: Mapping[str, Any], patch: Mapping[str, Any], request_id: str
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
        """Validate a lead patch and build the updated lead without storing it."""
        errors: list[tuple[str, str, str]] = []
        new = copy.deepcopy(dict(lead))

        def err(path: str, detail: str) -> None:
            errors.append((request_id, path, detail))

        if "name" in patch:
            if isinstance(patch["name"], str):
                new["name"] = patch["name"]
            else:
                err("name", "must be a string")
        if "price" in patch:
            if _is_int(patch["price"]) and patch["price"] >= 0:
                new["price"] = patch["price"]
            else:
                err("price", "must be a non-negative integer")
        if "responsible_user_id" in patch:
            if patch["responsible_user_id"] in account.users:
                new["responsible_user_id"] = patch["responsible_user_id"]
            else:
                err("responsible_user_id", "unknown user")
        if "loss_reason_id" in patch:
            if patch["loss_reason_id"] is None or _is_int(patch["loss_reason_id"]):
                new["loss_reason_id"] = patch["loss_reason_id"]
            else:
                err("loss_reason_id", "must be an integer")

        pipeline_id = patch.get("pipeline_id", lead["pipeline_id"])
        pipeline = account.pipelines.get(pipeline_id) if _is_int(pipeline_id) else None
        if pipeline is None:
            err("pipeline_id", f"unknown pipeline {pipeline_id}")
        elif "status_id" in patch:
            if any(s["id"] == patch["status_id"] for s in pipeline["statuses"]) and _is_int(patch["status_id"]):
                new["status_id"], new["pipeline_id"] = patch["status_id"], pipeline["id"]
            else:
                err("status_id", f"status {patch['status_id']} is not in pipeline {pipeline['id']}")
        elif pipeline["id"] != lead["pipeline_id"]:
            # Moving pipelines without a status lands in the new pipeline's first stage.
            new["pipeline_id"] = pipeline["id"]
            new["status_id"] = next(s["id"] for s in pipeline["statuses"] if s["type"] == 0)

        if "custom_fields_values" in patch:
            new["custom_fields_values"] = self._resolve_custom_fields(
                account, patch["custom_fields_values"], lead["custom_fields_values"], request_id, errors
            )
        embedded = patch.get("_embedded")
        if isinstance(embedded, dict) and "tags" in embedded:
            new["_embedded"]["tags"] = self._resolve_tags(
                account, embedded["tags"], "_embedded.tags", request_id, errors
            )
        if "tags_to_add" in patch:
            names = {t["name"].lower() for t in new["_embedded"]["tags"]}
            for tag in self._resolve_tags(account, patch["tags_to_add"], "tags_to_add", request_id, errors):
                if tag["name"].lower() not in names:
                    new["_embedded"]["tags"].append(tag)
                    names.add(tag["name"].lower())
        if "tags_to_delete" in patch:
            drop = self._resolve_tags(account, patch["tags_to_delete"], "tags_to_delete", request_id, errors)
            drop_ids = {t["id"] for t in drop}
            new["_embedded"]["tags"] = [t for t in new["_embedded"]["tags"] if t["id"] not in drop_ids]

        if errors:
            return None, errors
        now = int(self.now())
        closed = (WON_STATUS_ID, LOST_STATUS_ID)
        if new["status_id"] != lead["status_id"]:
            new["closed_at"] = now if new["status_id"] in closed else None
        new["updated_at"] = max(now, int(lead["updated_at"]))
        return new, []

    async def _list_pipelines(self, request: Request) -> Response:
        account = self._api_account(request)
        base = self._base(request)
        pipelines = [self._render_pipeline(p, base) for p in account.pipelines.values()]
        return _hal(
            {
                "_total_items": len(pipelines),
                "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines"}},
                "_embedded": {"pipelines": pipelines},
            }
        )

    async def _get_pipeline(self, request: Request, pipeline_id: int) -> Response:
        account = self._api_account(request)
        pipeline = account.pipelines.get(pipeline_id)
        if pipeline is None:
            raise _Problem(404, f"Pipeline {pipeline_id} not found")
        return _hal(self._render_pipeline(pipeline, self._base(request)))

    async def _list_statuses(self, request: Request, pipeline_id: int) -> Response:
        account = self._api_account(request)
        pipeline = account.pipelines.get(pipeline_id)
        if pipeline is None:
            raise _Problem(404, f"Pipeline {pipeline_id} not found")
        statuses = self._render_pipeline(pipeline, self._base(request))["_embedded"]["statuses"]
        return _hal({"_total_items": len(statuses), "_embedded": {"statuses": statuses}})

    async def _list_lead_fields(self, request: Request) -> Response:
        account = self._api_account(request)
        return self._paginate(request, [dict(f) for f in account.lead_fields.values()], "custom_fields")

    async def _list_tags(self, request: Request) -> Response:
        account = self._api_account(request)
        return self._paginate(request, [dict(t) for t in account.tags.values()], "tags")

    async def _list_users(self, request: Request) -> Response:
        account = self._api_account(request)
        return self._paginate(request, [dict(u) for u in account.users.values()], "users")

    async def _get_contact(self, request: Request, contact_id: int) -> Response:
        account = self._api_account(request)
        contact = account.contacts.get(contact_id)
        if contact is None:
            raise _Problem(404, f"Contact {contact_id} not found")
        out = copy.deepcopy(contact)
        if "leads" not in request.query_params.get("with", "").split(","):
            out["_embedded"].pop("leads", None)
        out["_links"] = {"self": {"href": f"{self._base(request)}/api/v4/contacts/{contact_id}"}}
        return _hal(out)

    async def _add_lead_notes(self, request: Request, lead_id: int) -> Response:
        return await self._create_notes(request, lead_id)

    async def _add_notes(self, request: Request) -> Response:
        return await self._create_notes(request, None)

    async def _create_notes(self, request: Request, lead_id: int | None) -> Response:
        account = self._api_account(request)
        items = await self._json_body(request)
        if not isinstance(items, list) or not items:
            raise _invalid([("0", "", "body must be a non-empty JSON array")])
        errors: list[tuple[str, str, str]] = []
        for index, item in enumerate(items):
            rid = str(index)
            if not isinstance(item, dict):
                errors.append((rid, "", "must be an object"))
                continue
            entity_id = lead_id if lead_id is not None else item.get("entity_id")
            if not _is_int(entity_id) or entity_id not in account.leads:
                errors.append((rid, "entity_id", f"lead {entity_id} not found"))
            if item.get("note_type") not in NOTE_TYPES:
                errors.append((rid, "note_type", "unsupported note_type"))
            params = item.get("params")
            if not isinstance(params, dict) or (
                item.get("note_type") == "common" and not isinstance(params.get("text"), str)
            ):
                errors.append((rid, "params.text", "a common note needs params.text"))
        if errors:
            raise _invalid(errors)
        now = int(self.now())
        base = self._base(request)
        created: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            entity_id = lead_id if lead_id is not None else item["entity_id"]
            note = {
                "id": self._next_id(),
                "entity_id": entity_id,
                "created_by": 0,
                "updated_by": 0,
                "created_at": now,
                "updated_at": now,
                "responsible_user_id": account.leads[entity_id]["responsible_user_id"],
                "group_id": 0,
                "note_type": item["note_type"],
                "params": item["params"],
                "account_id": account.id,
            }
            account.notes.append(note)
            created.append(
                {
                    "id": note["id"],
                    "entity_id": entity_id,
                    "request_id": str(index),
                    "_links": {"self": {"href": f"{base}/api/v4/leads/{entity_id}/notes/{note['id']}"}},
                }
            )
        return _hal({"_links": {"self": {"href": f"{base}/api/v4/leads/notes"}}, "_embedded": {"notes": created}})

    async def _add_tasks(self, request: Request) -> Response:
        account = self._api_account(request)
        items = await self._json_body(request)
        if not isinstance(items, list) or not items:
            raise _invalid([("0", "", "body must be a non-empty JSON array")])
        errors: list[tuple[str, str, str]] = []
        for index, item in enumerate(items):
            rid = str(index)
            if not isinstance(item, dict):
                errors.append((rid, "", "must be an object"))
                continue
            if not isinstance(item.get("text"), str) or not item["text"]:
                errors.append((rid, "text", "text is required"))
            if not _is_int(item.get("complete_till")):
                errors.append((rid, "complete_till", "complete_till (unix time) is required"))
            if "entity_id" in item:
                store = {"leads": account.leads, "contacts": account.contacts}.get(item.get("entity_type", ""))
                if store is None:
                    errors.append((rid, "entity_type", "entity_type must be leads or contacts"))
                elif item["entity_id"] not in store:
                    errors.append((rid, "entity_id", "entity not found"))
            if "responsible_user_id" in item and item["responsible_user_id"] not in account.users:
                errors.append((rid, "responsible_user_id", "unknown user"))
        if errors:
            raise _invalid(errors)
        now = int(self.now())
        base = self._base(request)
        created: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            task = {
                "id": self._next_id(),
                "entity_id": item.get("entity_id"),
                "entity_type": item.get("entity_type"),
                "text": item["text"],
                "complete_till": item["complete_till"],
                "task_type_id": item.get("task_type_id", 1),
                "responsible_user_id": item.get("responsible_user_id", next(iter(account.users))),
                "is_completed": False,
                "created_at": now,
                "updated_at": now,
                "account_id": account.id,
            }
            account.tasks.append(task)
            created.append(
                {
                    "id": task["id"],
                    "request_id": str(index),
                    "_links": {"self": {"href": f"{base}/api/v4/tasks/{task['id']}"}},
                }
            )
        return _hal({"_links": {"self": {"href": f"{base}/api/v4/tasks"}}, "_embedded": {"tasks": created}})

    # ------------------------------------------------------------------ amojo

    async def _amojo_send(self, request: Request, scope_id: str) -> Response:
        """``POST /v2/origin/custom/{scope_id}``: verify MD5, Date and signature, then record the message."""
        account = next((a for a in self.accounts.values() if a.scope_id == scope_id), None)
        if account is None:
            raise _Problem(404, "Unknown scope_id")
        entry = request.scope.get(_ENTRY_KEY)
        if isinstance(entry, SandboxRequest):
            entry.account_id = account.id
        body = await request.body()
        headers = request.headers
        date = headers.get("date")
        md5 = headers.get("content-md5")
        content_type = headers.get("content-type", "")
        signature = headers.get("x-signature")
        if not date or not md5 or not signature:
            raise _Problem(400, "Date, Content-MD5 and X-Signature headers are required")
        if md5.lower() != signing.content_md5(body):
            raise _Problem(400, "Content-MD5 does not match the body")
        try:
            sent_at = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            raise _Problem(400, "Date must be an RFC 2822 date") from None
        if abs(self.now() - sent_at) > self.amojo_date_tolerance:
            raise _Problem(403, "Request Date is outside the signature validity window")
        if not signing.verify_request_signature(
            account.channel_secret,
            request.method,
            md5.lower(),
            content_type,
            date,
            request.url.path,
            signature,
        ):
            raise _Problem(403, "Invalid X-Signature")
        try:
            data = json.loads(body)
        except ValueError:
            raise _Problem(400, "Body must be valid JSON") from None
        payload = data.get("payload") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("event_type") != "new_message" or not isinstance(payload, dict):
            raise _Problem(400, "Expected event_type new_message with a payload")
        msgid, conversation_id = payload.get("msgid"), payload.get("conversation_id")
        sender, receiver, message = payload.get("sender"), payload.get("receiver"), payload.get("message")
        if not isinstance(msgid, str) or not msgid or not isinstance(conversation_id, str) or not conversation_id:
            raise _Problem(400, "payload.msgid and payload.conversation_id are required")
        if not isinstance(sender, dict) or not sender.get("id"):
            raise _Problem(400, "payload.sender.id is required")
        if receiver is not None and (not isinstance(receiver, dict) or not receiver.get("id")):
            raise _Problem(400, "payload.receiver.id is required when receiver is given")
        if not isinstance(message, dict) or message.get("type") != "text" or not isinstance(message.get("text"), str):
            raise _Problem(400, "payload.message must be {type: text, text: ...}")

        conversation_ref = self._conversations.setdefault((scope_id, conversation_id), str(uuid.uuid4()))
        ids = self._chat_ids.setdefault((scope_id, f"msg:{msgid}"), {})
        duplicate = bool(ids)
        if not duplicate:
            ids.update(
                {
                    "ref_id": str(uuid.uuid4()),
                    "sender_id": str(uuid.uuid4()),
                    "receiver_id": str(uuid.uuid4()) if receiver is not None else "",
                }
            )
        self.sent_messages.append(
            SandboxChatMessage(
                scope_id=scope_id,
                account_id=account.id,
                msgid=msgid,
                conversation_id=conversation_id,
                text=message.get("text"),
                sender=sender,
                receiver=receiver,
                received_at=self.now(),
                duplicate=duplicate,
                payload=payload,
            )
        )
        return JSONResponse(
            {
                "new_message": {
                    "conversation_id": conversation_ref,
                    "sender_id": ids["sender_id"],
                    "receiver_id": ids["receiver_id"],
                    "msgid": msgid,
                    "ref_id": ids["ref_id"],
                }
            }
        )

    @property
    def delivered_messages(self) -> list[SandboxChatMessage]:
        """``sent_messages`` without msgid duplicates: what the client actually saw."""
        return [m for m in self.sent_messages if not m.duplicate]
