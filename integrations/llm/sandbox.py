"""A local OpenAI-compatible chat-completions server over real HTTP, for tests and the offline demo.

``POST /v1/chat/completions`` with ``Authorization: Bearer <api_key>`` (else 401 problem+json that also carries
OpenAI's ``error`` object); ``fail_next(429, retry_after=2)`` makes the next call fail with ``Retry-After``;
``usage`` is reported (whitespace tokens). Answers come from ``reply_with(...)`` if queued, else from the
prompt itself: the approved objection answer, else the first CONTEXT line — so a grounded prompt gets a
grounded answer and the sandbox never invents anything either.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response


@dataclass
class _Fault:
    status: int
    retry_after: float | None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "type": f"https://httpstatus.es/{status}", "title": detail, "status": status, "detail": detail,
        "error": {"message": detail, "type": "invalid_request_error" if status < 500 else "server_error",
                  "code": status},
    }
    return JSONResponse(body, status_code=status, headers=headers or {}, media_type="application/problem+json")


def _tokens(text: str) -> int:
    return len(text.split())


def grounded_answer(messages: list[dict[str, Any]]) -> str:
    """What the sandbox says by default: only what the system prompt already holds."""
    system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), "")
    for line in system.splitlines():
        if line.startswith("OBJECTION raised:") and "Approved answer:" in line:
            return line.split("Approved answer:", 1)[1].strip()
        if line.startswith("The lead touched a forbidden topic; answer with:"):
            return line.split(":", 1)[1].strip()
    lines = system.splitlines()
    if "CONTEXT:" in lines:
        start = lines.index("CONTEXT:") + 1
        if start < len(lines) and lines[start].startswith("- "):
            return lines[start][2:].split(": ", 1)[-1].strip()
    return "A colleague will confirm that for you."


class LlmSandbox:
    """The emulator; ``base_url`` (with ``/v1``) is valid once started."""

    def __init__(self, *, api_key: str = "sk-sandbox", model: str = "sandbox-chat-1") -> None:
        self.api_key = api_key
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._replies: deque[str] = deque()
        self._faults: deque[_Fault] = deque()
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._base_url: str | None = None
        self.app = self._build_app()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        if self._base_url is None:
            raise RuntimeError("LlmSandbox is not started")
        return self._base_url

    def reply_with(self, *texts: str) -> None:
        """Queue answers for the next calls (then it falls back to the grounded default)."""
        self._replies.extend(texts)

    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        """Make the next ``times`` calls fail with ``status`` (and ``Retry-After`` if given)."""
        self._faults.extend(_Fault(status, retry_after) for _ in range(times))

    async def start(self) -> None:
        """Serve on an ephemeral loopback port in the running loop."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self._base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="llm-sandbox")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("LlmSandbox stopped during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="LLM sandbox", docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route("/v1/chat/completions", self._complete, methods=["POST"])
        return app

    async def _complete(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.api_key:
            return _problem(401, "Incorrect API key provided")
        if self._faults:
            fault = self._faults.popleft()
            headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
            return _problem(fault.status, "Rate limit reached" if fault.status == 429 else "Upstream error", headers)
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "Body must be JSON")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in
            ("system", "user", "assistant") for m in messages
        ):
            return _problem(400, "messages must be a non-empty list of {role, content}")
        self.requests.append(body)
        text = self._replies.popleft() if self._replies else grounded_answer(messages)
        prompt_tokens = sum(_tokens(m["content"]) for m in messages)
        completion_tokens = _tokens(text)
        return JSONResponse({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
            "model": str(body.get("model") or self.model),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })
