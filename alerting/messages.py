"""Message text: SMS, the words a voice call reads out, and the e-mail report. Pure functions.

* SMS stays within GSM-7 (plain ASCII here; anything else is transliterated or replaced) and
  within one 160-character segment: the scope summary is shortened to make room.
* Voice text is plain sentences; ``alerting.channels.twilio_voice`` wraps it in TwiML with the
  "press 1 to acknowledge" prompt.
* The e-mail report holds everything the SLA asks a complete report to hold (section 1.3 and 4):
  customer details, a description, the priority and its reason, the affected locations and users,
  and the probe evidence as log lines. Plain text and HTML, rendered by jinja2 with autoescape.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from alerting.model import IncidentView, RoutingPolicy, Trigger, TriggerKind
from classifier.observation import Service
from sla.priority import Priority
from sla.words import unset_target

SMS_LIMIT = 160

# ASCII characters that are not in the GSM 03.38 basic or extension table.
_NOT_GSM = {"`": "'"}
_TRANSLITERATE = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u20ac": "EUR",
    "\u00df": "ss",
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u00f8": "o",
    "\u00d8": "O",
    "\u2192": "->",
}


def to_gsm7(text: str) -> str:
    """``text`` in characters every phone shows in a GSM-7 SMS: ASCII, accents dropped.

    Anything that has no plain equivalent (emoji, CJK, ...) becomes ``?``, so the message is
    never sent as UCS-2 (70 characters a segment instead of 160).
    """
    out: list[str] = []
    for char in text:
        char = _TRANSLITERATE.get(char, char)
        if len(char) == 1 and not char.isascii():
            decomposed = unicodedata.normalize("NFKD", char)
            char = "".join(c for c in decomposed if c.isascii() and not unicodedata.combining(c))
            char = char or "?"
        for c in char:
            if c in ("\n", "\r") or 32 <= ord(c) < 127:
                out.append(_NOT_GSM.get(c, c))
            else:
                out.append("?" if c != "\t" else " ")
    return "".join(out)


def one_line(text: str) -> str:
    """``text`` on one line: every run of whitespace or control characters (CR, LF, tab, NUL,
    a Unicode line separator, ...) becomes one space. For e-mail subjects and other header
    values, where a line break is an error (or, unchecked, an injected header)."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    return " ".join(cleaned.split())


def priority_label(priority: int) -> str:
    return Priority(priority).label


def local_time(when: datetime, timezone: str) -> datetime:
    return when.astimezone(ZoneInfo(timezone))


def short_time(when: datetime, timezone: str) -> str:
    """``Mon 07 Dec 10:30`` in the display zone."""
    return local_time(when, timezone).strftime("%a %d %b %H:%M")


def long_time(when: datetime | None, timezone: str) -> str:
    if when is None:
        return "not set"
    local = local_time(when, timezone)
    return f"{local.strftime('%a %Y-%m-%d %H:%M')} ({local.tzname()})"


# A probe log line starts with the result's instant in UTC (``classifier.rules``: the stored
# fact, the same on every server); people read it in the display zone like every other time.
_EVIDENCE_AT = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})Z ", re.ASCII)


def evidence_line(line: str, timezone: str) -> str:
    """A probe log line as people read it: its leading UTC instant
    (``2026-12-01T09:00:03Z acme-ams/alice ...``) in the display zone
    (``2026-12-01 10:00:03 CET acme-ams/alice ...``); any other line as it is."""
    found = _EVIDENCE_AT.match(line)
    if found is None:
        return line
    try:
        at = datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)
    except ValueError:  # the shape of a time but none (month 13): leave it as it was written
        return line
    return f"{local_time(at, timezone):%Y-%m-%d %H:%M:%S %Z} {line[found.end() :]}"


def _due(when: datetime | None, priority: int, timezone: str) -> str:
    """A deadline, or the SLA's words for one it does not set."""
    return unset_target(priority) if when is None else long_time(when, timezone)


