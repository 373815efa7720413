"""A fake Twilio REST API: what the twilio client calls, answered as Twilio would.

* ``POST /2010-04-01/Accounts/{sid}/Messages.json`` and ``.../Calls.json`` with Basic auth
  (account SID + auth token) create a message / call, answer Twilio-shaped JSON and record it.
* Idempotency: a create request carrying an ``Idempotency-Key`` header that was accepted before
  gets the first answer again (same SID) and creates nothing; the key is listed in
  :attr:`FakeTwilio.duplicates`. (The real Twilio REST API ignores that header.)
* Failure on command: :meth:`FakeTwilio.fail_next` (or ``POST /_fake/fail``) makes the next N
  requests answer 500 or 400, 429 (Too Many Requests) with a ``Retry-After`` header, hang
  (``timeout``) until the client gives up, or be carried out with the answer lost (``lost``:
  created, then the client times out).
* Webhooks back, signed with the auth token exactly as Twilio signs them
  (``twilio.request_validator.RequestValidator``): an inbound SMS reply to
  ``<webhook_base_url>/twilio/sms`` (:meth:`reply_sms`; the reply and the answer ctiwatch gives
  in its TwiML ``<Message>`` are kept in :attr:`replies`, the person's side of the thread), the
  digit pressed during a call to the call's ``<Gather action>`` (:meth:`press`), delivery status
  callbacks (:meth:`send_status`).
* Status that moves on as Twilio's does, by the injected clock: an accepted SMS goes
  ``queued`` → ``sent`` → ``delivered`` (``undelivered`` when the phone is told to fail), a call
  ``queued`` → ``ringing`` → ``in-progress`` → ``completed``, or ends ``no-answer``, ``busy`` or
  ``failed`` when the phone is told so (:meth:`answer_calls`). Each change is due at an instant
  (:data:`SMS_STEPS`, :data:`CALL_STEPS`); :meth:`progress` carries out what is due at
  ``clock.now()`` and POSTs a signed status callback to the ``StatusCallback`` URL given at send
  time (for a call, only for the ``StatusCallbackEvent`` asked for, ``completed`` by default, as
  Twilio does). :meth:`run` calls it as time passes (``ctiwatch run`` with the demo fakes); tests
  set their clock and call :meth:`progress` themselves.
* Inspection: :attr:`messages`, :attr:`calls`, and ``GET /_fake/messages`` / ``/_fake/calls``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import itertools
import logging
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlparse

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from ctiwatch.clock import Clock, RealClock

_logger = logging.getLogger("ctiwatch.fakes.twilio")

API = "/2010-04-01/Accounts/{account}"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
FailureMode = Literal["500", "400", "429", "timeout", "lost"]
FAILURE_MODES = ("500", "400", "429", "timeout", "lost")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_BODY = 1600  # characters: Twilio's limit for one message

# How the phone at a number takes what reaches it (:meth:`FakeTwilio.answer_calls`): answer (and
# read every SMS), let a call ring out, be busy, or be unreachable (calls fail, SMS undelivered).
AnswerMode = Literal["answer", "no-answer", "busy", "failed"]
ANSWER_MODES: tuple[AnswerMode, ...] = ("answer", "no-answer", "busy", "failed")
# The status changes after creation, each with the time since the one before.
_S = timedelta(seconds=1)
SMS_STEPS: dict[AnswerMode, tuple[tuple[str, timedelta], ...]] = {
    "answer": (("sent", _S), ("delivered", 2 * _S)),
    "no-answer": (("sent", _S), ("delivered", 2 * _S)),  # a phone that rings on still gets SMS
    "busy": (("sent", _S), ("delivered", 2 * _S)),
    "failed": (("sent", _S), ("undelivered", 2 * _S)),
}
CALL_STEPS: dict[AnswerMode, tuple[tuple[str, timedelta], ...]] = {
    "answer": (("ringing", _S), ("in-progress", 5 * _S), ("completed", 60 * _S)),
    "no-answer": (("ringing", _S), ("no-answer", 30 * _S)),
    "busy": (("ringing", _S), ("busy", 2 * _S)),
    "failed": (("failed", _S),),
}
FINAL_STATUSES = frozenset(
    {"delivered", "undelivered", "failed", "completed", "no-answer", "busy", "canceled", "read"}
)
# A call's status and the StatusCallbackEvent that reports it.
_CALL_EVENTS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}


@dataclass(slots=True)
class FakeMessage:
    sid: str
    to: str
    from_: str
    body: str
    status: str
    at: datetime
    status_callback: str | None = None
    idempotency_key: str | None = None
    # ``outbound-api`` (sent by ctiwatch through the API), ``inbound`` (a person's reply) or
    # ``outbound-reply`` (ctiwatch's answer to it, from the webhook's TwiML).
    direction: str = "outbound-api"
    history: list[tuple[str, datetime]] = field(default_factory=list)  # (status, since)

    @property
    def person(self) -> str:
        """The number at the other end: whose thread the message is in."""
        return self.from_ if self.direction == "inbound" else self.to

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        data["at"] = self.at.isoformat()
        data["history"] = [[status, at.isoformat()] for status, at in self.history]
        return data


@dataclass(slots=True)
class FakeCall:
    sid: str
    to: str
    from_: str
    twiml: str
    status: str
    at: datetime
    url: str | None = None
    status_callback: str | None = None
    digits: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    history: list[tuple[str, datetime]] = field(default_factory=list)  # (status, since)
    events: tuple[str, ...] = ("completed",)  # StatusCallbackEvent: what is reported back

    @property
    def spoken(self) -> list[str]:
        """The sentences the call reads out (every ``<Say>``, in order)."""
        try:
            root = ET.fromstring(self.twiml)
        except ET.ParseError:
            return []
        return [(say.text or "").strip() for say in root.iter("Say")]

    @property
    def gather_action(self) -> str | None:
        try:
            root = ET.fromstring(self.twiml)
        except ET.ParseError:
            return None
        gather = root.find(".//Gather")
        return None if gather is None else gather.get("action")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        data["at"] = self.at.isoformat()
        data["history"] = [[status, at.isoformat()] for status, at in self.history]
        data["events"] = list(self.events)
        data["spoken"] = self.spoken
        data["gather_action"] = self.gather_action
        return data


@dataclass(frozen=True, slots=True)
class WebhookResult:
    url: str
    status: int
    body: str


_LOST = web.RequestKey("ctiwatch_fake_lost", bool)


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature`` for a POST of ``params`` to ``url``."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def twiml_messages(twiml: str) -> list[str]:
    """The texts of the ``<Message>`` elements of a TwiML answer (none if it is not TwiML)."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return []
    if root.tag != "Response":
        return []
    texts = ("".join(node.itertext()).strip() for node in root.iter("Message"))
    return [text for text in texts if text]


