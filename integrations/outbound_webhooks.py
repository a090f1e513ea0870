"""Outbound webhooks that tenants configure (sequence steps, trigger actions).

The URL is tenant input, so by default we refuse to call loopback, private, link-local and other
non-public addresses (server-side request forgery into our own network). No retries here: Temporal
retries the activity; a 4xx answer is permanent, 5xx/timeouts are transient.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["SIGNATURE_HEADER", "OutboundWebhookClient", "WebhookError", "WebhookRejected", "sign_payload"]

SIGNATURE_HEADER = "Salesflow-Signature"


def sign_payload(secret: str, payload: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>``: receivers recompute it over the raw body
    and reject old timestamps, so a captured delivery cannot be replayed later."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookError(Exception):
    """A call failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class WebhookRejected(WebhookError):
    """The destination is not allowed (not http(s), or not a public address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


class OutboundWebhookClient:
    """POSTs JSON with an ``Idempotency-Key`` header so receivers can drop our retries."""

    def __init__(self, http: httpx.AsyncClient | None = None, *, allow_private: bool = False,
                 timeout: float = 10.0) -> None:
        self._http = http
        self.allow_private = allow_private
        self.timeout = timeout

    async def _check_destination(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise WebhookRejected(f"webhook URL must be http(s) with a host, got {url.scheme}://{url.host}")
        if self.allow_private:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(url.host, url.port or 443, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise WebhookError(f"cannot resolve {url.host}: {exc}", retryable=True) from exc
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(_is_public(a) for a in addresses):
            raise WebhookRejected(f"webhook host {url.host} resolves to a non-public address")

    async def post(self, url: str, body: Mapping[str, Any], idempotency_key: str, *, secret: str | None = None) -> int:
        """POST ``body`` as JSON (signed when ``secret`` is given); returns the status code of a 2xx/3xx answer,
        raises ``WebhookError`` otherwise."""
        target = httpx.URL(url)
        await self._check_destination(target)
        content = json.dumps(body, default=str, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                   "User-Agent": "salesflow-webhooks/1"}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign_payload(secret, content, int(time.time()))
        http = self._http or httpx.AsyncClient()
        try:
            # No redirects: a public URL could otherwise bounce us to an internal one.
            response = await http.post(target, content=content, headers=headers, timeout=self.timeout,
                                       follow_redirects=False)
        except httpx.TransportError as exc:
            raise WebhookError(f"POST {target.host}: {type(exc).__name__}", retryable=True) from exc
        finally:
            if self._http is None:
                await http.aclose()
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise WebhookError(f"POST {target.host}: HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise WebhookError(f"POST {target.host}: HTTP {response.status_code}", retryable=False)
        return response.status_code
