"""Notices to customers about maintenance (sla.md, Maintenance): when a window is scheduled,
changed or cancelled, a reminder before each occurrence, and when each starts and ends.

Pure: the window, its recipients and ``now`` in; the e-mails with the instant each is due out.
The shell writes them as outbox rows (``not_before``) in the transaction that changes the
window, so a notice and its cause are never stored apart and the outbox sends each once: its
idempotency key names the window, the revision, the kind, the occurrence and the recipient.
A change or cancellation drops the pending notices of the earlier revisions (prefix
:func:`notice_prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from alerting.messages import one_line

NoticeAction = Literal["scheduled", "changed", "cancelled"]
SHOWN_OCCURRENCES = 10  # occurrences a notice lists; the feeds hold them all


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


@dataclass(frozen=True, slots=True)
class Notice:
    key: str
    to: str
    kind: str  # maintenance_ + scheduled, changed, cancelled, reminder, started or ended
    subject: str
    text: str
    due: datetime


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
        found.append(
            Notice(
                key=f"{base}:{action}:{person.email}",
                to=person.email,
                kind=f"maintenance_{action}",
                subject=_subject(_ACTION_WORDS[action], window.occurrences[0], person, zone),
                text=_body(window, person, action, zone, why),
                due=now,
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
                found.append(
                    Notice(
                        key=f"{base}:{kind}:{index}:{person.email}",
                        to=person.email,
                        kind=f"maintenance_{kind}",
                        subject=_subject(_OCCURRENCE_WORDS[kind], span, person, zone),
                        text=_occurrence_body(window, span, person, kind, zone),
                        due=due,
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


def _scope_lines(window: WindowFacts, person: Recipient) -> list[str]:
    services = ", ".join(window.services) if window.services else "every service"
    locations = ", ".join(person.locations) if person.locations else "every location"
    lines = [f"Services:  {services}", f"Locations: {locations}", f"Reason:    {window.reason}"]
    if window.emergency:
        lines += [
            "Emergency maintenance: exempt from the notice period and from the rule that "
            "maintenance lies outside support hours.",
            f"Justification: {window.justification}",
        ]
    return lines


def _greeting(person: Recipient) -> str:
    return f"Dear {person.contact_name}," if person.contact_name else "Dear customer,"


def _body(
    window: WindowFacts, person: Recipient, action: NoticeAction, zone: ZoneInfo, why: str
) -> str:
    opening = {
        "scheduled": "CloudCTI has scheduled maintenance that affects your services.",
        "changed": "CloudCTI has changed a maintenance window that affects your services. "
        "It now reads as below.",
        "cancelled": "CloudCTI has cancelled the maintenance window below: it will not take "
        "place (any further occurrences are cancelled too).",
    }[action]
    lines = [_greeting(person), "", opening, ""]
    first = window.occurrences[0]
    lines.append(f"When:      {span_words(first, zone)}")
    if len(window.occurrences) > 1:
        lines.append(f"Repeats:   {window.recurrence} ({len(window.occurrences)} occurrences)")
        lines += [
            f"           {span_words(s, zone)}" for s in window.occurrences[1:SHOWN_OCCURRENCES]
        ]
        if len(window.occurrences) > SHOWN_OCCURRENCES:
            lines.append(f"           ... and {len(window.occurrences) - SHOWN_OCCURRENCES} more")
    lines += _scope_lines(window, person)
    if why:
        lines.append(f"Why {action}: {why}")
    if action != "cancelled":
        lines += [
            "",
            "During the window no incident is opened for the services it covers. You will get "
            "a reminder before it starts, and a notice when it starts and when it ends.",
        ]
    lines += ["", f"Maintenance window {window.id}, revision {window.revision}.", "", "CloudCTI"]
    return "\n".join(lines) + "\n"


def _occurrence_body(
    window: WindowFacts,
    span: tuple[datetime, datetime],
    person: Recipient,
    kind: str,
    zone: ZoneInfo,
) -> str:
    opening = {
        "reminder": "A reminder: CloudCTI maintenance that affects your services is coming up.",
        "started": "CloudCTI maintenance that affects your services has started.",
        "ended": "CloudCTI maintenance that affected your services has ended. Your services "
        "are monitored as usual again.",
    }[kind]
    lines = [_greeting(person), "", opening, "", f"When:      {span_words(span, zone)}"]
    lines += _scope_lines(window, person)
    lines += ["", f"Maintenance window {window.id}, revision {window.revision}.", "", "CloudCTI"]
    return "\n".join(lines) + "\n"