def scope_summary(incident: IncidentView) -> str:
    """``click2dial down at acme-ams (3 users)``; one part per service, condition and location."""
    groups: dict[tuple[str, str, str], list[str | None]] = {}
    for entry in incident.scope:
        groups.setdefault((entry.service, entry.condition, entry.location), []).append(entry.user)
    parts = []
    for (service, condition, location), users in groups.items():
        if service == Service.HTTP:  # a customer's checks: named, they are few
            names = sorted({user for user in users if user})
            parts.append(f"{'check' if len(names) == 1 else 'checks'} {', '.join(names)} failing")
            continue
        if any(user is None for user in users):
            who = "all users"
        else:
            count = len(set(users))
            who = f"{count} user" if count == 1 else f"{count} users"
        parts.append(f"{service} {condition} at {location} ({who})")
    if parts:
        return "; ".join(parts)
    return incident.title or "incident"


def _fit(prefix: str, summary: str, suffix: str, limit: int = SMS_LIMIT) -> str:
    text = to_gsm7(prefix + summary + suffix)
    if len(text) <= limit:
        return text
    room = limit - len(to_gsm7(prefix + suffix)) - 3
    return to_gsm7(prefix + to_gsm7(summary)[: max(room, 0)] + "..." + suffix)[:limit]


def _resolved_by(who: str) -> str:
    """How a resolution reads in a text: automatically, or by whom (nothing when unknown)."""
    if not who:
        return ""
    return " automatically" if who == "auto" else f" by {who}"


def sms_text(trigger: Trigger, incident: IncidentView, policy: RoutingPolicy) -> str:
    """The SMS for ``trigger``, e.g. ``CTIWATCH P1 #12 acme: click2dial down at acme-ams
    (3 users). Reply ACK 12``."""
    n, p, customer = incident.number, incident.priority, incident.customer.id
    head = f"CTIWATCH P{p} #{n} {customer}: "
    ack = f". Reply ACK {n}"
    summary = scope_summary(incident)
    kind = trigger.kind
    if kind is TriggerKind.OPENED:
        return _fit(head, summary, ack)
    if kind is TriggerKind.RAISED:
        before = f"P{trigger.previous_priority} to " if trigger.previous_priority else ""
        return _fit(f"{head}raised {before}P{p}: ", summary, ack)
    if kind is TriggerKind.ESCALATED:
        step = trigger.escalation.name if trigger.escalation else "next step"
        return _fit(
            f"CTIWATCH ESCALATED to {step}, not acknowledged: P{p} #{n} {customer}: ", summary, ack
        )
    if kind.is_sla_timer:
        target = kind.target
        when = short_time(trigger.due, policy.timezone) if trigger.due else "now"
        if kind.value.endswith("_warning"):
            lead = f"{head}{target} due {when}: "
        else:
            lead = f"{head}{target} target BREACHED (due {when}): "
        return _fit(lead, summary, ack if target == "response" else "")
    if kind is TriggerKind.CONTINGENCY:
        reason = f" {trigger.reason}." if trigger.reason else ""
        return _fit(f"CTIWATCH CONTINGENCY.{reason} P{p} #{n} {customer}: ", summary, ack)
    if kind is TriggerKind.RESOLVED:
        by = _resolved_by(incident.resolved_by)
        return _fit(f"CTIWATCH resolved{by}: P{p} #{n} {customer}: ", summary, "")
    raise ValueError(f"no SMS text for trigger kind {kind!r}")


