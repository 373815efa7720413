"""Inbound Twilio webhooks: SMS replies, the key pressed during an alert call, delivery status.

* ``POST /twilio/sms``: ``ACK 12`` acknowledges incident 12, ``RESOLVE 12`` resolves it (a
  forced resolve with the reason "by SMS": a text cannot ask to confirm, and the person on call
  texting it has decided; conditions that still hold are forgotten, not silenced, so a problem
  that persists opens a new incident naming this one),
  ``STATUS`` answers with the open incidents. Only numbers of the on-call staff (on-call list,
  rotation, overrides, escalation steps) may act; anyone else gets a polite refusal, no action.
* ``POST /twilio/voice/gather?incident=12``: ``Digits=1`` acknowledges incident 12. The callee
  (``To``) must be staff or the support/contingency line.
* ``POST /twilio/status``: delivery status of a message or call; ``failed``, ``undelivered``,
  ``no-answer``, ``busy`` and ``canceled`` are reported as failures (the handler escalates).

Every request must carry a valid ``X-Twilio-Signature`` for the public URL Twilio was told
(``alerting.twilio.webhook_base_url`` + path + query) and its form parameters, checked with
``twilio.request_validator.RequestValidator``; unsigned, forged or replayed-to-another-URL
requests are refused with 403 before anything is read into an action.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from ctiwatch.config import AlertingConfig
from ctiwatch.web.service import ServiceError

_logger = logging.getLogger("ctiwatch.web.twilio")

FAILED_STATUSES = frozenset({"failed", "undelivered", "no-answer", "busy", "canceled"})
_COMMAND = re.compile(r"^\s*(ACK|RESOLVE)\s*#?\s*(\d{1,9})\s*[.!]?\s*$", re.IGNORECASE)
_STATUS = re.compile(r"^\s*STATUS\s*[?.!]?\s*$", re.IGNORECASE)
SMS_RESOLVE_REASON = "by SMS"
USAGE = "Reply ACK <incident>, RESOLVE <incident> or STATUS."
REFUSAL = "Sorry, this number is not on the ctiwatch on-call list, so no action was taken."
LANGUAGE = "en-GB"


class TwilioActions(Protocol):
    """What the webhooks do; the lead wires it to the incident service.

    ``acknowledge`` / ``resolve`` raise :class:`ServiceError` (or ``LookupError``) to refuse;
    the message is texted or spoken back.
    """

    async def acknowledge(self, number: int, actor: str) -> None: ...

    async def resolve(
        self, number: int, actor: str, reason: str = "", force: bool = False
    ) -> None: ...

    async def status_text(self) -> str:
        """A short summary of the open incidents for an SMS (``STATUS``)."""
        ...

    async def delivery_status(
        self, provider_id: str, status: str, recipient: str, failed: bool
    ) -> None:
        """Twilio's delivery report; ``failed`` (no-answer, failed, ...) should escalate."""
        ...


def staff_numbers(config: AlertingConfig) -> frozenset[str]:
    """Every number that may act by SMS: on-call, rotation, overrides, escalation steps."""
    numbers = set(config.oncall)
    if config.rotation is not None:
        numbers.update(n for week in config.rotation.weeks for n in week)
        numbers.update(n for override in config.rotation.overrides for n in override.numbers)
    numbers.update(n for step in config.escalation for n in step.numbers)
    return frozenset(numbers)


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


def _sms_reply(text: str) -> web.Response:
    response = MessagingResponse()
    response.message(text)
    return _twiml(str(response))


def _say(text: str) -> web.Response:
    response = VoiceResponse()
    response.say(text, language=LANGUAGE)
    return _twiml(str(response))


def _refusal_text(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return exc.message
    return str(exc.args[0]) if exc.args else str(exc)


def add_twilio_routes(app: web.Application, handler: TwilioActions, config: AlertingConfig) -> None:
    """Add the three webhook routes to ``app``."""
    validator = RequestValidator(config.twilio.auth_token)
    base_url = config.twilio.webhook_base_url.rstrip("/")
    staff = staff_numbers(config)
    phone_lines = staff | {config.support_line, config.contingency_line}

    async def signed_form(request: web.Request) -> MultiDict[str]:
        """The form parameters, if the signature holds for the public URL; else 403."""
        form = await request.post()
        params: MultiDict[str] = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
        signature = request.headers.get("X-Twilio-Signature", "")
        url = base_url + request.raw_path
        if not signature or not validator.validate(url, params, signature):
            _logger.warning("refused a Twilio webhook with a bad signature for %s", url)
            raise web.HTTPForbidden(text="invalid or missing X-Twilio-Signature")
        return params

    async def sms(request: web.Request) -> web.Response:
        form = await signed_form(request)
        sender = form.get("From", "")
        body = form.get("Body", "")
        if sender not in staff:
            _logger.warning("SMS from %s (not on call) refused", sender)
            return _sms_reply(REFUSAL)
        if _STATUS.match(body):
            return _sms_reply(await handler.status_text())
        match = _COMMAND.match(body)
        if match is None:
            return _sms_reply(f"Not understood. {USAGE}")
        verb, number = match.group(1).upper(), int(match.group(2))
        actor = f"{sender} (SMS)"
        try:
            if verb == "ACK":
                await handler.acknowledge(number, actor)
                return _sms_reply(f"Incident {number} acknowledged. Thank you.")
            await handler.resolve(number, actor, SMS_RESOLVE_REASON, force=True)
            return _sms_reply(f"Incident {number} resolved.")
        except (ServiceError, LookupError) as exc:
            return _sms_reply(f"Incident {number}: {_refusal_text(exc)}")

    async def gather(request: web.Request) -> web.Response:
        form = await signed_form(request)
        raw = request.query.get("incident", "")
        if not raw.isdigit():
            raise web.HTTPBadRequest(text="query parameter 'incident' must be an incident number")
        number = int(raw)
        callee = form.get("To", "") or form.get("Called", "")
        if callee not in phone_lines:
            _logger.warning("keypress from %s (not on call) refused", callee)
            return _say(REFUSAL)
        if form.get("Digits", "") != "1":
            return _say(f"Incident {number} is not acknowledged. Goodbye.")
        try:
            await handler.acknowledge(number, f"{callee} (phone)")
        except (ServiceError, LookupError) as exc:
            return _say(f"Incident {number}: {_refusal_text(exc)}")
        return _say(f"Incident {number} is acknowledged. Thank you. Goodbye.")

    async def status(request: web.Request) -> web.Response:
        form = await signed_form(request)
        sid = form.get("MessageSid", "") or form.get("CallSid", "")
        state = (form.get("MessageStatus", "") or form.get("CallStatus", "")).lower()
        if not sid or not state:
            raise web.HTTPBadRequest(text="MessageSid/CallSid and their status are required")
        await handler.delivery_status(sid, state, form.get("To", ""), state in FAILED_STATUSES)
        return web.Response(status=204)

    app.router.add_post("/twilio/sms", sms)
    app.router.add_post("/twilio/voice/gather", gather)
    app.router.add_post("/twilio/status", status)
