"""One module per transport, each with ``async send(message) -> SendReceipt``.

:func:`open_channels` builds the map from channel name to transport from ``config.alerting``
and owns the HTTP session they share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol

import aiohttp

from alerting.channels.base import Channel, SendReceipt, TransportError
from alerting.channels.email import SmtpEmail, SmtpSettings
from alerting.channels.twilio_http import RedirectingHttpClient, TwilioSettings, twilio_client
from alerting.channels.twilio_sms import TwilioSms
from alerting.channels.twilio_voice import TwilioVoice

__all__ = ["Channel", "SendReceipt", "TransportError", "open_channels"]


class TransportSettings(Protocol):
    """The shape of ``config.alerting`` that the transports read."""

    @property
    def twilio(self) -> TwilioSettings: ...
    @property
    def smtp(self) -> SmtpSettings: ...


@asynccontextmanager
async def open_channels(
    settings: TransportSettings,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - the transports' per-request limit
    now: Callable[[], datetime] | None = None,
) -> AsyncIterator[dict[str, Channel]]:
    """``{"sms": ..., "voice": ..., "email": ...}``, closed again on exit."""
    twilio = settings.twilio
    status_callback = f"{twilio.webhook_base_url.rstrip('/')}/twilio/status"
    async with aiohttp.ClientSession() as session:
        client = twilio_client(twilio, RedirectingHttpClient(session, twilio.base_url, timeout))
        yield {
            "sms": TwilioSms(client, twilio.from_number, status_callback),
            "voice": TwilioVoice(
                client, twilio.from_number, twilio.webhook_base_url, status_callback
            ),
            "email": SmtpEmail(settings.smtp, timeout=timeout * 3, now=now),
        }
