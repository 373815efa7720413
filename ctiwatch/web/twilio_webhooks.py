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

A signature has no time in it, so a captured request would stay good for ever: each one acted
on is remembered in the database by its SID (``MessageSid``/``CallSid``, with the incident of a
keypress and the status of a delivery report) and the same request again is refused with 409,
also after a restart (``store.webhook_replays``; a captured ``RESOLVE 12`` cannot resolve
incident 12 once it is reopened). A body that is not a readable form (bytes that are not its
charset, an unknown charset, multipart without or with a broken boundary, ...) is a 400 with
one WARNING line. Incident numbers are ASCII digits only (``ACK ²`` is explained, not taken).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from ctiwatch.clock import Clock
from ctiwatch.config import AlertingConfig
from ctiwatch.web.service import ServiceError

_logger = logging.getLogger("ctiwatch.web.twilio")

FAILED_STATUSES = frozenset({"failed", "undelivered", "no-answer", "busy", "canceled"})
_COMMAND = re.compile(r"^\s*(ACK|RESOLVE)\s*#?\s*(.*?)\s*[.!]?\s*$", re.IGNORECASE | re.DOTALL)
# Incident numbers in ASCII digits: int() would also take "٣" and isdigit() passes "²".
_NUMBER = re.compile(r"[0-9]{1,9}", re.ASCII)
_SID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_STATUS = re.compile(r"^\s*STATUS\s*[?.!]?\s*$", re.IGNORECASE)
SMS_RESOLVE_REASON = "by SMS"
USAGE = "Reply ACK <incident>, RESOLVE <incident> or STATUS."
DIGITS = "Write the incident number in the digits 0 to 9."
REFUSAL = "Sorry, this number is not on the ctiwatch on-call list, so no action was taken."
LANGUAGE = "en-GB"


class TwilioActions(Protocol):
    """What the webhooks do; the lead wires it to the incident service.

    ``acknowledge`` / ``resolve`` raise :class:`ServiceError` (or ``LookupError``) to refuse;
    the message is texted or spoken back.
    """

    async def acknowledge(self, number: int, actor: str, *, address: str = "") -> None: ...

    async def resolve(
        self, number: int, actor: str, reason: str = "", force: bool = False, *, address: str = ""
    ) -> None: ...

    async def status_text(self) -> str:
        """A short summary of the open incidents for an SMS (``STATUS``)."""
        ...

    async def delivery_status(
        self, provider_id: str, status: str, recipient: str, failed: bool
    ) -> None:
        """Twilio's delivery report; ``failed`` (no-answer, failed, ...) should escalate."""
        ...


class ReplayMemory(Protocol):
    """Where signed webhooks already acted on are remembered (``store.webhook_replays``)."""

    async def first_time(self, key: str, at: datetime) -> bool:
        """Remember ``key``; False if it was remembered before (a replay)."""
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


