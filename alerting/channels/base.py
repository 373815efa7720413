"""The one small interface every transport implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from alerting.outbox import OutboxMessage


@dataclass(frozen=True, slots=True)
class SendReceipt:
    provider_id: str | None  # Twilio's SID, the e-mail's Message-ID
    status: str  # the provider's word: "queued", "accepted", ...


class TransportError(Exception):
    """Sending failed; ``permanent`` says that retrying the same message cannot help."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Channel(Protocol):
    async def send(self, message: OutboxMessage) -> SendReceipt: ...
