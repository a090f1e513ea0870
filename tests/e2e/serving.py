"""Serve an ASGI app on a real loopback port, so the sandboxes reach it over HTTP as Kommo would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from integrations.served_sandbox import EmbeddedServer


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` listening on 127.0.0.1 (lifespan off: tests inject what it needs); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    server = EmbeddedServer(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Receiver:
    """A customer's webhook endpoint on a real port: records every request and answers from ``answers``."""

    url: str
    received: list[tuple[dict[str, str], bytes]]
    answers: list[int]


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    """Serve a receiver that answers the queued statuses in ``answers`` (200 once they run out)."""
    receiver = Receiver(url="", received=[], answers=[])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        receiver.received.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        status = receiver.answers.pop(0) if receiver.answers else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async with served(app) as url:
        receiver.url = f"{url}/hooks/salesflow"
        yield receiver
