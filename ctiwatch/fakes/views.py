"""The fake phone and the mailbox as pages the web layer mounts (``add_fake_views``).

* ``GET  {prefix}/phone``       every SMS and call the fake Twilio received, newest first: the
                                SMS as one thread per person (our messages, their replies and
                                our answers), each with its status as it moved on (queued, sent,
                                delivered...); a reply box (posts a signed SMS webhook), "press 1"
                                per call, and how each phone answers
* ``GET  {prefix}/phone.json``  the same as JSON
* ``POST {prefix}/phone/reply`` form ``from``, ``body``
* ``POST {prefix}/phone/press`` form ``call``, ``digits``
* ``POST {prefix}/phone/answer`` form ``number``, ``mode`` (answer, no-answer, busy, failed): how
                                the phone at ``number`` takes the calls and SMS still to come
* ``GET  {prefix}/mailbox``     every mail the local SMTP server received, newest first
* ``GET  {prefix}/mailbox.json``
* ``GET  {prefix}/mailbox/{index}.html`` the HTML part of mail ``index`` (0 = the first received),
                                served sandboxed: no script runs, nothing is loaded from outside

The pages extend the console's ``base.html`` (same header, cards and forms) and show every time
in the display zone (``Wed 25 Nov 18:02:10``). They set their own Content-Security-Policy with a
fresh nonce for their style, so they look the same with or without the console's middleware.
"""

from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from ctiwatch.fakes.smtp import FakeSmtp, ReceivedMail
from ctiwatch.fakes.templates import TEMPLATES
from ctiwatch.fakes.twilio import (
    ANSWER_MODES,
    MAX_BODY,
    AnswerMode,
    FakeCall,
    FakeMessage,
    FakeTwilio,
    WebhookResult,
)
from ctiwatch.timefmt import iso_local
from ctiwatch.web.auth import principal_of
from ctiwatch.web.render import TEMPLATES as CONSOLE_TEMPLATES

TIME_FORMAT = "%a %d %b %H:%M:%S"  # Wed 25 Nov 18:02:10
_OK_STATUSES = frozenset({"delivered", "completed", "received", "read"})
_FAILED_STATUSES = frozenset({"failed", "undelivered", "no-answer", "busy", "canceled"})
_ANSWERED = re.compile(r"^webhook answered (\d{3})\b")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
_DIGITS = re.compile(r"[0-9*#]{1,8}", re.ASCII)
_HTML_PART_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "sandbox allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'; base-uri 'none'"
)

