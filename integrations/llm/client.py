"""Client of an OpenAI-compatible ``POST {base_url}/chat/completions``. It never retries (Temporal does).

Every failure is an ``LlmError`` that says whether retrying can help: 429, 5xx and timeouts can; other 4xx
(bad key, bad request) cannot. ``retry_after`` carries the server's ``Retry-After`` when it sent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class LlmError(Exception):
    """A failed completion: HTTP status (None for transport errors), retryability and Retry-After."""

    def __init__(self, detail: str, *, status: int | None = None, retryable: bool, retry_after: float | None = None):
        super().__init__(f"{status}: {detail}" if status is not None else detail)
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Completion:
    """The first choice's text and the token usage the server reported."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if body.get("detail"):
            return str(body["detail"])[:300]
    return f"HTTP {response.status_code}"


class ChatCompletionsClient:
    """One model behind one endpoint; ``http`` may be shared (the caller then closes it)."""

    def __init__(
        self, base_url: str, api_key: str | None, model: str, *, http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient()
        self._timeout = timeout

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def complete(
        self, messages: list[dict[str, str]], *, temperature: float = 0.2, max_tokens: int = 400
    ) -> Completion:
        """One completion; raises ``LlmError`` on any failure."""
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        try:
            response = await self._http.post(
                f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise LlmError(f"timeout ({type(exc).__name__})", retryable=True) from exc
        except httpx.TransportError as exc:
            raise LlmError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise LlmError(_detail(response), status=response.status_code, retryable=True,
                           retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise LlmError(_detail(response), status=response.status_code, retryable=False)
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
            return Completion(
                text=str(text or "").strip(), model=str(data.get("model") or self.model),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError(f"unexpected response shape: {exc}", status=response.status_code, retryable=False) from exc
