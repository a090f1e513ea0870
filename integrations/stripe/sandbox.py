"""A local Stripe emulator served over real HTTP, for tests and the offline demo.

``StripeSandbox`` runs a FastAPI app with uvicorn inside the caller's asyncio loop on 127.0.0.1
and an ephemeral port::

    async with StripeSandbox() as stripe:
        price = stripe.add_price("pro_monthly", 4900)
        client = StripeClient(stripe.base_url, stripe.api_key)
        stripe.webhook_url = "http://127.0.0.1:8000/api/billing/webhook"

What it honours of Stripe's wire contract: ``/v1`` paths; ``Authorization: Bearer <key>`` or HTTP
basic with the key as user name (else 401); form-encoded bodies in bracket notation
(``metadata[k]=v``, ``line_items[0][price]=...``); JSON objects with ``object`` and prefixed ids;
``Idempotency-Key`` replays (24 h) and ``idempotency_error`` on reuse with other parameters;
``invalid_request_error`` with ``param`` and ``code`` (``parameter_missing``, ``parameter_unknown``,
``resource_missing``); a requests-per-second limit (429 ``rate_limit_error``; 25/s as in test
mode); injected 5xx (``fail_next``); ``Request-Id`` on every answer.

Events are built by the helpers (``complete_checkout``, ``set_subscription_status``,
``cancel_subscription``), signed as Stripe does (``Stripe-Signature``) and POSTed to
``webhook_url``; ``resend`` redelivers one with a fresh timestamp, as Stripe's retries do.
``/checkout/<id>`` and ``/billing_portal/<id>`` serve minimal hosted pages so a browser in the
demo can pay or cancel.

Time: ``now()`` is the injectable ``clock`` plus an offset moved by ``advance(seconds)``; it
drives ids' ``created``, period ends, session expiry (24 h), idempotency expiry, the rate-limit
window and webhook timestamps.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import html
import json
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from integrations.served_sandbox import ServedSandbox
from integrations.stripe import signing
from integrations.stripe.models import API_VERSION

__all__ = [
    "SUBSCRIPTION_STATUSES",
    "SandboxEvent",
    "SandboxRequest",
    "SandboxWebhookDelivery",
    "StripeSandbox",
    "decode_form",
]

DAY = 86400
PERIOD_SECONDS = 30 * DAY
SESSION_TTL = DAY
IDEMPOTENCY_TTL = DAY
SUBSCRIPTION_STATUSES = frozenset(
    {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"}
)
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
_ENTRY_KEY = "stripe_sandbox_entry"
_ALNUM = string.ascii_letters + string.digits
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
)


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _redact(key: str) -> str:
    """``sk_test_****abcd``: Stripe names the key it rejected without echoing the secret."""
    prefix, sep, rest = key.rpartition("_")
    head = f"{prefix}{sep}" if sep else ""
    body = rest if sep else key
    return f"{head}****{body[-4:]}" if len(body) > 4 else f"{head}****"


# --------------------------------------------------------------------------- records


@dataclass
class SandboxRequest:
    """One request the sandbox served, with its decoded form/query items and the answer's status."""

    method: str
    path: str
    query: str
    time: float
    request_id: str
    idempotency_key: str | None = None
    form: list[tuple[str, str]] = field(default_factory=list)
    status: int | None = None
    replayed: bool = False


@dataclass
class SandboxEvent:
    """An event the sandbox emitted; ``body`` is the exact bytes every delivery of it carries."""

    id: str
    type: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        """The event as JSON."""
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class SandboxWebhookDelivery:
    """One POST of an event to ``webhook_url`` and the status it got (None: no answer)."""

    url: str
    event_id: str
    event_type: str
    body: bytes
    signature: str
    status: int | None
    attempt: int = 1


@dataclass
class _Saved:
    fingerprint: tuple[str, tuple[tuple[str, str], ...]]
    body: dict[str, Any]
    request_id: str
    created: float


@dataclass
class _Checkout:
    line_items: list[tuple[str, int]]
    subscription_metadata: dict[str, str]


class _StripeProblem(Exception):
    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        return JSONResponse({"error": error}, status_code=self.status, headers=self.headers)


def _invalid(param: str | None, message: str, code: str | None = None, status: int = 400) -> _StripeProblem:
    return _StripeProblem(status, "invalid_request_error", message, code=code, param=param)


def _missing(param: str) -> _StripeProblem:
    return _invalid(param, f"Missing required param: {param}.", "parameter_missing")


