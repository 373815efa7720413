"""Notices to customers about maintenance (sla.md, Maintenance): when a window is scheduled,
changed or cancelled, a reminder before each occurrence, and when each starts and ends.

Pure: the window, its recipients and ``now`` in; the e-mails with the instant each is due out.
The shell writes them as outbox rows (``not_before``) in the transaction that changes the
window, so a notice and its cause are never stored apart and the outbox sends each once: its
idempotency key names the window, the revision, the kind, the occurrence and the recipient
(customer and address: two customers with one contact address each get their own notice).
A change or cancellation drops the pending notices of the earlier revisions (prefix
:func:`notice_prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import jinja2

from alerting.messages import one_line

NoticeAction = Literal["scheduled", "changed", "cancelled"]
SHOWN_OCCURRENCES = 10  # occurrences a notice lists; the feeds hold them all
# The line that carries the customer's status page link (text), and its button (HTML).
STATUS_PAGE_WORDS = "Your status page"
STATUS_PAGE_BUTTON = "Open your status page"


@dataclass(frozen=True, slots=True)
class WindowFacts:
    """A maintenance window as its notices speak of it (times UTC)."""

    id: int
    revision: int
    occurrences: tuple[tuple[datetime, datetime], ...]  # the first is the window itself
    services: tuple[str, ...]  # display names; empty: every service
    reason: str
    emergency: bool = False
    justification: str = ""
    recurrence: str | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A covered customer's contact, and what the window covers of that customer."""

    customer: str  # id
    customer_name: str
    email: str
    contact_name: str = ""
    locations: tuple[str, ...] = ()  # the customer's covered locations (names)
    # This customer's own status page (``{web.public_url}/status/...``); "" when it has none
    # or there is no public address: the notice then carries no link.
    status_url: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    key: str
    to: str
    kind: str  # maintenance_ + scheduled, changed, cancelled, reminder, started or ended
    subject: str
    text: str
    due: datetime
    html: str = ""  # the same notice as styled HTML (inline CSS), sent beside the text


def notice_prefix(window_id: int) -> str:
    """The idempotency keys of every notice of window ``window_id`` start with this."""
    return f"maintenance:{window_id}:"


def notices(
    window: WindowFacts,
    recipients: Sequence[Recipient],
    action: NoticeAction,
    now: datetime,
    *,
    timezone: str,
    reminder_before: timedelta = timedelta(hours=24),
    why: str = "",
) -> list[Notice]:
    """The notices of ``action`` on ``window``: one to each recipient now, and (unless it was
    cancelled) for each occurrence still ahead the reminder, the start and the end notice,
    each due at its instant; none for an instant already past."""
    zone = ZoneInfo(timezone)
    found: list[Notice] = []
    base = f"{notice_prefix(window.id)}r{window.revision}"
    for person in recipients:
        subject = _subject(_ACTION_WORDS[action], window.occurrences[0], person, zone)
        letter = _body(window, person, action, zone, why)
        found.append(
            Notice(
                key=f"{base}:{action}:{person.customer}:{person.email}",
                to=person.email,
                kind=f"maintenance_{action}",
                subject=subject,
                text=letter.text(),
                due=now,
                html=letter.html(subject),
            )
        )
        if action == "cancelled":
            continue
        for index, span in enumerate(window.occurrences):
            start, end = span
            for kind, due in (
                ("reminder", start - reminder_before),
                ("started", start),
                ("ended", end),
            ):
                if due <= now:
                    continue
                subject = _subject(_OCCURRENCE_WORDS[kind], span, person, zone)
                letter = _occurrence_body(window, span, person, kind, zone)
                found.append(
                    Notice(
                        key=f"{base}:{kind}:{index}:{person.customer}:{person.email}",
                        to=person.email,
                        kind=f"maintenance_{kind}",
                        subject=subject,
                        text=letter.text(),
                        due=due,
                        html=letter.html(subject),
                    )
                )
    return found


_ACTION_WORDS = {
    "scheduled": "Maintenance scheduled",
    "changed": "Maintenance changed",
    "cancelled": "Maintenance cancelled",
}
_OCCURRENCE_WORDS = {
    "reminder": "Reminder: maintenance",
    "started": "Maintenance started",
    "ended": "Maintenance ended",
}


def span_words(span: tuple[datetime, datetime], zone: ZoneInfo) -> str:
    """``Sat 05 Dec 2026 22:00 – Sun 06 Dec 02:00 CET``"""
    start, end = (at.astimezone(zone) for at in span)
    return f"{start:%a %d %b %Y %H:%M} – {end:%a %d %b %H:%M %Z}"


def _subject(words: str, span: tuple[datetime, datetime], person: Recipient, zone: ZoneInfo) -> str:
    return one_line(f"[CloudCTI] {words}: {span_words(span, zone)} ({person.customer_name})")


def _scope_rows(window: WindowFacts, person: Recipient) -> list[tuple[str, str]]:
    services = ", ".join(window.services) if window.services else "every service"
    locations = ", ".join(person.locations) if person.locations else "every location"
    return [("Services", services), ("Locations", locations), ("Reason", window.reason)]


def _emergency_lines(window: WindowFacts) -> list[str]:
    if not window.emergency:
        return []
    return [
        "Emergency maintenance: exempt from the notice period and from the rule that "
        "maintenance lies outside support hours.",
        f"Justification: {window.justification}",
    ]


def _greeting(person: Recipient) -> str:
    return f"Dear {person.contact_name}," if person.contact_name else "Dear customer,"


