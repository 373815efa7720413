"""Voice calls through the Twilio Calls API, with the TwiML built here (pure) and sent inline.

The call reads the alert out, then asks for a key: ``<Gather numDigits="1">`` posts the digit to
``<webhook_base_url>/twilio/voice/gather?incident=N``; 1 acknowledges the incident.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from alerting.channels.base import SendReceipt
from alerting.channels.twilio_http import call_twilio
from alerting.outbox import OutboxMessage

LANGUAGE = "en-GB"
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")  # StatusCallbackEvent


def gather_url(webhook_base_url: str, incident: int) -> str:
    return f"{webhook_base_url.rstrip('/')}/twilio/voice/gather?{urlencode({'incident': incident})}"


def build_twiml(text: str, incident: int | None, webhook_base_url: str) -> str:
    """The call's TwiML: the alert, twice if no key is pressed, and the acknowledge prompt."""
    response = VoiceResponse()
    response.say(text, language=LANGUAGE)
    if incident is not None:
        gather = response.gather(
            num_digits=1,
            action=gather_url(webhook_base_url, incident),
            method="POST",
            timeout=10,
        )
        gather.say(f"Press 1 to acknowledge incident {incident}.", language=LANGUAGE)
        response.say(
            "No key was pressed. The alert is repeated by SMS. Goodbye.", language=LANGUAGE
        )
    return str(response)


class TwilioVoice:
    def __init__(
        self,
        client: Any,
        from_number: str,
        webhook_base_url: str,
        status_callback: str | None = None,
    ) -> None:
        self._client = client
        self._from = from_number
        self._webhook_base_url = webhook_base_url
        self._status_callback = status_callback

    async def send(self, message: OutboxMessage) -> SendReceipt:
        twiml = build_twiml(message.body, message.incident_number, self._webhook_base_url)
        extra: dict[str, Any] = {}
        if self._status_callback:
            extra["status_callback"] = self._status_callback
            # Every change, not only the end: the call's course goes on record as it rings,
            # is answered and ends (a no-answer, busy or failed end pages the next step).
            extra["status_callback_event"] = list(CALL_EVENTS)
        created = await call_twilio(
            f"call to {message.recipient}",
            self._client.calls.create_async(
                to=message.recipient, from_=self._from, twiml=twiml, **extra
            ),
            message.idempotency_key,
        )
        return SendReceipt(provider_id=created.sid, status=str(created.status or "queued"))