def voice_text(trigger: Trigger, incident: IncidentView, policy: RoutingPolicy) -> str:
    """The sentences a call reads out (the TwiML adds the "press 1" prompt)."""
    n, p = incident.number, incident.priority
    who = incident.customer.label
    summary = scope_summary(incident).replace(";", ".")
    kind = trigger.kind
    if kind is TriggerKind.OPENED:
        lead = f"New priority {p} incident for {who}, number {n}."
    elif kind is TriggerKind.RAISED:
        lead = f"Incident number {n} for {who} is raised to priority {p}."
    elif kind is TriggerKind.ESCALATED:
        step = trigger.escalation.name if trigger.escalation else "the next step"
        lead = (
            f"Escalation to {step}. Priority {p} incident number {n} for {who} "
            "has not been acknowledged."
        )
    elif kind.is_sla_timer:
        target = kind.target
        when = (
            local_time(trigger.due, policy.timezone).strftime("%A %H:%M") if trigger.due else "now"
        )
        state = "is due" if kind.value.endswith("_warning") else "has been breached, it was due"
        lead = f"Priority {p} incident number {n} for {who}: the {target} target {state} {when}."
    elif kind is TriggerKind.CONTINGENCY:
        reason = f" {trigger.reason}." if trigger.reason else ""
        lead = (
            f"Contingency call from ctiwatch.{reason} Priority {p} incident for {who}, number {n}."
        )
    elif kind is TriggerKind.RESOLVED:
        lead = f"Incident number {n} for {who} is resolved."
    else:
        raise ValueError(f"no voice text for trigger kind {kind!r}")
    return to_gsm7(f"This is ctiwatch. {lead} {summary}.")


# --- e-mail -------------------------------------------------------------------------------------

_REPORT_TXT = """\
{{ heading }}

{% if incident_url %}
Open in ctiwatch: {{ incident_url }}

{% endif %}
Customer
  Name:     {{ customer.label }} ({{ customer.id }})
  Contact:  {{ contact or "not known" }}

Description
  {{ description }}

Priority
  P{{ priority }} {{ priority_label }}{% if reason %}: {{ reason }}{% endif %}


Reported
  {{ opened_at }}
  Automatic:   {{ "yes, by ctiwatch's probes" if automatic else "no, opened by a person" }}

Deadlines (SLA)
  Response due: {{ response_due }}
  Update due:   {{ update_due }}
  Repair due:   {{ repair_due }}

Affected locations and users
{% for row in affected %}
  {{ row }}
{% else %}
  none recorded
{% endfor %}

Probe evidence (log lines of the failing checks)
{% for line in evidence %}
  {{ line }}
{% else %}
  none recorded
{% endfor %}

Sent by ctiwatch. On-call staff acknowledge incident #{{ number }} by SMS: ACK {{ number }}
"""

# The HTML parts: inline CSS only (mail clients drop <style> and external sheets), every value
# escaped (autoescape), the same facts as the plain text beside them.
_STYLES = {
    "body": "margin:0;padding:16px;background:#f3f4f6;font-family:Segoe UI,Helvetica,Arial,"
    "sans-serif;font-size:14px;line-height:1.45;color:#111827",
    "card": "max-width:640px;margin:0 auto;background:#ffffff;border:1px solid #e5e7eb;"
    "border-radius:8px;padding:20px 24px",
    "h1": "margin:0 0 12px;font-size:20px;line-height:1.3;color:#111827",
    "h2": "margin:18px 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;"
    "color:#6b7280",
    "p": "margin:0 0 8px",
    "th": "text-align:left;padding:2px 16px 2px 0;font-weight:600;color:#374151",
    "td": "padding:2px 0",
    "pre": "margin:0;padding:10px;background:#111827;color:#f9fafb;border-radius:6px;"
    "font-size:12px;white-space:pre-wrap;word-break:break-word",
    "button": "display:inline-block;padding:8px 14px;background:#1d4ed8;color:#ffffff;"
    "text-decoration:none;border-radius:6px;font-weight:600",
    "badge": "display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;"
    "color:#ffffff;background:{colour}",
    "foot": "margin:16px 0 0;font-size:12px;color:#6b7280",
}
PRIORITY_COLOURS = {1: "#b91c1c", 2: "#c2410c", 3: "#a16207", 4: "#4b5563"}

