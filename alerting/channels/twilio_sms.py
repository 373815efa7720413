"""SMS through the Twilio Messages API."""

from __future__ import annotations

from typing import Any

from alerting.channels.base import SendReceipt
from alerting.channels.twilio_http import call_twilio
from alerting.messages import to_gsm7
from alerting.outbox import OutboxMessage


class TwilioSms:
    def __init__(self, client: Any, from_number: str, status_callback: str | None = None) -> None:
        self._client = client
        self._from = from_number
        self._status_callback = status_callback

    async def send(self, message: OutboxMessage) -> SendReceipt:
        extra: dict[str, Any] = {}
        if self._status_callback:
            extra["status_callback"] = self._status_callback
        created = await call_twilio(
            f"SMS to {message.recipient}",
            self._client.messages.create_async(
                to=message.recipient, from_=self._from, body=to_gsm7(message.body), **extra
            ),
            message.idempotency_key,
        )
        return SendReceipt(provider_id=created.sid, status=str(created.status or "queued"))