def _error(status: int, code: int, message: str) -> web.Response:
    # Twilio's (legacy) error body; the twilio client raises TwilioRestException from it.
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


class FakeTwilio:
    """``async with FakeTwilio(...) as fake:`` serves on ``fake.url`` until the block ends."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        webhook_base_url: str,
        from_number: str = "+3197010000000",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        hang_seconds: float = 120.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.from_number = from_number
        self.host = host
        self._port = port
        self._clock: Clock = clock or RealClock()
        self._hang_seconds = hang_seconds
        self.messages: list[FakeMessage] = []
        self.calls: list[FakeCall] = []
        self.replies: list[FakeMessage] = []  # people's SMS replies and ctiwatch's answers
        self.webhooks: list[WebhookResult] = []
        self.duplicates: list[str] = []  # idempotency keys answered from an earlier request
        self.requests = 0
        self._answered: dict[tuple[str, str], dict[str, Any]] = {}  # (path, key) -> answer
        self._failures: list[tuple[FailureMode, int]] = []  # (mode, Retry-After seconds)
        self._counter = 0
        self._modes: dict[str, AnswerMode] = {}  # number -> how its phone takes what comes
        # Status changes still to come: (due, order, message or call, status).
        self._plan: list[tuple[datetime, int, FakeMessage | FakeCall, str]] = []
        self._order = itertools.count()
        self._planned = asyncio.Event()
        # SIDs are unique across restarts, as Twilio's are: ctiwatch remembers the SIDs of the
        # webhooks it acted on and refuses them again (a replay), so a fake started afresh
        # must not hand out SM...01 a second time.
        self._sid_origin = secrets.randbits(64)
        self._runner: web.AppRunner | None = None
        self._site_port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self.app = self._build_app()

    @classmethod
    def from_settings(cls, settings: Any, clock: Clock | None = None) -> FakeTwilio:
        """Listen where ``config.alerting.twilio.base_url`` points."""
        parsed = urlparse(settings.base_url)
        return cls(
            account_sid=settings.account_sid,
            auth_token=settings.auth_token,
            webhook_base_url=settings.webhook_base_url,
            from_number=settings.from_number,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 80,
            clock=clock,
        )

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._site_port if self._site_port is not None else self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # A webhook that does not answer must not hold the phone up for aiohttp's 5 minutes.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        runner = web.AppRunner(self.app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            await self._session.close()
            raise
        self._runner = runner
        self._site_port = int(runner.addresses[0][1])  # the bound port when asked for port 0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FakeTwilio:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- control -------------------------------------------------------------------------

    def fail_next(self, count: int = 1, mode: FailureMode = "500", retry_after: int = 1) -> None:
        """The next ``count`` API requests fail: HTTP 500, HTTP 400, HTTP 429 asking to wait
        ``retry_after`` seconds (``Retry-After``), no answer (``timeout``), or carried out but
        no answer (``lost``)."""
        self._failures.extend([(mode, retry_after)] * count)

    def reset(self) -> None:
        self.messages.clear()
        self.calls.clear()
        self.replies.clear()
        self._plan.clear()
        self._modes.clear()
        self.webhooks.clear()
        self.duplicates.clear()
        self._answered.clear()
        self._failures.clear()

    def answer_calls(self, number: str, mode: AnswerMode) -> None:
        """From now on the phone at ``number`` answers (the default), lets calls ring out
        (``no-answer``), is ``busy``, or cannot be reached (``failed``: calls fail, SMS are
        undelivered). What was sent before keeps the course it was given."""
        if mode not in ANSWER_MODES:
            raise ValueError(f"mode: must be one of {', '.join(ANSWER_MODES)}")
        if mode == "answer":
            self._modes.pop(number, None)
        else:
            self._modes[number] = mode

    def answer_mode(self, number: str) -> AnswerMode:
        return self._modes.get(number, "answer")

    @property
    def answer_modes(self) -> dict[str, AnswerMode]:
        """The numbers told to do something other than answer."""
        return dict(self._modes)

    def call_to(self, number: str) -> FakeCall:
        """The latest call to ``number``."""
        for call in reversed(self.calls):
            if call.to == number:
                return call
        raise LookupError(f"no call to {number}")

    def _sid(self, prefix: str) -> str:
        self._counter += 1
        return self.nth_sid(prefix, self._counter)

    def nth_sid(self, prefix: str, n: int) -> str:
        """The ``n``-th SID this fake hands out (counting messages and calls together)."""
        return f"{prefix}{self._sid_origin:016x}{n:016x}"

    # --- webhooks back to ctiwatch -----------------------------------------------------

    async def post_webhook(self, url: str, params: Mapping[str, str]) -> WebhookResult:
        """POST ``params`` to ``url`` signed as Twilio signs webhooks."""
        if self._session is None:
            raise RuntimeError("the fake Twilio server is not started")
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, params)}
        async with self._session.post(url, data=dict(params), headers=headers) as response:
            result = WebhookResult(url, response.status, await response.text())
        self.webhooks.append(result)
        return result

    async def reply_sms(self, from_: str, body: str) -> WebhookResult:
        """A person texts ``body`` from ``from_`` to the Twilio number."""
        sid = self._sid("SM")
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": self.from_number,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        at = self._clock.now()
        reply = FakeMessage(sid, self.from_number, from_, body, "received", at, direction="inbound")
        reply.history.append(("received", at))
        self.replies.append(reply)
        result = await self.post_webhook(f"{self.webhook_base_url}/twilio/sms", params)
        if 200 <= result.status < 300:
            for text in twiml_messages(result.body):
                # What the TwiML <Message> says goes back to the person, as Twilio sends it.
                answer = FakeMessage(
                    self._sid("SM"), from_, self.from_number, text, "queued",
                    self._clock.now(), direction="outbound-reply",
                )  # fmt: skip
                self.replies.append(answer)
                self._set_out(answer, SMS_STEPS[self.answer_mode(from_)])
        return result

    async def press(self, call_sid: str, digits: str) -> WebhookResult:
        """The callee presses ``digits`` during call ``call_sid``; posted to its Gather action."""
        call = next((c for c in self.calls if c.sid == call_sid), None)
        if call is None:
            raise LookupError(f"no call {call_sid}")
        action = call.gather_action
        if action is None:
            raise LookupError(f"call {call_sid} asks for no key")
        call.digits.append(digits)
        params = {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "Caller": call.from_,
            "Called": call.to,
            "Direction": "outbound-api",
            "CallStatus": "in-progress",
            "Digits": digits,
            "FinishedOnKey": "",
            "ApiVersion": "2010-04-01",
        }
        return await self.post_webhook(urljoin(self.webhook_base_url + "/", action), params)

    async def send_status(self, sid: str, status: str) -> WebhookResult:
        """Report delivery ``status`` of a message (``delivered``, ``failed``, ``undelivered``)
        or a call (``completed``, ``no-answer``, ``busy``, ``failed``) to its status callback
        now, whatever was planned for it."""
        items: list[FakeMessage | FakeCall] = [*self.messages, *self.calls]
        item = next((m for m in items if m.sid == sid), None)
        if item is None:
            raise LookupError(f"no message or call {sid}")
        item.status = status
        item.history.append((status, self._clock.now()))
        url = item.status_callback or f"{self.webhook_base_url}/twilio/status"
        return await self.post_webhook(url, self._status_params(item, status))

    # --- status that moves on ----------------------------------------------------------------

    def _set_out(
        self, item: FakeMessage | FakeCall, steps: tuple[tuple[str, timedelta], ...]
    ) -> None:
        """Plan ``item``'s status changes from its creation on."""
        item.history.append((item.status, item.at))
        due = item.at
        for status, after in steps:
            due += after
            heapq.heappush(self._plan, (due, next(self._order), item, status))
        self._planned.set()

    def next_due(self) -> datetime | None:
        """When the next status change is due; None when nothing is under way."""
        return self._plan[0][0] if self._plan else None

    async def progress(self) -> list[WebhookResult]:
        """Carry out every status change due at ``clock.now()``, oldest first, each reported
        to its status callback (signed) when one was asked for; the callbacks' answers."""
        now = self._clock.now()
        results: list[WebhookResult] = []
        while self._plan and self._plan[0][0] <= now:
            due, _, item, status = heapq.heappop(self._plan)
            if item.status in FINAL_STATUSES:
                continue  # e.g. told by hand (send_status) meanwhile
            item.status = status
            item.history.append((status, due))
            result = await self._report(item, status)
            if result is not None:
                results.append(result)
        return results

    async def run(self) -> None:
        """Forever: :meth:`progress` whenever a change falls due (``ctiwatch run``)."""
        while True:
            self._planned.clear()
            try:
                await self.progress()
            except Exception:  # a callback that cannot be posted must not stop the phone
                _logger.exception("the fake Twilio could not report a status change")
            due = self.next_due()
            wait = 60.0 if due is None else (due - self._clock.now()).total_seconds()
            if wait <= 0:
                continue
            try:
                async with asyncio.timeout(wait):
                    await self._planned.wait()
            except TimeoutError:
                pass

    async def _report(self, item: FakeMessage | FakeCall, status: str) -> WebhookResult | None:
        """POST ``status`` of ``item`` to the callback asked for at send time, if any."""
        if item.status_callback is None:
            return None
        if isinstance(item, FakeCall):
            event = _CALL_EVENTS.get(status, "completed")
            if event not in item.events:
                return None
        try:
            return await self.post_webhook(item.status_callback, self._status_params(item, status))
        except (aiohttp.ClientError, OSError) as exc:
            result = WebhookResult(item.status_callback, 0, f"not delivered: {exc}")
            self.webhooks.append(result)
            return result

    def _status_params(self, item: FakeMessage | FakeCall, status: str) -> dict[str, str]:
        if isinstance(item, FakeMessage):
            return {
                "MessageSid": item.sid,
                "SmsSid": item.sid,
                "AccountSid": self.account_sid,
                "From": item.from_,
                "To": item.to,
                "MessageStatus": status,
                "SmsStatus": status,
                "ApiVersion": "2010-04-01",
            }
        return {
            "CallSid": item.sid,
            "AccountSid": self.account_sid,
            "From": item.from_,
            "To": item.to,
            "Called": item.to,
            "Direction": "outbound-api",
            "CallStatus": status,
            "ApiVersion": "2010-04-01",
        }

    # --- the REST API --------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(API + "/Messages.json", self._create_message)
        app.router.add_post(API + "/Calls.json", self._create_call)
        app.router.add_get("/_fake/messages", self._list_messages)
        app.router.add_get("/_fake/calls", self._list_calls)
        app.router.add_post("/_fake/fail", self._admin_fail)
        app.router.add_post("/_fake/reset", self._admin_reset)
        return app

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return (
            user == self.account_sid
            and password == self.auth_token
            and request.match_info["account"] == self.account_sid
        )

    async def _gate(self, request: web.Request) -> web.Response | None:
        """Authentication, injected failures and repeated idempotency keys; ``None`` lets the
        request through."""
        self.requests += 1
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if self._failures:
            mode, retry_after = self._failures.pop(0)
            if mode == "429":
                response = _error(429, 20429, "Too Many Requests (injected)")
                response.headers["Retry-After"] = str(retry_after)
                return response
            if mode == "timeout":
                await asyncio.sleep(self._hang_seconds)
                return _error(504, 20504, "Gateway timeout (injected)")
            if mode == "400":
                return _error(400, 21610, "Attempt to send to unsubscribed recipient (injected)")
            if mode == "500":
                return _error(500, 20500, "Internal Server Error (injected)")
            request[_LOST] = True
        key = request.headers.get(IDEMPOTENCY_HEADER)
        earlier = None if key is None else self._answered.get((request.path, key))
        if key is None or earlier is None:
            return None
        self.duplicates.append(key)
        return await self._answer(request, earlier)

    async def _accepted(self, request: web.Request, answer: dict[str, Any]) -> web.Response:
        """Remember the answer to a create under its idempotency key, and give it."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None:
            self._answered[(request.path, key)] = answer
        return await self._answer(request, answer)

    async def _answer(self, request: web.Request, answer: dict[str, Any]) -> web.Response:
        if request.get(_LOST, False):
            # Carried out, but the answer never arrives: the client gives up first.
            await asyncio.sleep(self._hang_seconds)
        return web.json_response(answer, status=201)

    def _base_json(self, kind: str, sid: str, to: str, from_: str, at: datetime) -> dict[str, Any]:
        stamp = format_datetime(at, usegmt=True)
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": from_,
            "status": "queued",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": stamp,
            "date_updated": stamp,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/{kind}/{sid}.json",
        }

    async def _create_message(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        form = await request.post()
        to, from_, body = str(form.get("To", "")), str(form.get("From", "")), form.get("Body")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not isinstance(body, str) or not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 limit.")
        at = self._clock.now()
        sid = self._sid("SM")
        callback = form.get("StatusCallback")
        message = FakeMessage(
            sid, to, from_, body, "queued", at, str(callback) if callback else None,
            request.headers.get(IDEMPOTENCY_HEADER),
        )  # fmt: skip
        self.messages.append(message)
        self._set_out(message, SMS_STEPS[self.answer_mode(to)])
        data = self._base_json("Messages", sid, to, from_, at)
        segments = 1 if len(body) <= 160 else -(-len(body) // 153)
        data.update(
            body=body,
            num_segments=str(segments),
            num_media="0",
            price=None,
            error_code=None,
            error_message=None,
        )
        return await self._accepted(request, data)

    async def _create_call(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        form = await request.post()
        to, from_ = str(form.get("To", "")), str(form.get("From", ""))
        twiml, url = form.get("Twiml"), form.get("Url")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_:
            return _error(400, 21213, "A 'From' phone number is required.")
        if not twiml and not url:
            return _error(400, 21205, "Url parameter is required.")
        at = self._clock.now()
        sid = self._sid("CA")
        callback = form.get("StatusCallback")
        call = FakeCall(
            sid=sid,
            to=to,
            from_=from_,
            twiml=str(twiml or ""),
            status="queued",
            at=at,
            url=str(url) if url else None,
            status_callback=str(callback) if callback else None,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
            events=tuple(str(e) for e in form.getall("StatusCallbackEvent", [])) or ("completed",),
        )
        self.calls.append(call)
        self._set_out(call, CALL_STEPS[self.answer_mode(to)])
        data = self._base_json("Calls", sid, to, from_, at)
        data.update(price=None, duration=None, parent_call_sid=None)
        return await self._accepted(request, data)

    async def _list_messages(self, request: web.Request) -> web.Response:
        return web.json_response([m.as_json() for m in self.messages])

    async def _list_calls(self, request: web.Request) -> web.Response:
        return web.json_response([c.as_json() for c in self.calls])

    async def _admin_fail(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            count = int(data.get("count", 1))
            mode = str(data.get("mode", "500"))
            retry_after = int(data.get("retry_after", 1))
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"error": "body must be JSON {count, mode}"}, status=400)
        if mode not in FAILURE_MODES:
            return web.json_response(
                {"error": f"mode: must be one of {', '.join(FAILURE_MODES)}"}, status=400
            )
        if not 1 <= count <= 1000:
            return web.json_response({"error": "count: must be 1 to 1000"}, status=400)
        if not 0 <= retry_after <= 86_400:
            return web.json_response({"error": "retry_after: must be 0 to 86400"}, status=400)
        self.fail_next(count, mode, retry_after)  # type: ignore[arg-type]
        return web.json_response({"pending_failures": len(self._failures)})

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})