_REPORT_HTML = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="{{ css.body }}">
<div style="{{ css.card }}">
<h1 style="{{ css.h1 }}">{{ heading }}</h1>
<p style="{{ css.p }}"><span style="{{ badge }}">P{{ priority }} {{ priority_label }}</span>
{% if reason %} {{ reason }}{% endif %}</p>
{% if incident_url %}<p style="{{ css.p }}"><a href="{{ incident_url }}" \
style="{{ css.button }}">Open incident #{{ number }} in ctiwatch</a></p>{% endif %}
<h2 style="{{ css.h2 }}">Customer</h2>
<p style="{{ css.p }}">{{ customer.label }} ({{ customer.id }})<br>Contact: {{ contact or \
"not known" }}</p>
<h2 style="{{ css.h2 }}">Description</h2>
<p style="{{ css.p }}">{{ description }}</p>
<h2 style="{{ css.h2 }}">Reported</h2>
<p style="{{ css.p }}">{{ opened_at }}<br>Automatic: {{ "yes, by ctiwatch's probes" if automatic
   else "no, opened by a person" }}</p>
<h2 style="{{ css.h2 }}">Deadlines (SLA)</h2>
<table role="presentation" cellspacing="0" cellpadding="0">
<tr><th style="{{ css.th }}">Response due</th><td style="{{ css.td }}">{{ response_due }}</td></tr>
<tr><th style="{{ css.th }}">Update due</th><td style="{{ css.td }}">{{ update_due }}</td></tr>
<tr><th style="{{ css.th }}">Repair due</th><td style="{{ css.td }}">{{ repair_due }}</td></tr>
</table>
<h2 style="{{ css.h2 }}">Affected locations and users</h2>
<ul style="{{ css.p }}">
{% for row in affected %}<li>{{ row }}</li>
{% else %}<li>none recorded</li>
{% endfor %}
</ul>
<h2 style="{{ css.h2 }}">Probe evidence</h2>
<pre style="{{ css.pre }}">
{% for line in evidence %}{{ line }}
{% else %}none recorded
{% endfor %}
</pre>
<p style="{{ css.foot }}">Sent by ctiwatch. On-call staff acknowledge incident #{{ number }} by \
SMS: <code>ACK {{ number }}</code>{% if incident_url %} &middot; <a href="{{ incident_url }}">\
{{ incident_url }}</a>{% endif %}</p>
</div>
</body></html>
"""

_RESOLVED_TXT = """\
{{ heading }}

Customer:  {{ customer.label }} ({{ customer.id }})
Priority:  P{{ priority }} {{ priority_label }}
Reported:  {{ opened_at }}
Resolved:  {{ resolved_at }}{% if resolved_by %} by {{ resolved_by }}{% endif %}

{% if incident_url %}
Open in ctiwatch: {{ incident_url }}

{% endif %}
Affected locations and users
{% for row in affected %}
  {{ row }}
{% else %}
  none recorded
{% endfor %}
"""

_RESOLVED_HTML = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="{{ css.body }}">
<div style="{{ css.card }}">
<h1 style="{{ css.h1 }}">{{ heading }}</h1>
<table role="presentation" cellspacing="0" cellpadding="0">
<tr><th style="{{ css.th }}">Customer</th><td style="{{ css.td }}">{{ customer.label }} \
({{ customer.id }})</td></tr>
<tr><th style="{{ css.th }}">Priority</th><td style="{{ css.td }}"><span style="{{ badge }}">\
P{{ priority }} {{ priority_label }}</span></td></tr>
<tr><th style="{{ css.th }}">Reported</th><td style="{{ css.td }}">{{ opened_at }}</td></tr>
<tr><th style="{{ css.th }}">Resolved</th><td style="{{ css.td }}">{{ resolved_at }}\
{% if resolved_by %} by {{ resolved_by }}{% endif %}</td></tr>
</table>
<h2 style="{{ css.h2 }}">Affected locations and users</h2>
<ul style="{{ css.p }}">
{% for row in affected %}<li>{{ row }}</li>
{% else %}<li>none recorded</li>
{% endfor %}
</ul>
{% if incident_url %}<p style="{{ css.p }}"><a href="{{ incident_url }}" \
style="{{ css.button }}">Open incident #{{ number }} in ctiwatch</a></p>{% endif %}
</div>
</body></html>
"""

