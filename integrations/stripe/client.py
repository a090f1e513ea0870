"""Async HTTP client for the part of Stripe's API salesflow uses (customers, Checkout, portal, subscriptions).

It never retries: Temporal retries the activity, and POSTs carry an ``Idempotency-Key`` the caller
derives from its own business key, so a retried activity replays Stripe's first answer instead of
creating a second customer or session. Every non-2xx becomes a ``StripeError`` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ValidationError

from integrations.stripe.errors import StripeBadResponse, StripeTransportError, error_from_response
from integrations.stripe.models import API_VERSION, CheckoutSession, Customer, PortalSession, Price, Subscription

__all__ = ["STRIPE_API_BASE", "StripeClient", "encode_params"]

STRIPE_API_BASE = "https://api.stripe.com"

M = TypeVar("M", bound=BaseModel)


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten nested params into Stripe's bracket notation, in order.

    ``{"metadata": {"org_id": "o1"}, "line_items": [{"price": "p", "quantity": 1}]}`` becomes
    ``metadata[org_id]=o1``, ``line_items[0][price]=p``, ``line_items[0][quantity]=1``. ``None``
    is left out (Stripe reads an empty string as "unset"), booleans are ``true``/``false``.
    """
    out: list[tuple[str, str]] = []

    def walk(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub, item in value.items():
                walk(f"{key}[{sub}]", item)
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            for index, item in enumerate(value):
                walk(f"{key}[{index}]", item)
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        else:
            out.append((key, str(value)))

    for key, value in params.items():
        walk(key, value)
    return out


def _response_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _object_path(prefix: str, object_id: str) -> str:
    # An empty id would turn ``GET /v1/customers/{id}`` into the list endpoint; quoting keeps a
    # stray ``/`` or ``?`` in an id from reaching another endpoint.
    if not object_id:
        raise ValueError("an object id is required")
    return f"{prefix}/{quote(object_id, safe='')}"


class StripeClient:
    """Stripe API client for one secret key.

    ``base_url`` is ``STRIPE_API_BASE`` in production or the sandbox's URL; paths are under ``/v1``.
    ``http`` may be shared (it is then not closed here). Responses are parsed into ``models``;
    errors carry ``retryable`` for Temporal (see ``errors.py``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        api_version: str = API_VERSION,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.api_version = api_version
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

    # ------------------------------------------------------------------ plumbing

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Stripe-Version": self.api_version,
            "Accept": "application/json",
        }
        url = f"{self.base_url}/v1{path}"
        form = encode_params(params or {})
        try:
            if method == "GET":
                response = await self._http.get(url, params=urlencode(form), headers=headers, timeout=self._timeout)
            else:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                if idempotency_key is not None:
                    headers["Idempotency-Key"] = idempotency_key
                response = await self._http.request(
                    method, url, content=urlencode(form).encode(), headers=headers, timeout=self._timeout
                )
        except httpx.TimeoutException as exc:
            raise StripeTransportError(f"{method} {path}: timeout ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise StripeTransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(response.status_code, _response_body(response), response.headers)
        try:
            return response.json()
        except ValueError as exc:
            raise StripeBadResponse(f"{method} {path}: body is not JSON", status=response.status_code) from exc

    @staticmethod
    def _model(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise StripeBadResponse(f"unexpected {what} shape: {exc}") from exc

    # ------------------------------------------------------------------ customers

    async def create_customer(
        self,
        *,
        email: str,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        """``POST /v1/customers``."""
        params = {"email": email, "name": name, "metadata": dict(metadata or {})}
        data = await self._request("POST", "/customers", params, idempotency_key=idempotency_key)
        return self._model(Customer, data, "customer")

    async def get_customer(self, customer_id: str) -> Customer:
        """``GET /v1/customers/{id}``; an unknown id raises ``StripeInvalidRequest`` (404 resource_missing)."""
        return self._model(Customer, await self._request("GET", _object_path("/customers", customer_id)), "customer")

    # ------------------------------------------------------------------ Checkout and portal

    async def create_checkout_session(
        self,
        *,
        customer: str,
        price: str,
        success_url: str,
        cancel_url: str | None = None,
        client_reference_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        quantity: int = 1,
        subscription_metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> CheckoutSession:
        """``POST /v1/checkout/sessions`` in subscription mode for one price.

        ``subscription_metadata`` defaults to ``metadata``: the subscription outlives the session,
        and later ``customer.subscription.*`` events only carry the subscription's own metadata.
        """
        sub_metadata = dict(metadata or {}) if subscription_metadata is None else dict(subscription_metadata)
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": price, "quantity": quantity}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "metadata": dict(metadata or {}),
            "subscription_data": {"metadata": sub_metadata},
        }
        data = await self._request("POST", "/checkout/sessions", params, idempotency_key=idempotency_key)
        return self._model(CheckoutSession, data, "checkout session")

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        """``GET /v1/checkout/sessions/{id}``."""
        data = await self._request("GET", _object_path("/checkout/sessions", session_id))
        return self._model(CheckoutSession, data, "checkout session")

    async def create_portal_session(
        self, *, customer: str, return_url: str | None = None, idempotency_key: str | None = None
    ) -> PortalSession:
        """``POST /v1/billing_portal/sessions``: a short-lived link to the customer's billing portal."""
        params = {"customer": customer, "return_url": return_url}
        data = await self._request("POST", "/billing_portal/sessions", params, idempotency_key=idempotency_key)
        return self._model(PortalSession, data, "billing portal session")

    # ------------------------------------------------------------------ subscriptions and prices

    async def get_subscription(self, subscription_id: str) -> Subscription:
        """``GET /v1/subscriptions/{id}``."""
        data = await self._request("GET", _object_path("/subscriptions", subscription_id))
        return self._model(Subscription, data, "subscription")

    async def get_price(self, price_id: str) -> Price:
        """``GET /v1/prices/{id}``."""
        return self._model(Price, await self._request("GET", _object_path("/prices", price_id)), "price")