# What a phone told to answer so does with the calls still to come (the page's words).
MODE_WORDS: dict[str, str] = {
    "answer": "answers its calls",
    "no-answer": "lets calls ring out (no-answer)",
    "busy": "is busy",
    "failed": "cannot be reached (calls fail, SMS undelivered)",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Dated = TypeVar("_Dated", FakeMessage, FakeCall)


def status_class(status: str) -> str:
    """The console's pill colour for a Twilio message or call status."""
    if status in _OK_STATUSES:
        return "s-ok"
    if status in _FAILED_STATUSES:
        return "s-down"
    return "s-degraded"  # queued, sending, sent, ringing, in-progress: still under way


def newest_first(items: Sequence[_Dated]) -> list[_Dated]:
    """Latest ``at`` first; of two at the same instant the one recorded last comes first."""
    order = sorted(range(len(items)), key=lambda i: (items[i].at, i), reverse=True)
    return [items[i] for i in order]


def reply_numbers(oncall: Iterable[str], twilio: FakeTwilio) -> list[str]:
    """The numbers to reply from: the on-call list, then everyone texted or called, in the order
    they were first reached; the first is the reply box's default."""
    seen: dict[str, None] = dict.fromkeys(oncall)
    reached = [(m.at, m.to) for m in twilio.messages] + [(c.at, c.to) for c in twilio.calls]
    for _, number in sorted(reached, key=lambda pair: pair[0]):
        seen.setdefault(number, None)
    return list(seen)


@dataclass(frozen=True, slots=True)
class Thread:
    """The SMS between the Twilio number and one person, newest first."""

    number: str
    messages: list[FakeMessage]
    mode: AnswerMode  # how that person's phone answers


def threads(twilio: FakeTwilio) -> list[Thread]:
    """One thread per person: what ctiwatch sent them, their replies and ctiwatch's answers;
    the thread with the latest message first."""
    by_person: dict[str, list[FakeMessage]] = {}
    for message in [*twilio.messages, *twilio.replies]:
        by_person.setdefault(message.person, []).append(message)
    found = [
        Thread(number, newest_first(items), twilio.answer_mode(number))
        for number, items in by_person.items()
    ]
    return sorted(found, key=lambda t: t.messages[0].at, reverse=True)


class BadInput(Exception):
    """A form of the fake phone that cannot be taken: the page again, the reason (naming the
    field) on top, with this HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def _form(request: web.Request) -> Any:
    try:
        return await request.post()
    except web.HTTPException:
        raise  # e.g. 413: aiohttp's own answer
    except Exception:  # whatever the parser trips on, it is the body's fault
        raise BadInput("the body is not a readable form") from None


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise BadInput(f"{name}: must be text")
    value = value.strip()
    if len(value) > limit:
        raise BadInput(f"{name}: at most {limit} characters")
    return value


def _number(form: Any, name: str) -> str:
    value = _field(form, name, 16)
    if not _E164.fullmatch(value):
        raise BadInput(f"{name}: must be a phone number in E.164 form, such as +31612345678")
    return value


@dataclass(frozen=True, slots=True)
class MailRow:
    """One mail as the mailbox page lists it."""

    index: int  # position in arrival order: the HTML part is served under it
    subject: str
    sender: str
    to: tuple[str, ...]
    at: datetime | None  # the Date header, None when it has none
    message_id: str
    text: str
    has_html: bool


def sent_at(mail: ReceivedMail) -> datetime | None:
    """The mail's ``Date`` header as an aware datetime (UTC when it states no zone)."""
    header = mail.message["Date"]
    value = getattr(header, "datetime", None)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def mail_rows(mails: Sequence[ReceivedMail]) -> list[MailRow]:
    """Newest (last received) first."""
    rows = [
        MailRow(
            index=i,
            subject=mail.subject,
            sender=mail.mail_from,
            to=mail.rcpt_tos,
            at=sent_at(mail),
            message_id=mail.message_id,
            text=mail.text,
            has_html=bool(mail.html),
        )
        for i, mail in enumerate(mails)
    ]
    return rows[::-1]


def build_environment(zone: ZoneInfo) -> jinja2.Environment:
    """The fakes' templates first, then the console's (for ``base.html``)."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.DictLoader(TEMPLATES), jinja2.FileSystemLoader(CONSOLE_TEMPLATES)]
        ),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def local(value: datetime, fmt: str = TIME_FORMAT) -> str:
        return value.astimezone(zone).strftime(fmt)

    env.filters["local"] = local
    env.filters["iso"] = lambda value: iso_local(value, zone)
    env.filters["status_class"] = status_class
    env.globals["tz_name"] = zone.key
    return env


def _page(env: jinja2.Environment, request: web.Request, template: str, **context: Any) -> str:
    # Served inside the console: its forms carry the admin's session CSRF token.
    user = principal_of(request)
    return env.get_template(template).render(
        path=request.path,
        notice=None,
        user=user,
        csrf=user.csrf_token if user is not None else "",
        kiosk=False,
        **context,
    )


def _html_response(html: str, nonce: str) -> web.Response:
    response = web.Response(text=html, content_type="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; frame-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _answered(result: WebhookResult) -> str:
    return f"webhook answered {result.status}: {result.body[:300]}"


def _result_ok(result: str) -> bool:
    match = _ANSWERED.match(result)
    return match is not None and 200 <= int(match.group(1)) < 300


def _twiml_text(result: str) -> str:
    """The text of a TwiML ``<Message>``/``<Say>`` in a webhook answer, or the answer as is."""
    _, _, body = result.partition(": ")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return result
    texts = [(node.text or "").strip() for node in root.iter() if node.tag in ("Message", "Say")]
    head = result.partition(": ")[0]
    return f"{head}: {' '.join(t for t in texts if t)}" if texts else head


def add_fake_views(
    app: web.Application,
    twilio: FakeTwilio | None,
    smtp: FakeSmtp | None,
    prefix: str = "/fake",
    *,
    oncall: Sequence[str] = (),
    tz: str = "Europe/Amsterdam",
    status_url: str = "/",
) -> None:
    """Mount the fake phone (when ``twilio``) and the mailbox (when ``smtp``) under ``prefix``.

    ``oncall`` numbers come first in the reply box (the first is prefilled); times are shown
    in ``tz``; ``status_url`` is where the pages link back to the status page."""
    prefix = prefix.rstrip("/")
    env = build_environment(ZoneInfo(tz))
    links = {
        "phone_url": f"{prefix}/phone" if twilio is not None else None,
        "mailbox_url": f"{prefix}/mailbox" if smtp is not None else None,
        "status_url": status_url,
    }

    if twilio is not None:
        fake = twilio

        def render_phone(request: web.Request, error: str = "", status: int = 200) -> web.Response:
            nonce = secrets.token_urlsafe(16)
            result = error or request.query.get("result", "")[:2000]
            told = "" if error else request.query.get("told", "")[:200]
            html = _page(
                env,
                request,
                "fake_phone.html",
                nonce=nonce,
                page="phone",
                twilio_url=fake.url,
                threads=threads(fake),
                sms_count=len(fake.messages) + len(fake.replies),
                calls=newest_first(fake.calls),
                modes=ANSWER_MODES,
                phones=fake.answer_modes,
                webhooks=fake.webhooks[::-1],
                numbers=reply_numbers(oncall, fake),
                result=_twiml_text(result) if result and not error else result,
                result_ok=_result_ok(result),
                told=told,
                mode_words=MODE_WORDS,
                **links,
            )
            response = _html_response(html, nonce)
            response.set_status(status)
            return response

        async def phone(request: web.Request) -> web.Response:
            return render_phone(request)

        def refusing(handler: Handler) -> Handler:
            """Bad input: the phone page again with the reason on top (4xx), never a trace."""

            async def handle(request: web.Request) -> web.StreamResponse:
                try:
                    return await handler(request)
                except BadInput as exc:
                    return render_phone(request, exc.message, exc.status)

            return handle

        async def phone_json(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "messages": [m.as_json() for m in fake.messages],
                    "replies": [m.as_json() for m in fake.replies],
                    "calls": [c.as_json() for c in fake.calls],
                    "answer_modes": fake.answer_modes,
                    "webhooks": [
                        {"url": w.url, "status": w.status, "body": w.body} for w in fake.webhooks
                    ],
                }
            )

        async def reply(request: web.Request) -> web.Response:
            form = await _form(request)
            sender, body = _number(form, "from"), _field(form, "body", MAX_BODY)
            if not body:
                raise BadInput("body: the text of the SMS is required")
            result = await fake.reply_sms(sender, body)
            raise web.HTTPSeeOther(
                app.router["fake-phone"].url_for().with_query(result=_answered(result))
            )

        async def press(request: web.Request) -> web.Response:
            form = await _form(request)
            call, digits = _field(form, "call", 80), _field(form, "digits", 8) or "1"
            if not _DIGITS.fullmatch(digits):
                raise BadInput("digits: the keys 0-9, * and # only")
            try:
                result = await fake.press(call, digits)
            except LookupError as exc:
                raise BadInput(f"call: {exc}", 404) from exc
            raise web.HTTPSeeOther(
                app.router["fake-phone"].url_for().with_query(result=_answered(result))
            )

        async def answer(request: web.Request) -> web.Response:
            form = await _form(request)
            number, mode = _number(form, "number"), _field(form, "mode", 20)
            if mode not in ANSWER_MODES:
                raise BadInput(f"mode: must be one of {', '.join(ANSWER_MODES)}")
            fake.answer_calls(number, mode)
            raise web.HTTPSeeOther(
                app.router["fake-phone"].url_for().with_query(told=f"{number} {MODE_WORDS[mode]}")
            )

        app.router.add_get(f"{prefix}/phone", phone, name="fake-phone")
        app.router.add_post(f"{prefix}/phone/answer", refusing(answer))
        app.router.add_get(f"{prefix}/phone.json", phone_json)
        app.router.add_post(f"{prefix}/phone/reply", refusing(reply))
        app.router.add_post(f"{prefix}/phone/press", refusing(press))

    if smtp is not None:
        mailbox_server = smtp

        async def mailbox(request: web.Request) -> web.Response:
            nonce = secrets.token_urlsafe(16)
            html = _page(
                env,
                request,
                "fake_mailbox.html",
                nonce=nonce,
                page="mailbox",
                mails=mail_rows(mailbox_server.messages),
                duplicates=len(mailbox_server.duplicates),
                port=mailbox_server.port,
                **links,
            )
            return _html_response(html, nonce)

        async def mailbox_json(request: web.Request) -> web.Response:
            return web.json_response([m.as_json() for m in mailbox_server.messages])

        async def html_part(request: web.Request) -> web.Response:
            index = int(request.match_info["index"])
            if index >= len(mailbox_server.messages):
                raise web.HTTPNotFound(text=f"no mail {index}")
            html = mailbox_server.messages[index].html
            if not html:
                raise web.HTTPNotFound(text=f"mail {index} has no HTML part")
            response = web.Response(text=html, content_type="text/html")
            # The mail's own markup, shown as a mail client would: styles yes, scripts never.
            response.headers["Content-Security-Policy"] = _HTML_PART_CSP
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
            return response

        app.router.add_get(f"{prefix}/mailbox", mailbox)
        app.router.add_get(f"{prefix}/mailbox.json", mailbox_json)
        app.router.add_get(rf"{prefix}/mailbox/{{index:\d{{1,9}}}}.html", html_part)