def add_twilio_routes(
    app: web.Application,
    handler: TwilioActions,
    config: AlertingConfig,
    *,
    replays: ReplayMemory,
    clock: Clock,
    people: Callable[[str], Awaitable[str | None]] | None = None,
) -> None:
    """Add the three webhook routes to ``app``. ``people(number)``: the user who owns an
    on-call phone number; an action from it is theirs (else the number's, as before)."""
    validator = RequestValidator(config.twilio.auth_token)
    base_url = config.twilio.webhook_base_url.rstrip("/")
    staff = staff_numbers(config)
    phone_lines = staff | {config.support_line, config.contingency_line}

    async def read_form(request: web.Request) -> MultiDict[str]:
        """The text fields of the form body; 400 with one WARNING line if it is unreadable."""
        try:
            form = await request.post()
        except web.HTTPException:
            raise  # e.g. 413: aiohttp's own answer
        except Exception as exc:  # whatever the parser trips on, it is the body's fault
            _logger.warning(
                "refused a Twilio webhook with a malformed body",
                extra={"path": request.path, "reason": f"{type(exc).__name__}: {exc}"},
            )
            raise web.HTTPBadRequest(text="the body is not a readable form") from None
        return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))

    async def signed_form(request: web.Request) -> MultiDict[str]:
        """The form parameters, if the signature holds for the public URL; else 403."""
        params = await read_form(request)
        signature = request.headers.get("X-Twilio-Signature", "")
        url = base_url + request.raw_path
        try:
            valid = bool(signature) and validator.validate(url, params, signature)
        except ValueError:  # text the HMAC cannot encode: not what Twilio signed
            valid = False
        if not valid:
            _logger.warning("refused a Twilio webhook with a bad signature for %s", url)
            raise web.HTTPForbidden(text="invalid or missing X-Twilio-Signature")
        return params

    async def first_time(kind: str, sid: str, *detail: str) -> None:
        """409 if this signed request was acted on before (a replay); else remember it."""
        if not _SID.fullmatch(sid):
            raise web.HTTPBadRequest(text=f"{kind}: a MessageSid or CallSid is required")
        key = ":".join((kind, sid, *detail))[:200]
        if not await replays.first_time(key, clock.now()):
            _logger.warning("refused a replayed Twilio webhook", extra={"webhook": key})
            raise web.HTTPConflict(text="this webhook was received before; no action taken")

    async def who(number: str, how: str) -> str:
        person = await people(number) if people is not None else None
        return f"{person} ({how})" if person else f"{number} ({how})"

    async def sms(request: web.Request) -> web.Response:
        form = await signed_form(request)
        await first_time("sms", form.get("MessageSid", "") or form.get("SmsSid", ""))
        sender = form.get("From", "")
        body = form.get("Body", "")
        if sender not in staff:
            _logger.warning("SMS from %s (not on call) refused", sender)
            return _sms_reply(REFUSAL)
        if _STATUS.match(body):
            return _sms_reply(await handler.status_text())
        match = _COMMAND.match(body)
        if match is None or not match.group(2):
            return _sms_reply(f"Not understood. {USAGE}")
        if not _NUMBER.fullmatch(match.group(2)):
            if match.group(2).isnumeric():
                return _sms_reply(f"Not understood. {DIGITS} {USAGE}")
            return _sms_reply(f"Not understood. {USAGE}")
        verb, number = match.group(1).upper(), int(match.group(2))
        actor = await who(sender, "SMS")
        try:
            if verb == "ACK":
                await handler.acknowledge(number, actor, address=request.remote or "")
                return _sms_reply(f"Incident {number} acknowledged. Thank you.")
            await handler.resolve(
                number, actor, SMS_RESOLVE_REASON, force=True, address=request.remote or ""
            )
            return _sms_reply(f"Incident {number} resolved.")
        except (ServiceError, LookupError) as exc:
            return _sms_reply(f"Incident {number}: {_refusal_text(exc)}")

    async def gather(request: web.Request) -> web.Response:
        form = await signed_form(request)
        raw = request.query.get("incident", "")
        if not _NUMBER.fullmatch(raw):
            raise web.HTTPBadRequest(text="query parameter 'incident' must be an incident number")
        number = int(raw)
        await first_time("gather", form.get("CallSid", ""), str(number))
        callee = form.get("To", "") or form.get("Called", "")
        if callee not in phone_lines:
            _logger.warning("keypress from %s (not on call) refused", callee)
            return _say(REFUSAL)
        if form.get("Digits", "") != "1":
            return _say(f"Incident {number} is not acknowledged. Goodbye.")
        try:
            await handler.acknowledge(
                number, await who(callee, "phone"), address=request.remote or ""
            )
        except (ServiceError, LookupError) as exc:
            return _say(f"Incident {number}: {_refusal_text(exc)}")
        return _say(f"Incident {number} is acknowledged. Thank you. Goodbye.")

    async def status(request: web.Request) -> web.Response:
        form = await signed_form(request)
        sid = form.get("MessageSid", "") or form.get("CallSid", "")
        state = (form.get("MessageStatus", "") or form.get("CallStatus", "")).lower()
        if not sid or not state:
            raise web.HTTPBadRequest(text="MessageSid/CallSid and their status are required")
        if not re.fullmatch(r"[a-z-]{1,32}", state, re.ASCII):
            raise web.HTTPBadRequest(text="the status must be a Twilio status such as 'delivered'")
        await first_time("status", sid, state)
        await handler.delivery_status(sid, state, form.get("To", ""), state in FAILED_STATUSES)
        return web.Response(status=204)

    app.router.add_post("/twilio/sms", sms)
    app.router.add_post("/twilio/voice/gather", gather)
    app.router.add_post("/twilio/status", status)
