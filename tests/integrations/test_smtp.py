"""Our SMTP client against the SMTP sandbox, over real sockets."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest

from integrations.smtp.client import SmtpConfig, SmtpPermanentError, SmtpTransientError, send_message
from integrations.smtp.sandbox import SmtpSandbox


def _message(to: str = "lead@example.com", body: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "salesflow <no-reply@salesflow.dev>"
    message["To"] = to
    message["Subject"] = "Привет, hello"
    message.set_content(body)
    message.add_alternative(f"<p>{body}</p>", subtype="html")
    return message


async def test_a_message_is_captured_with_envelope_headers_and_both_parts() -> None:
    async with SmtpSandbox() as smtp:
        await send_message(SmtpConfig(host=smtp.host, port=smtp.port, tls="none"), _message(body="line\n.dot"))
        [captured] = smtp.messages
    assert captured.mail_from == "no-reply@salesflow.dev"
    assert captured.rcpt_to == ("lead@example.com",)
    assert captured.subject == "Привет, hello"
    assert captured.text() == "line\n.dot\n"  # dot-stuffed by the client, unstuffed by the server
    assert captured.html() == "<p>line\n.dot</p>\n"


async def test_auth_plain_is_required_when_configured() -> None:
    async with SmtpSandbox(username="mailer", password="pw") as smtp:
        good = SmtpConfig(host=smtp.host, port=smtp.port, tls="none", user="mailer", password="pw")
        await send_message(good, _message())
        with pytest.raises(SmtpPermanentError, match="authentication"):
            await send_message(SmtpConfig(host=smtp.host, port=smtp.port, tls="none", user="mailer",
                                          password="wrong"), _message())
        with pytest.raises(SmtpPermanentError):  # no credentials at all: 530 on MAIL FROM
            await send_message(SmtpConfig(host=smtp.host, port=smtp.port, tls="none"), _message())
        assert len(smtp.messages) == 1


async def test_refusals_are_classified_permanent_or_transient() -> None:
    async with SmtpSandbox() as smtp:
        config = SmtpConfig(host=smtp.host, port=smtp.port, tls="none")
        smtp.fail_next("RCPT", 550, "5.1.1 no such user", to="lead@example.com")
        with pytest.raises(SmtpPermanentError):
            await send_message(config, _message())
        smtp.fail_next("DATA", 451, "4.3.0 try later")
        with pytest.raises(SmtpTransientError):
            await send_message(config, _message())
        assert smtp.messages == []
        with pytest.raises(ValueError, match="RCPT and DATA"):
            smtp.fail_next("MAIL", 421)
    with pytest.raises(SmtpTransientError):  # nobody listening any more
        await send_message(config, _message())


async def test_the_sandbox_speaks_the_basic_commands() -> None:
    async with SmtpSandbox() as smtp:
        def session() -> list[int]:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
                codes = [client.helo("tester")[0], client.noop()[0], client.rset()[0]]
                codes.append(client.docmd("RCPT TO:<a@b.c>")[0])  # out of order
                codes.append(client.docmd("BOGUS")[0])
                client.sendmail("a@b.c", ["x@y.z", "w@y.z"], b"Subject: hi\r\n\r\nbody\r\n")
                return codes

        assert await asyncio.to_thread(session) == [250, 250, 250, 503, 502]
        [captured] = await smtp.wait_for(lambda m: "w@y.z" in m.rcpt_to)
        assert captured.rcpt_to == ("x@y.z", "w@y.z")
        assert captured.subject == "hi"
