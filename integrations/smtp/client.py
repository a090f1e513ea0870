"""Send one message over SMTP with the stdlib client, in a thread so the event loop never blocks.

No retries here: Temporal retries the delivery activity. Errors are classified so the activity can
tell a permanent refusal (5xx: bad recipient, rejected content) from a transient one (4xx, network).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "tls"] = "starttls"
    timeout: float = 30.0


class SmtpPermanentError(Exception):
    """The server refused the message for good (5xx); retrying cannot help."""


class SmtpTransientError(Exception):
    """The server or the network failed in a way a later attempt may not (4xx, connection errors)."""


def _send_blocking(config: SmtpConfig, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if config.tls == "tls":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with smtp:
        smtp.ehlo()
        if config.tls == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.user:
            smtp.login(config.user, config.password or "")
        smtp.send_message(message)


def _classify(exc: Exception) -> Exception:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(500 <= code < 600 for code in codes)
        return (SmtpPermanentError if permanent else SmtpTransientError)(f"recipients refused: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # A wrong password will not fix itself between retries; an operator must change the settings.
        return SmtpPermanentError(f"authentication failed: {exc.smtp_code} {exc.smtp_error!r}")
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = SmtpPermanentError if 500 <= exc.smtp_code < 600 else SmtpTransientError
        return kind(f"{exc.smtp_code} {exc.smtp_error!r}")
    return SmtpTransientError(f"{type(exc).__name__}: {exc}")


async def send_message(config: SmtpConfig, message: EmailMessage) -> None:
    """Deliver ``message``; raises :class:`SmtpPermanentError` or :class:`SmtpTransientError`."""
    try:
        await asyncio.to_thread(_send_blocking, config, message)
    except (smtplib.SMTPException, OSError) as exc:
        raise _classify(exc) from exc
