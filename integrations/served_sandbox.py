"""What every HTTP sandbox (Kommo, Stripe) shares: serving its app on a real local port inside the caller's loop.

A subclass builds ``self.app`` in its ``__init__`` after calling ``super().__init__(host, port)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx
import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handlers: embedded in a test or app, Ctrl-C belongs to the host."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ServedSandbox:
    """Start/stop on ``host``/``port`` (0 = ephemeral), ``base_url``, and one pooled client for webhooks to us."""

    app: Any
    # The port ``run_forever`` (the offline demo) listens on by default.
    demo_port: ClassVar[int] = 8010

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._outbound: httpx.AsyncClient | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; valid once started."""
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        # Binding ourselves gives the ephemeral port at once and turns "port in use" into an
        # OSError here instead of uvicorn's sys.exit() inside a task.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )

    def _outbound_client(self) -> httpx.AsyncClient:
        if self._outbound is None:
            self._outbound = httpx.AsyncClient()
        return self._outbound

    async def _close_outbound(self) -> None:
        if self._outbound is not None:
            await self._outbound.aclose()
            self._outbound = None

    async def start(self) -> None:
        """Serve in the running loop; returns once listening."""
        if self._task is not None:
            return
        sock = self._bind(self.host, self.port)
        bound_host, bound_port = sock.getsockname()[:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        self._server = EmbeddedServer(self._config())
        name = type(self).__name__
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=name)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the startup error
                raise RuntimeError(f"{name} stopped during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving and close outbound connections."""
        await self._close_outbound()
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

    async def run_forever(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        """Serve until interrupted (Ctrl-C), for the offline demo; seed it before calling."""
        sock = self._bind(host, self.demo_port if port is None else port)
        self._base_url = f"http://{host}:{sock.getsockname()[1]}"
        try:
            await uvicorn.Server(self._config()).serve(sockets=[sock])
        finally:
            await self._close_outbound()
