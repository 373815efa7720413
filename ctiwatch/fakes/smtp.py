"""A local SMTP server (aiosmtpd) keeping every mail in memory: the project's mailbox.

It runs on the caller's event loop (no thread), so it shares the loop's clock and lifetime.
A mail whose ``Message-ID`` it holds already is accepted (250) but kept in :attr:`duplicates`,
not delivered a second time, as mail systems that suppress duplicates by Message-ID do: ctiwatch
derives the Message-ID from the outbox idempotency key, so a resend after a crash is recognised.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        # SMTP carries CRLF line ends; show the text as it was written.
        return "" if body is None else str(body.get_content()).replace("\r\n", "\n")

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.mail_from,
            "to": list(self.rcpt_tos),
            "subject": self.subject,
            "message_id": self.message_id,
            "text": self.text,
            "html": self.html,
        }


class _Handler:
    def __init__(self, owner: FakeSmtp) -> None:
        self._owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rejection = self._owner._next_rejection()
        if rejection is not None:
            return rejection
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), parsed)
        return self._owner._deliver(mail)


class FakeSmtp:
    """``async with FakeSmtp(port=0) as smtp:`` ... ``smtp.messages``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, hostname: str = "ctiwatch-fake-smtp"
    ) -> None:
        self.host = host
        self._port = port
        self._hostname = hostname
        self.messages: list[ReceivedMail] = []
        self.duplicates: list[ReceivedMail] = []  # resends of a Message-ID already delivered
        self._delivered_ids: set[str] = set()
        self._rejections: list[str] = []
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        sockets = getattr(self._server, "sockets", ())
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    def reject_next(self, count: int = 1, code: int = 451, text: str = "try again later") -> None:
        """The next ``count`` mails are refused at DATA with ``code`` (4xx temporary, 5xx not)."""
        self._rejections.extend([f"{code} {text}"] * count)

    def _next_rejection(self) -> str | None:
        return self._rejections.pop(0) if self._rejections else None

    def _deliver(self, mail: ReceivedMail) -> str:
        if mail.message_id and mail.message_id in self._delivered_ids:
            self.duplicates.append(mail)
            return "250 OK: already delivered (same Message-ID), not delivered again"
        if mail.message_id:
            self._delivered_ids.add(mail.message_id)
        self.messages.append(mail)
        return "250 OK: queued in the ctiwatch fake mailbox"

    def clear(self) -> None:
        self.messages.clear()
        self.duplicates.clear()
        self._delivered_ids.clear()
        self._rejections.clear()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname=self._hostname, loop=loop), self.host, self._port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeSmtp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
