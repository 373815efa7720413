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
    """Sending failed; ``permanent`` says that retrying the same message cannot help;
    ``retry_after`` is how many seconds the provider asked to wait first (``Retry-After``)."""

    def __init__(self, message: str, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    async def send(self, message: OutboxMessage) -> SendReceipt: ...