def _no_such(kind: str, object_id: str, param: str, status: int = 400) -> _StripeProblem:
    return _invalid(param, f"No such {kind}: '{object_id}'", "resource_missing", status)


# --------------------------------------------------------------------------- form decoding


def decode_form(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn bracket-notation form items into nested dicts and lists, as Stripe reads them.

    ``line_items[0][price]`` becomes ``{"line_items": [{"price": ...}]}``; ``expand[]`` appends.
    Keys under ``metadata`` stay dict keys even when they look like indices.
    """
    root: dict[str, Any] = {}
    for key, value in items:
        match = _KEY.match(key)
        if match is None:
            raise _invalid(key, f"Invalid parameter name: {key}")
        path = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if part == "":
                if not last:
                    raise _invalid(key, f"Invalid parameter name: {key}")
                part = str(len(node))
            if last:
                if isinstance(node.get(part), dict):
                    raise _invalid(key, f"Invalid hash: {key} is given both as a value and as a hash")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise _invalid(key, f"Invalid hash: {key} is given both as a value and as a hash")
                node = child
    return {key: _listify(value, key == "metadata") for key, value in root.items()}


def _listify(value: Any, keep: bool) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v, k == "metadata") for k, v in value.items()}
    if not keep and converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# --------------------------------------------------------------------------- parameter checks


def _allow(params: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    known = {*allowed, "expand"}
    for key in params:
        if key not in known:
            name = f"{prefix}[{key}]" if prefix else key
            raise _invalid(name, f"Received unknown parameter: {name}", "parameter_unknown")


def _string(
    params: Mapping[str, Any], key: str, *, param: str | None = None, required: bool = False, max_length: int = 5000
) -> str | None:
    name = param or key
    value = params.get(key)
    # Stripe reads an empty string as "unset".
    if value is None or value == "":
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"Invalid string: {name} must be a string")
    if len(value) > max_length:
        raise _invalid(name, f"Invalid string: must be at most {max_length} characters")
    return value


def _required(params: Mapping[str, Any], key: str, *, param: str | None = None, max_length: int = 5000) -> str:
    value = _string(params, key, param=param, max_length=max_length)
    if value is None:
        raise _missing(param or key)
    return value


def _url(params: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = _string(params, key, required=required, max_length=5000)
    if value is not None and not value.startswith(("http://", "https://")):
        raise _invalid(key, "Not a valid URL", "url_invalid")
    return value


def _metadata(params: Mapping[str, Any], key: str = "metadata", prefix: str = "") -> dict[str, str]:
    name = f"{prefix}[{key}]" if prefix else key
    value = params.get(key)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise _invalid(name, f"Invalid hash: {name} must be a hash of strings")
    if len(value) > METADATA_MAX_KEYS:
        raise _invalid(name, f"Invalid {name}: you can specify up to {METADATA_MAX_KEYS} keys")
    out: dict[str, str] = {}
    for meta_key, meta_value in value.items():
        item = f"{name}[{meta_key}]"
        if not isinstance(meta_value, str):
            raise _invalid(item, f"Invalid string: {item} must be a string")
        if len(meta_key) > METADATA_KEY_MAX:
            raise _invalid(item, f"Metadata keys must be at most {METADATA_KEY_MAX} characters")
        if len(meta_value) > METADATA_VALUE_MAX:
            raise _invalid(item, f"Metadata values must be at most {METADATA_VALUE_MAX} characters")
        out[meta_key] = meta_value
    return out


def _positive_int(value: Any, param: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise _invalid(param, f"Invalid integer: {value}")
    number = int(value)
    if number < 1:
        raise _invalid(param, "This value must be greater than or equal to 1.")
    return number


# --------------------------------------------------------------------------- sandbox


class StripeSandbox(ServedSandbox):
    """In-memory Stripe emulator on a real local HTTP port (see module docstring).

    Objects are kept as plain dicts in Stripe's JSON shape (``customers``, ``prices``,
    ``checkout_sessions``, ``portal_sessions``, ``subscriptions``, ``invoices``); tests may read
    them. One exception: a stored subscription's ``items`` is a plain list whose ``price`` is an id,
    rendered as Stripe's list object with the full price on the way out. ``events`` holds every
    event emitted, ``requests`` every request, ``webhook_deliveries`` every delivery and its status.
    """

    demo_port = 8012

    def __init__(
        self,
        *,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        rate_limit: int | None = 25,
        rate_window: float = 1.0,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key or _new_id("sk_test_", 32)
        self.webhook_secret = webhook_secret or _new_id("whsec_", 32)
        self.webhook_url = webhook_url
        super().__init__(host, port)
        self._clock = clock
        self._offset = 0.0
        # None disables rate limiting, for tests that are not about it.
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.webhook_timeout = webhook_timeout

        self.customers: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.events: dict[str, SandboxEvent] = {}
        self.requests: list[SandboxRequest] = []
        self.webhook_deliveries: list[SandboxWebhookDelivery] = []
        self._checkouts: dict[str, _Checkout] = {}
        self._idempotency: dict[str, _Saved] = {}
        self._recent: deque[float] = deque()
        self._faults: deque[int] = deque()

        self.app = self._build_app()

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Sandbox time (unix seconds): the clock plus ``advance()`` offsets."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move sandbox time forward (session and idempotency expiry, rate window, timestamps)."""
        self._offset += seconds

    def _ts(self) -> int:
        return int(self.now())

    # ------------------------------------------------------------------ seeding and faults

    def add_price(
        self,
        lookup_key: str,
        unit_amount: int,
        currency: str = "usd",
        interval: str | None = "month",
        *,
        price_id: str | None = None,
        product_name: str | None = None,
    ) -> str:
        """Add a price to the catalogue and return its id; ``interval=None`` makes a one-time price.

        ``price_id`` pins the id (e.g. for a demo configuration that names it); lookup keys are unique.
        """
        if any(p["lookup_key"] == lookup_key for p in self.prices.values()):
            raise ValueError(f"lookup_key {lookup_key!r} already exists")
        if interval is not None and interval not in ("day", "week", "month", "year"):
            raise ValueError(f"unknown interval {interval!r}")
        new_id = price_id or _new_id("price_")
        if new_id in self.prices:
            raise ValueError(f"price {new_id!r} already exists")
        self.prices[new_id] = {
            "id": new_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": self._ts(),
            "currency": currency.lower(),
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": {},
            "nickname": product_name,
            "product": _new_id("prod_", 14),
            "recurring": (
                None if interval is None else {"interval": interval, "interval_count": 1, "usage_type": "licensed"}
            ),
            "type": "one_time" if interval is None else "recurring",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        }
        return new_id

    def price_id(self, lookup_key: str) -> str:
        """Id of the price with this lookup key."""
        for price in self.prices.values():
            if price["lookup_key"] == lookup_key:
                return str(price["id"])
        raise LookupError(f"no price with lookup_key {lookup_key!r}")

    def add_customer(
        self, email: str | None = None, name: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> str:
        """Create a customer directly (no request, no event) and return its id."""
        return str(self._new_customer(email, name, dict(metadata or {}))["id"])

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` authenticated API requests with ``status`` and Stripe's error body."""
        self._faults.extend([status] * n)

    # ------------------------------------------------------------------ objects

    def _new_customer(self, email: str | None, name: str | None, metadata: dict[str, str]) -> dict[str, Any]:
        customer: dict[str, Any] = {
            "id": _new_id("cus_", 14),
            "object": "customer",
            "balance": 0,
            "created": self._ts(),
            "currency": None,
            "delinquent": False,
            "description": None,
            "email": email,
            "livemode": False,
            "metadata": metadata,
            "name": name,
            "phone": None,
        }
        self.customers[customer["id"]] = customer
        return customer

    def _checkout_session(self, session_id: str) -> dict[str, Any]:
        session = self.checkout_sessions[session_id]
        # Sessions expire lazily: the moment anyone looks after ``expires_at``.
        if session["status"] == "open" and self.now() >= session["expires_at"]:
            session["status"] = "expired"
            session["url"] = None
        return session

    def _render_subscription(self, subscription: Mapping[str, Any]) -> dict[str, Any]:
        rendered = copy.deepcopy(dict(subscription))
        data = []
        for item in subscription["items"]:
            entry = copy.deepcopy(item)
            entry["price"] = copy.deepcopy(self.prices[item["price"]])
            data.append(entry)
        rendered["items"] = {
            "object": "list",
            "data": data,
            "has_more": False,
            "total_count": len(data),
            "url": f"/v1/subscription_items?subscription={subscription['id']}",
        }
        return rendered

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        try:
            return self.subscriptions[subscription_id]
        except KeyError:
            raise LookupError(f"no subscription {subscription_id!r}") from None

    # ------------------------------------------------------------------ events and delivery

    def sign(self, payload: bytes | str, timestamp: int | None = None) -> str:
        """``Stripe-Signature`` for ``payload`` with the sandbox's webhook secret (default: now)."""
        body = payload.encode() if isinstance(payload, str) else payload
        return signing.sign(self.webhook_secret, body, self._ts() if timestamp is None else timestamp)

    def _event(
        self, event_type: str, obj: Mapping[str, Any], previous_attributes: Mapping[str, Any] | None = None
    ) -> SandboxEvent:
        data: dict[str, Any] = {"object": copy.deepcopy(dict(obj))}
        if previous_attributes is not None:
            data["previous_attributes"] = dict(previous_attributes)
        payload: dict[str, Any] = {
            "id": _new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._ts(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        # Pretty-printed like Stripe's deliveries: a receiver that re-serialises before verifying fails.
        event = SandboxEvent(payload["id"], event_type, json.dumps(payload, indent=2).encode())
        self.events[event.id] = event
        return event

    def _webhook_target(self) -> str:
        if self.webhook_url is None:
            raise RuntimeError("set StripeSandbox.webhook_url before sending events")
        return self.webhook_url

    async def _deliver(self, event: SandboxEvent) -> httpx.Response:
        url = self._webhook_target()
        signature = self.sign(event.body)
        attempt = 1 + sum(1 for d in self.webhook_deliveries if d.event_id == event.id)
        delivery = SandboxWebhookDelivery(url, event.id, event.type, event.body, signature, None, attempt)
        self.webhook_deliveries.append(delivery)
        response = await self._outbound_client().post(
            url,
            content=event.body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
            timeout=self.webhook_timeout,
        )
        delivery.status = response.status_code
        return response

    async def _deliver_all(self, events: Iterable[SandboxEvent]) -> httpx.Response:
        """Deliver in order; answer the first non-2xx response, else the last one.

        Stripe delivers each event independently, so a rejected one does not stop the rest.
        """
        responses = [await self._deliver(event) for event in events]
        return next((r for r in responses if not r.is_success), responses[-1])

    async def resend(self, event_id: str) -> httpx.Response:
        """Redeliver an event: same id and body, signed again with a fresh timestamp (a Stripe retry)."""
        try:
            event = self.events[event_id]
        except KeyError:
            raise LookupError(f"no event {event_id!r}") from None
        return await self._deliver(event)

    # ------------------------------------------------------------------ lifecycle helpers

    def _complete(self, session_id: str) -> list[SandboxEvent]:
        try:
            session = self._checkout_session(session_id)
        except KeyError:
            raise LookupError(f"no checkout session {session_id!r}") from None
        if session["status"] != "open":
            raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
        checkout = self._checkouts[session_id]
        now = self._ts()
        customer_id = session["customer"]
        if customer_id is None:
            # Subscription mode always ends with a customer; Checkout creates one from the e-mail.
            customer_id = self._new_customer(session["customer_email"], None, {})["id"]
        subscription_id = _new_id("sub_")
        first_price = self.prices[checkout.line_items[0][0]]
        self.subscriptions[subscription_id] = {
            "id": subscription_id,
            "object": "subscription",
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": first_price["currency"],
            "current_period_end": now + PERIOD_SECONDS,
            "current_period_start": now,
            "customer": customer_id,
            "ended_at": None,
            "items": [
                {
                    "id": _new_id("si_", 14),
                    "object": "subscription_item",
                    "created": now,
                    "price": price_id,
                    "quantity": quantity,
                    "subscription": subscription_id,
                }
                for price_id, quantity in checkout.line_items
            ],
            "latest_invoice": None,
            "livemode": False,
            "metadata": dict(checkout.subscription_metadata),
            "start_date": now,
            "status": "active",
        }
        session.update(
            customer=customer_id, subscription=subscription_id, status="complete", payment_status="paid", url=None
        )
        subscription = self._render_subscription(self.subscriptions[subscription_id])
        return [
            self._event("checkout.session.completed", session),
            self._event("customer.subscription.created", subscription),
        ]

    async def complete_checkout(self, session_id: str) -> httpx.Response:
        """Pay an open Checkout session: create its subscription (``active``, period end +30 days).

        Sends ``checkout.session.completed`` then ``customer.subscription.created``. Raises
        ``LookupError`` for an unknown session and ``ValueError`` if it is completed or expired.
        """
        # Checked before anything changes, so a missing URL leaves no undelivered half-state behind.
        self._webhook_target()
        return await self._deliver_all(self._complete(session_id))

    def _status_events(self, subscription_id: str, status: str) -> list[SandboxEvent]:
        if status not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"unknown subscription status {status!r}")
        subscription = self._subscription(subscription_id)
        if status == "canceled":
            return self._cancel_events(subscription_id, at_period_end=False)
        previous = {"status": subscription["status"]}
        subscription["status"] = status
        events = [self._event("customer.subscription.updated", self._render_subscription(subscription), previous)]
        if status == "past_due":
            events.append(self._event("invoice.payment_failed", self._failed_invoice(subscription)))
        return events

    def _failed_invoice(self, subscription: dict[str, Any]) -> dict[str, Any]:
        now = self._ts()
        amount = sum(self.prices[i["price"]]["unit_amount"] * i["quantity"] for i in subscription["items"])
        invoice = {
            "id": _new_id("in_"),
            "object": "invoice",
            "amount_due": amount,
            "amount_paid": 0,
            "attempt_count": 1,
            "billing_reason": "subscription_cycle",
            "created": now,
            "currency": subscription["currency"],
            "customer": subscription["customer"],
            "livemode": False,
            "next_payment_attempt": now + 3 * DAY,
            "paid": False,
            "period_end": subscription["current_period_end"],
            "period_start": subscription["current_period_start"],
            "status": "open",
            "subscription": subscription["id"],
        }
        self.invoices[invoice["id"]] = invoice
        subscription["latest_invoice"] = invoice["id"]
        return invoice

    async def set_subscription_status(self, subscription_id: str, status: str) -> httpx.Response:
        """Move a subscription to ``status`` and send ``customer.subscription.updated``.

        ``past_due`` also sends ``invoice.payment_failed``; ``canceled`` is an immediate
        cancellation (``customer.subscription.deleted``), as Stripe reports it.
        """
        self._webhook_target()
        return await self._deliver_all(self._status_events(subscription_id, status))

    def _cancel_events(self, subscription_id: str, *, at_period_end: bool) -> list[SandboxEvent]:
        subscription = self._subscription(subscription_id)
        if subscription["status"] == "canceled":
            raise ValueError(f"subscription {subscription_id} is already canceled")
        now = self._ts()
        if at_period_end:
            previous = {
                "cancel_at": subscription["cancel_at"],
                "cancel_at_period_end": subscription["cancel_at_period_end"],
                "canceled_at": subscription["canceled_at"],
            }
            subscription.update(
                cancel_at=subscription["current_period_end"], cancel_at_period_end=True, canceled_at=now
            )
            return [self._event("customer.subscription.updated", self._render_subscription(subscription), previous)]
        subscription.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False)
        return [self._event("customer.subscription.deleted", self._render_subscription(subscription))]

    async def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> httpx.Response:
        """Cancel at period end (``customer.subscription.updated`` with ``cancel_at_period_end``)
        or now (status ``canceled``, ``customer.subscription.deleted``)."""
        self._webhook_target()
        return await self._deliver_all(self._cancel_events(subscription_id, at_period_end=at_period_end))

    # ------------------------------------------------------------------ app

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Stripe sandbox", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(_StripeProblem)
        async def on_problem(request: Request, exc: _StripeProblem) -> Response:
            return exc.response()

        @app.exception_handler(StarletteHTTPException)
        async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
            # Stripe answers an unknown path or method with 404 whatever the method.
            message = f"Unrecognized request URL ({request.method}: {request.url.path})."
            return _invalid(None, message, status=404).response()

        @app.middleware("http")
        async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            entry = SandboxRequest(
                request.method,
                request.url.path,
                request.url.query,
                self.now(),
                _new_id("req_", 14),
                request.headers.get("idempotency-key"),
            )
            request.scope[_ENTRY_KEY] = entry
            self.requests.append(entry)
            if request.url.path.startswith("/v1/"):
                denied = self._admit(request)
                response = denied.response() if denied is not None else await call_next(request)
                response.headers["Request-Id"] = entry.request_id
                response.headers["Stripe-Version"] = request.headers.get("stripe-version", API_VERSION)
            else:
                response = await call_next(request)
            entry.status = response.status_code
            return response

        app.add_api_route("/v1/customers", self._post(self._create_customer), methods=["POST"])
        app.add_api_route("/v1/customers/{object_id}", self._get(self._get_customer), methods=["GET"])
        app.add_api_route("/v1/checkout/sessions", self._post(self._create_checkout_session), methods=["POST"])
        app.add_api_route(
            "/v1/checkout/sessions/{object_id}", self._get(self._get_checkout_session), methods=["GET"]
        )
        app.add_api_route("/v1/billing_portal/sessions", self._post(self._create_portal_session), methods=["POST"])
        app.add_api_route("/v1/subscriptions/{object_id}", self._get(self._get_subscription), methods=["GET"])
        app.add_api_route("/v1/prices/{object_id}", self._get(self._get_price), methods=["GET"])

        app.add_api_route("/checkout/{object_id}", self._checkout_page, methods=["GET"])
        app.add_api_route("/checkout/{object_id}", self._checkout_pay, methods=["POST"])
        app.add_api_route("/billing_portal/{object_id}", self._portal_page, methods=["GET"])
        app.add_api_route(
            "/billing_portal/{object_id}/subscriptions/{subscription_id}/cancel", self._portal_cancel, methods=["POST"]
        )
        return app

    def _admit(self, request: Request) -> _StripeProblem | None:
        """Authenticate, then apply the rate limit and injected faults, in Stripe's order."""
        key = self._presented_key(request.headers.get("authorization", ""))
        challenge = {"WWW-Authenticate": 'Basic realm="Stripe"'}
        if key is None:
            return _StripeProblem(401, "invalid_request_error", _NO_KEY, headers=challenge)
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            message = f"Invalid API Key provided: {_redact(key)}"
            return _StripeProblem(401, "invalid_request_error", message, headers=challenge)
        if self.rate_limit is not None:
            now = self.now()
            while self._recent and self._recent[0] <= now - self.rate_window:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return _StripeProblem(
                    429,
                    "rate_limit_error",
                    "Request rate limit exceeded. You can learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                )
            # Only admitted requests use the budget, so a client that backs off recovers at once.
            self._recent.append(now)
        if self._faults:
            status = self._faults.popleft()
            kind = "api_error" if status >= 500 else "rate_limit_error" if status == 429 else "invalid_request_error"
            return _StripeProblem(status, kind, f"Injected fault (HTTP {status}).")
        return None

    @staticmethod
    def _presented_key(header: str) -> str | None:
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return credentials or None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[0] or None
        return None

    @staticmethod
    def _entry(request: Request) -> SandboxRequest | None:
        entry = request.scope.get(_ENTRY_KEY)
        return entry if isinstance(entry, SandboxRequest) else None

    def _post(
        self, handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            content_type = request.headers.get("content-type", "")
            if raw and not content_type.startswith("application/x-www-form-urlencoded"):
                raise _invalid(
                    None, "Invalid request: the body must be application/x-www-form-urlencoded (bracket notation)."
                )
            try:
                items = parse_qsl(raw.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                raise _invalid(None, "Invalid request: the body is not valid UTF-8.") from None
            entry = self._entry(request)
            if entry is not None:
                entry.form = items
            key = request.headers.get("idempotency-key")
            fingerprint = (request.url.path, tuple(sorted(items)))
            if key is not None:
                if not key or len(key) > 255:
                    raise _invalid(None, "Idempotency-Key must be 1 to 255 characters long.")
                saved = self._saved(key)
                if saved is not None:
                    if saved.fingerprint != fingerprint:
                        raise _StripeProblem(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were "
                            f"first used with. Try using a key other than '{key}' if you meant to execute a "
                            "different request.",
                        )
                    if entry is not None:
                        entry.replayed = True
                    return JSONResponse(
                        saved.body, headers={"Idempotent-Replayed": "true", "Original-Request": saved.request_id}
                    )
            body = handler(decode_form(items))
            # Only a request that ran is saved: Stripe keeps no result for one that failed validation.
            if key is not None:
                request_id = entry.request_id if entry is not None else ""
                self._idempotency[key] = _Saved(fingerprint, copy.deepcopy(body), request_id, self.now())
            return JSONResponse(body)

        return endpoint

    def _saved(self, key: str) -> _Saved | None:
        saved = self._idempotency.get(key)
        if saved is not None and self.now() - saved.created >= IDEMPOTENCY_TTL:
            del self._idempotency[key]
            return None
        return saved

    def _get(self, handler: Callable[[str], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            items = parse_qsl(request.url.query, keep_blank_values=True)
            entry = self._entry(request)
            if entry is not None:
                entry.form = items
            _allow(decode_form(items), ())
            return JSONResponse(handler(request.path_params["object_id"]))

        return endpoint

    # ------------------------------------------------------------------ API endpoints

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, ("email", "name", "description", "phone", "metadata"))
        email = _string(params, "email", max_length=512)
        if email is not None and "@" not in email:
            raise _invalid("email", f"Invalid email address: {email}", "email_invalid")
        customer = self._new_customer(email, _string(params, "name", max_length=256), _metadata(params))
        customer["description"] = _string(params, "description")
        customer["phone"] = _string(params, "phone", max_length=20)
        return copy.deepcopy(customer)

    def _get_customer(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise _no_such("customer", customer_id, "id", 404)
        return copy.deepcopy(self.customers[customer_id])

    def _create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(
            params,
            (
                "mode",
                "customer",
                "customer_email",
                "line_items",
                "success_url",
                "cancel_url",
                "client_reference_id",
                "metadata",
                "subscription_data",
            ),
        )
        mode = _required(params, "mode")
        if mode not in ("payment", "setup", "subscription"):
            raise _invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if mode != "subscription":
            raise _invalid("mode", "The Stripe sandbox only emulates mode=subscription.")
        customer = _string(params, "customer")
        customer_email = _string(params, "customer_email")
        if customer is not None and customer_email is not None:
            raise _invalid("customer", "You may only specify one of these parameters: customer, customer_email.")
        if customer is not None and customer not in self.customers:
            raise _no_such("customer", customer, "customer")
        line_items = self._line_items(params.get("line_items"))
        success_url = _url(params, "success_url", required=True)
        cancel_url = _url(params, "cancel_url")
        client_reference_id = _string(params, "client_reference_id", max_length=200)
        metadata = _metadata(params)
        subscription_data = params.get("subscription_data") or {}
        if not isinstance(subscription_data, dict):
            raise _invalid("subscription_data", "Invalid hash: subscription_data must be a hash")
        _allow(subscription_data, ("metadata",), "subscription_data")
        subscription_metadata = _metadata(subscription_data, prefix="subscription_data")

        now = self._ts()
        session_id = _new_id("cs_test_", 58)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_total": sum(self.prices[p]["unit_amount"] * q for p, q in line_items),
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "created": now,
            "currency": self.prices[line_items[0][0]]["currency"],
            "customer": customer,
            "customer_email": customer_email,
            "expires_at": now + SESSION_TTL,
            "livemode": False,
            "metadata": metadata,
            "mode": mode,
            "payment_status": "unpaid",
            "status": "open",
            "subscription": None,
            "success_url": success_url,
            "url": f"{self.base_url}/checkout/{session_id}",
        }
        self.checkout_sessions[session_id] = session
        self._checkouts[session_id] = _Checkout(line_items, subscription_metadata)
        return copy.deepcopy(session)

    def _line_items(self, value: Any) -> list[tuple[str, int]]:
        if value is None or value == "":
            raise _missing("line_items")
        if not isinstance(value, list) or not value:
            raise _invalid("line_items", "Invalid array: line_items must be an array of hashes")
        out: list[tuple[str, int]] = []
        for index, item in enumerate(value):
            name = f"line_items[{index}]"
            if not isinstance(item, dict):
                raise _invalid(name, f"Invalid hash: {name} must be a hash")
            _allow(item, ("price", "quantity"), name)
            price_id = _required(item, "price", param=f"{name}[price]")
            if price_id not in self.prices:
                raise _no_such("price", price_id, f"{name}[price]")
            if "quantity" not in item or item["quantity"] == "":
                raise _missing(f"{name}[quantity]")
            out.append((price_id, _positive_int(item["quantity"], f"{name}[quantity]")))
        if not any(self.prices[p]["recurring"] is not None for p, _ in out):
            raise _invalid(
                "line_items", "You must specify at least one recurring price in `subscription` mode when using prices."
            )
        return out

    def _get_checkout_session(self, session_id: str) -> dict[str, Any]:
        if session_id not in self.checkout_sessions:
            raise _no_such("checkout.session", session_id, "session", 404)
        return copy.deepcopy(self._checkout_session(session_id))

    def _create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
        _allow(params, ("customer", "return_url"))
        customer = _required(params, "customer")
        if customer not in self.customers:
            raise _no_such("customer", customer, "customer")
        return_url = _url(params, "return_url")
        session_id = _new_id("bps_")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "created": self._ts(),
            "customer": customer,
            "livemode": False,
            "locale": None,
            "return_url": return_url,
            "url": f"{self.base_url}/billing_portal/{session_id}",
        }
        self.portal_sessions[session_id] = session
        return copy.deepcopy(session)

    def _get_subscription(self, subscription_id: str) -> dict[str, Any]:
        if subscription_id not in self.subscriptions:
            raise _no_such("subscription", subscription_id, "id", 404)
        return self._render_subscription(self.subscriptions[subscription_id])

    def _get_price(self, price_id: str) -> dict[str, Any]:
        if price_id not in self.prices:
            raise _no_such("price", price_id, "price", 404)
        return copy.deepcopy(self.prices[price_id])

    # ------------------------------------------------------------------ hosted pages (demo)

    @staticmethod
    def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
            status_code=status,
        )

    async def _checkout_page(self, request: Request) -> Response:
        session_id = request.path_params["object_id"]
        if session_id not in self.checkout_sessions:
            return self._page("Checkout session not found", "", 404)
        session = self._checkout_session(session_id)
        if session["status"] != "open":
            return self._page(f"This checkout session is {session['status']}", "", 410)
        lines = "".join(
            f"<li>{html.escape(str(self.prices[p]['lookup_key']))} &times; {q}: "
            f"{self.prices[p]['unit_amount'] / 100:.2f} {html.escape(self.prices[p]['currency'].upper())}</li>"
            for p, q in self._checkouts[session_id].line_items
        )
        cancel = session["cancel_url"]
        cancel_link = f"<p><a href='{html.escape(cancel)}'>Cancel</a></p>" if cancel else ""
        form = f"<form method='post' action='/checkout/{html.escape(session_id)}'><button>Pay (sandbox)</button></form>"
        return self._page("Stripe sandbox checkout", f"<ul>{lines}</ul>{form}{cancel_link}")

    async def _checkout_pay(self, request: Request) -> Response:
        session_id = request.path_params["object_id"]
        try:
            events = self._complete(session_id)
        except LookupError:
            return self._page("Checkout session not found", "", 404)
        except ValueError as exc:
            return self._page(str(exc), "", 410)
        await self._deliver_quietly(events)
        target = str(self.checkout_sessions[session_id]["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
        return RedirectResponse(target, status_code=303)

    async def _portal_page(self, request: Request) -> Response:
        session_id = request.path_params["object_id"]
        session = self.portal_sessions.get(session_id)
        if session is None:
            return self._page("Billing portal session not found", "", 404)
        rows = []
        for sub in self.subscriptions.values():
            if sub["customer"] != session["customer"]:
                continue
            action = ""
            if sub["status"] != "canceled" and not sub["cancel_at_period_end"]:
                target = f"/billing_portal/{html.escape(session_id)}/subscriptions/{html.escape(sub['id'])}/cancel"
                action = f"<form method='post' action='{target}'><button>Cancel at period end</button></form>"
            rows.append(f"<li>{html.escape(sub['id'])}: {html.escape(sub['status'])}{action}</li>")
        back = session["return_url"]
        back_link = f"<p><a href='{html.escape(back)}'>Return</a></p>" if back else ""
        return self._page("Stripe sandbox billing portal", f"<ul>{''.join(rows)}</ul>{back_link}")

    async def _portal_cancel(self, request: Request) -> Response:
        session_id = request.path_params["object_id"]
        subscription_id = request.path_params["subscription_id"]
        session = self.portal_sessions.get(session_id)
        sub = self.subscriptions.get(subscription_id)
        if session is None or sub is None or sub["customer"] != session["customer"]:
            return self._page("Not found", "", 404)
        try:
            events = self._cancel_events(subscription_id, at_period_end=True)
        except ValueError as exc:
            return self._page(str(exc), "", 409)
        await self._deliver_quietly(events)
        return RedirectResponse(f"/billing_portal/{session_id}", status_code=303)

    async def _deliver_quietly(self, events: list[SandboxEvent]) -> None:
        # A browser flow must not fail because our receiver is down: Stripe would retry later, and
        # the events stay in ``events`` for ``resend``.
        if self.webhook_url is None:
            return
        with contextlib.suppress(httpx.HTTPError):
            await self._deliver_all(events)