_TEMPLATES = {
    "report.txt": _REPORT_TXT,
    "report.html": _REPORT_HTML,
    "resolved.txt": _RESOLVED_TXT,
    "resolved.html": _RESOLVED_HTML,
}


def _environment() -> jinja2.Environment:
    # Built per call: the templates are small, and it keeps this module free of shared state.
    return jinja2.Environment(
        loader=jinja2.DictLoader(_TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        cache_size=0,
    )


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


def affected_rows(incident: IncidentView) -> list[str]:
    """``click2dial down at acme-ams: alice, bob (P2)``, one row per service/location."""
    groups: dict[tuple[str, str, str], list[tuple[str | None, int]]] = {}
    for entry in incident.scope:
        key = (entry.service, entry.condition, entry.location)
        groups.setdefault(key, []).append((entry.user, entry.priority))
    rows = []
    for (service, condition, location), members in groups.items():
        users = sorted({u for u, _ in members if u is not None})
        if service == Service.HTTP:
            for name in users:
                top = min(p for u, p in members if u == name)
                rows.append(f"check {name} failing (P{top})")
            continue
        who = "all users" if any(u is None for u, _ in members) else ", ".join(users)
        top = min(p for _, p in members)
        rows.append(f"{service} {condition} at {location}: {who} (P{top})")
    return rows


def _context(
    incident: IncidentView, policy: RoutingPolicy, subject: str, heading: str
) -> dict[str, Any]:
    customer = incident.customer
    contact = ", ".join(
        part
        for part in (customer.contact_name, customer.contact_email, customer.contact_phone)
        if part
    )
    tz = policy.timezone
    return {
        "subject": subject,
        "heading": heading,
        "number": incident.number,
        "customer": customer,
        "contact": contact,
        "description": incident.description or incident.title or scope_summary(incident),
        "priority": incident.priority,
        "priority_label": priority_label(incident.priority),
        "reason": incident.priority_reason,
        "automatic": incident.automatic,
        "opened_at": long_time(incident.opened_at, tz),
        "response_due": _due(incident.response_due, incident.priority, tz),
        "update_due": _due(incident.update_due, incident.priority, tz),
        "repair_due": _due(incident.repair_due, incident.priority, tz),
        "affected": affected_rows(incident),
        "evidence": [evidence_line(line, tz) for line in incident.evidence],
        "incident_url": incident_url(policy, incident.number),
        "css": _STYLES,
        "badge": _STYLES["badge"].format(colour=PRIORITY_COLOURS.get(incident.priority, "#4b5563")),
    }


def incident_url(policy: RoutingPolicy, number: int) -> str:
    """The incident's page in the console: ``{public_url}/incidents/N``; "" without one."""
    if not policy.public_url:
        return ""
    return f"{policy.public_url.rstrip('/')}/incidents/{number}"


def _render(name: str, context: Mapping[str, Any]) -> str:
    return _environment().get_template(name).render(**context)


def email_report(
    incident: IncidentView, policy: RoutingPolicy, heading_prefix: str = ""
) -> EmailContent:
    """The complete report to the support address (``kind`` ``report``)."""
    p = incident.priority
    subject = one_line(
        f"[ctiwatch] {heading_prefix}P{p} {priority_label(p)} incident #{incident.number}"
        f" - {incident.customer.label}: {scope_summary(incident)}"
    )
    heading = f"{heading_prefix}Incident report #{incident.number}: {incident.customer.label}"
    context = _context(incident, policy, subject, heading)
    return EmailContent(subject, _render("report.txt", context), _render("report.html", context))


def email_resolved(incident: IncidentView, trigger: Trigger, policy: RoutingPolicy) -> EmailContent:
    subject = one_line(
        f"[ctiwatch] Resolved: incident #{incident.number} - {incident.customer.label}"
    )
    heading = f"Incident #{incident.number} for {incident.customer.label} is resolved"
    context = _context(incident, policy, subject, heading)
    context["resolved_at"] = long_time(trigger.at, policy.timezone)
    context["resolved_by"] = incident.resolved_by
    return EmailContent(
        subject, _render("resolved.txt", context), _render("resolved.html", context)
    )
