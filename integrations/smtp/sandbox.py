"""A minimal but real SMTP server on asyncio streams that captures messages, for tests and the demo.

    async with SmtpSandbox() as smtp:
        settings = settings.model_copy(update={"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_tls": "none"})
        ...
        [message] = await smtp.wait_for(lambda m: "alice@example.com" in m.rcpt_to)

It speaks RFC 5321 as far as a client needs: EHLO/HELO, MAIL FROM, RCPT TO, DATA (with dot-unstuffing),
RSET, NOOP, QUIT, and AUTH PLAIN when credentials are configured. No TLS: clients connect with
``smtp_tls="none"``. Failures can be scripted (``fail_next``) to exercise transient and permanent
refusals. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Self

__all__ = ["CapturedMessage", "SmtpSandbox"]

_MAX_LINE = 1000 + 2
_MAX_MESSAGE = 10 * 1024 * 1024


@dataclass(frozen=True)
class CapturedMessage:
    """One accepted message: the envelope and the parsed content."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes
    message: EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return str(self.message["Subject"] or "")

    def text(self) -> str:
        """The text/plain part (or the whole body for a single-part message)."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def html(self) -> str:
        """The text/html part, or empty."""
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


@dataclass
class _Session:
    helo: str | None = None
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)
    authenticated: bool = False


def _address(arg: str, prefix: str) -> str | None:
    """``FROM:<a@b> SIZE=1`` -> ``a@b``; None if malformed."""
    if not arg.upper().startswith(prefix):
        return None
    rest = arg[len(prefix):].strip()
    if not rest.startswith("<") or ">" not in rest:
        return None
    return rest[1:rest.index(">")]


class SmtpSandbox:
    """The server; messages accumulate in :attr:`messages` until :meth:`clear`."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, username: str | None = None, password: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.messages: list[CapturedMessage] = []
        self._scripted: list[tuple[str, int, str, str | None]] = []
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on ``host``; ``port`` 0 picks a free one (read it back from :attr:`port`)."""
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port, limit=_MAX_MESSAGE)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- test controls ------------------------------------------------------------------------

    def fail_next(self, command: str, code: int, text: str = "scripted failure", *, to: str | None = None) -> None:
        """Answer the next ``RCPT`` or ``DATA`` (end of message) with ``code`` instead of accepting.

        With ``to``, only a transaction addressed to that recipient takes the failure, so concurrent
        mail to others (the sandbox is shared) is not affected.
        """
        if command.upper() not in ("RCPT", "DATA"):
            raise ValueError("only RCPT and DATA failures can be scripted")
        self._scripted.append((command.upper(), code, text, to.lower() if to else None))

    def clear(self) -> None:
        """Forget captured messages."""
        self.messages.clear()

    def to(self, address: str) -> list[CapturedMessage]:
        """Messages whose envelope includes ``address``."""
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_to)]

    async def wait_for(
        self, predicate: Callable[[CapturedMessage], bool], *, count: int = 1, within: float = 10.0
    ) -> list[CapturedMessage]:
        """Wait until ``count`` captured messages match ``predicate``; returns them (TimeoutError otherwise)."""

        def matching() -> list[CapturedMessage]:
            return [m for m in self.messages if predicate(m)]

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    # ---- protocol -----------------------------------------------------------------------------

    def _scripted_reply(self, command: str, recipients: list[str]) -> str | None:
        lowered = {r.lower() for r in recipients}
        for i, (name, code, text, to) in enumerate(self._scripted):
            if name == command and (to is None or to in lowered):
                del self._scripted[i]
                return f"{code} {text}"
        return None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        session = _Session()
        await reply(f"220 {self.host} salesflow SMTP sandbox ready")
        while True:
            raw = await reader.readline()
            if not raw:
                return
            if len(raw) > _MAX_LINE:
                await reply("500 5.5.2 line too long")
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                if not arg.strip():
                    await reply(f"501 5.5.4 {verb} needs a domain")
                    continue
                session = _Session(helo=arg.strip())
                if verb == "HELO":
                    await reply(f"250 {self.host}")
                else:
                    extensions = ["8BITMIME", "SMTPUTF8", f"SIZE {_MAX_MESSAGE}"]
                    if self.username is not None:
                        extensions.append("AUTH PLAIN")
                    lines = [self.host, *extensions]
                    for i, ext in enumerate(lines):
                        await reply(f"250{'-' if i < len(lines) - 1 else ' '}{ext}")
            elif verb == "AUTH":
                await reply(self._auth(session, arg))
            elif verb == "MAIL":
                if session.helo is None:
                    await reply("503 5.5.1 send EHLO or HELO first")
                elif self.username is not None and not session.authenticated:
                    await reply("530 5.7.0 authentication required")
                elif (address := _address(arg, "FROM:")) is None:
                    await reply("501 5.5.4 syntax: MAIL FROM:<address>")
                else:
                    session.mail_from, session.rcpt_to = address, []
                    await reply("250 2.1.0 OK")
            elif verb == "RCPT":
                if session.mail_from is None:
                    await reply("503 5.5.1 send MAIL FROM first")
                elif not (address := _address(arg, "TO:")):
                    await reply("501 5.5.4 syntax: RCPT TO:<address>")
                elif scripted := self._scripted_reply("RCPT", [address]):
                    await reply(scripted)
                else:
                    session.rcpt_to.append(address)
                    await reply("250 2.1.5 OK")
            elif verb == "DATA":
                if session.mail_from is None or not session.rcpt_to:
                    await reply("503 5.5.1 send MAIL FROM and RCPT TO first")
                    continue
                await reply("354 end data with <CR><LF>.<CR><LF>")
                data = await self._read_data(reader)
                if data is None:
                    await reply("552 5.3.4 message too big")
                elif scripted := self._scripted_reply("DATA", session.rcpt_to):
                    await reply(scripted)
                else:
                    await self._capture(session.mail_from, tuple(session.rcpt_to), data)
                    await reply("250 2.0.0 OK: queued")
                session.mail_from, session.rcpt_to = None, []
            elif verb == "RSET":
                session.mail_from, session.rcpt_to = None, []
                await reply("250 2.0.0 OK")
            elif verb == "NOOP":
                await reply("250 2.0.0 OK")
            elif verb == "QUIT":
                await reply("221 2.0.0 bye")
                return
            else:
                await reply("502 5.5.2 command not implemented")

    def _auth(self, session: _Session, arg: str) -> str:
        mechanism, _, initial = arg.partition(" ")
        if self.username is None or mechanism.upper() != "PLAIN" or not initial:
            return "504 5.5.4 only AUTH PLAIN with an initial response is supported"
        try:
            _, user, password = base64.b64decode(initial, validate=True).decode().split("\x00")
        except (ValueError, UnicodeDecodeError):
            return "501 5.5.2 cannot decode the credentials"
        if user != self.username or password != self.password:
            return "535 5.7.8 authentication credentials invalid"
        session.authenticated = True
        return "235 2.7.0 authentication successful"

    @staticmethod
    async def _read_data(reader: asyncio.StreamReader) -> bytes | None:
        lines: list[bytes] = []
        size = 0
        too_big = False
        while True:
            raw = await reader.readline()
            if not raw:
                raise ConnectionError("connection closed during DATA")
            if raw in (b".\r\n", b".\n"):
                return None if too_big else b"".join(lines)
            if raw.startswith(b".."):
                raw = raw[1:]  # dot-unstuffing (RFC 5321 4.5.2)
            size += len(raw)
            if size > _MAX_MESSAGE:
                too_big = True
            elif not too_big:
                lines.append(raw)

    async def _capture(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> None:
        # Parsed with LF line ends, as Python's email package expects; ``data`` keeps the wire form.
        parsed = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        async with self._changed:
            self.messages.append(CapturedMessage(mail_from, rcpt_to, data, parsed))
            self._changed.notify_all()