@dataclass(frozen=True, slots=True)
class _Letter:
    """A notice's parts, written out as plain text and as HTML from the same facts."""

    greeting: str
    opening: str
    rows: list[tuple[str, str]]  # label, value ("" label: a continuation line)
    notes: list[str]  # lines after the facts (emergency, why)
    closing: str
    footer: str
    status_url: str = ""  # the customer's own status page, if it has one

    def text(self) -> str:
        lines = [self.greeting, "", self.opening, ""]
        for label, value in self.rows:
            lines.append(f"{label + ':' if label else '':<10} {value}")
        lines += self.notes
        if self.closing:
            lines += ["", self.closing]
        if self.status_url:
            lines += ["", f"{STATUS_PAGE_WORDS}: {self.status_url}"]
        lines += ["", self.footer, "", "CloudCTI"]
        return "\n".join(lines) + "\n"

    def html(self, subject: str) -> str:
        return _html_template().render(
            subject=subject, letter=self, css=_CSS, status_page_button=STATUS_PAGE_BUTTON
        )


_CSS = {
    "body": "margin:0;padding:16px;background:#f3f4f6;font-family:Segoe UI,Helvetica,Arial,"
    "sans-serif;font-size:14px;line-height:1.45;color:#111827",
    "card": "max-width:640px;margin:0 auto;background:#ffffff;border:1px solid #e5e7eb;"
    "border-radius:8px;padding:20px 24px",
    "h1": "margin:0 0 12px;font-size:18px;line-height:1.3;color:#111827",
    "p": "margin:0 0 10px",
    "th": "text-align:left;vertical-align:top;padding:2px 16px 2px 0;font-weight:600;"
    "color:#374151;white-space:nowrap",
    "td": "padding:2px 0",
    "note": "margin:10px 0;padding:8px 12px;background:#fef3c7;border-left:4px solid #d97706",
    "foot": "margin:16px 0 0;font-size:12px;color:#6b7280",
    "button": "display:inline-block;padding:8px 14px;background:#1d4ed8;color:#ffffff;"
    "border-radius:6px;text-decoration:none;font-weight:600",
}

_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="{{ css.body }}">
<div style="{{ css.card }}">
<h1 style="{{ css.h1 }}">{{ subject }}</h1>
<p style="{{ css.p }}">{{ letter.greeting }}</p>
<p style="{{ css.p }}">{{ letter.opening }}</p>
<table role="presentation" cellspacing="0" cellpadding="0">
{% for label, value in letter.rows %}
<tr><th style="{{ css.th }}">{{ label }}</th><td style="{{ css.td }}">{{ value }}</td></tr>
{% endfor %}
</table>
{% for note in letter.notes %}
<p style="{{ css.note }}">{{ note }}</p>
{% endfor %}
{% if letter.closing %}<p style="{{ css.p }}">{{ letter.closing }}</p>{% endif %}
{% if letter.status_url %}
<p style="{{ css.p }}"><a href="{{ letter.status_url }}" style="{{ css.button }}">\
{{ status_page_button }}</a></p>
{% endif %}
<p style="{{ css.foot }}">{{ letter.footer }}<br>CloudCTI</p>
</div>
</body></html>
"""


def _html_template() -> jinja2.Template:
    environment = jinja2.Environment(
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    return environment.from_string(_HTML)


def _body(
    window: WindowFacts, person: Recipient, action: NoticeAction, zone: ZoneInfo, why: str
) -> _Letter:
    opening = {
        "scheduled": "CloudCTI has scheduled maintenance that affects your services.",
        "changed": "CloudCTI has changed a maintenance window that affects your services. "
        "It now reads as below.",
        "cancelled": "CloudCTI has cancelled the maintenance window below: it will not take "
        "place (any further occurrences are cancelled too).",
    }[action]
    first = window.occurrences[0]
    rows = [("When", span_words(first, zone))]
    if len(window.occurrences) > 1:
        rows.append(("Repeats", f"{window.recurrence} ({len(window.occurrences)} occurrences)"))
        rows += [("", span_words(s, zone)) for s in window.occurrences[1:SHOWN_OCCURRENCES]]
        if len(window.occurrences) > SHOWN_OCCURRENCES:
            rows.append(("", f"... and {len(window.occurrences) - SHOWN_OCCURRENCES} more"))
    rows += _scope_rows(window, person)
    notes = _emergency_lines(window)
    if why:
        notes.append(f"Why {action}: {why}")
    closing = ""
    if action != "cancelled":
        closing = (
            "During the window no incident is opened for the services it covers. You will get "
            "a reminder before it starts, and a notice when it starts and when it ends."
        )
    footer = f"Maintenance window {window.id}, revision {window.revision}."
    return _Letter(_greeting(person), opening, rows, notes, closing, footer, person.status_url)


def _occurrence_body(
    window: WindowFacts,
    span: tuple[datetime, datetime],
    person: Recipient,
    kind: str,
    zone: ZoneInfo,
) -> _Letter:
    opening = {
        "reminder": "A reminder: CloudCTI maintenance that affects your services is coming up.",
        "started": "CloudCTI maintenance that affects your services has started.",
        "ended": "CloudCTI maintenance that affected your services has ended. Your services "
        "are monitored as usual again.",
    }[kind]
    rows = [("When", span_words(span, zone)), *_scope_rows(window, person)]
    footer = f"Maintenance window {window.id}, revision {window.revision}."
    return _Letter(
        _greeting(person), opening, rows, _emergency_lines(window), "", footer, person.status_url
    )
