"""E-mail over SMTP (aiosmtplib): the report to the support address, plain text + HTML.

SMTP says itself whether retrying helps: a 4xx reply is temporary, a 5xx reply permanent.
Connection failures and timeouts are temporary.

The Message-ID is derived from the outbox idempotency key (:func:`message_id`), so a mail sent
again after a crash is the same message to every system that dedupes by Message-ID (the
project's SMTP server does; mail stores and clients commonly do, though SMTP does not oblige
a relay to).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

import aiosmtplib

from alerting.channels.base import SendReceipt, TransportError
from alerting.messages import one_line
from alerting.outbox import OutboxMessage


class SmtpSettings(Protocol):
    """The shape of ``config.alerting.smtp``."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def sender(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def starttls(self) -> bool: ...


def header_value(text: str) -> str:
    """``text`` as one header line: line breaks, tabs and other control characters become
    single spaces (see :func:`alerting.messages.one_line`)."""
    return one_line(text)


def message_id(idempotency_key: str) -> str:
    """A Message-ID fixed by the idempotency key, so a resend can be recognised downstream."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@ctiwatch>"


def build_email(message: OutboxMessage, sender: str, date: datetime | None = None) -> EmailMessage:
    """The mail for ``message``. Header values are made one line (:func:`header_value`): a name
    with a line break in it (a customer's, from the configuration or an API) gives a subject
    with a space there, never a mail that cannot be built or a header injected."""
    mail = EmailMessage()
    mail["From"] = header_value(sender)
    mail["To"] = header_value(message.recipient)
    mail["Subject"] = header_value(message.subject)
    mail["Message-ID"] = message_id(message.idempotency_key)
    if date is not None:
        mail["Date"] = format_datetime(date)
    if message.incident_number is not None:
        mail["X-Ctiwatch-Incident"] = str(message.incident_number)
    mail["X-Ctiwatch-Kind"] = header_value(message.kind)
    mail.set_content(message.body)
    html = message.payload.get("html")
    if isinstance(html, str) and html:
        mail.add_alternative(html, subtype="html")
    return mail


class SmtpEmail:
    def __init__(
        self,
        settings: SmtpSettings,
        timeout: float = 30.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._now = now  # for the Date header (the clock is injected, never read here)

    async def send(self, message: OutboxMessage) -> SendReceipt:
        settings = self._settings
        mail = build_email(message, settings.sender, self._now() if self._now else None)
        what = f"e-mail to {message.recipient}"
        try:
            await aiosmtplib.send(
                mail,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                start_tls=settings.starttls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            permanent = all(code >= 500 for code in codes)
            raise TransportError(f"{what}: recipient refused ({codes})", permanent) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise TransportError(
                f"{what}: SMTP server answered {exc.code} {exc.message}", exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransportError(f"{what}: cannot reach the SMTP server ({exc})", False) from exc
        return SendReceipt(provider_id=mail["Message-ID"], status="accepted")
