"""Notices to customers about maintenance land in the fake SMTP mailbox with the right
recipients and at the right (virtual) times: when a window is scheduled, changed or cancelled,
24 hours before it, when it starts and when it ends; exactly once, across a restart of the
sender; the record keeps who, when, why and what it was before."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from console_scene import NOW, Scene, real_console

from alerting.channels.email import SmtpEmail
from alerting.sender import OutboxSender
from ctiwatch.config import SmtpConfig
from ctiwatch.fakes import FakeSmtp, ReceivedMail
from ctiwatch.web.service import WindowRequest

TOPOLOGY = {
    "customers": [
        {
            "id": "acme",
            "name": "ACME B.V.",
            "contact": {"name": "Anna de Vries", "email": "it@acme.example"},
            "locations": [{"id": "acme-ams", "name": "Amsterdam", "users": ["alice"]}],
        },
        {
            "id": "globex",
            "name": "Globex Nederland",
            "contact": {"name": "Hank Scorpio", "email": "ops@globex.example"},
            "locations": [{"id": "globex-utr", "name": "Utrecht", "users": ["bob"]}],
        },
        {
            "id": "initech",
            "name": "Initech",  # no contact e-mail: nobody to tell
            "locations": [{"id": "initech-ein", "users": ["judy"]}],
        },
    ]
}
# Thu 3 Dec 2026 22:00 - Fri 4 Dec 02:00 in Amsterdam; NOW is Tue 1 Dec 10:00 (60 h ahead).
START = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
END = START + timedelta(hours=4)


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp(port=0) as server:
        yield server


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url, topology=TOPOLOGY) as scene:
        yield scene


async def deliver(scene: Scene, smtp: FakeSmtp, at: datetime, worker: str = "w1") -> list[str]:
    """Move the virtual clock to ``at`` and send what is due; ``kind -> recipient`` lines."""
    scene.clock.set(at)
    config = SmtpConfig(host="127.0.0.1", port=smtp.port, sender="ctiwatch@example.net")
    sender = OutboxSender(
        scene.store.outbox, {"email": SmtpEmail(config, now=scene.clock.now)}, scene.clock,
        worker=worker,
    )  # fmt: skip
    sent = await sender.send_due()
    assert all(report.outcome == "sent" for report in sent)
    mails = smtp.messages[-len(sent) :] if sent else []
    return sorted(f"{m.message['X-Ctiwatch-Kind']} -> {','.join(m.rcpt_tos)}" for m in mails)


async def test_notices_go_to_the_covered_customers_at_schedule_reminder_start_and_end(
    scene: Scene, smtp: FakeSmtp
) -> None:
    window = await scene.console.schedule_maintenance(
        WindowRequest(START, END, ["crm"], ["acme", "globex"], "CRM connector upgrade"), "Sanne"
    )
    assert await deliver(scene, smtp, NOW) == [
        "maintenance_scheduled -> it@acme.example",
        "maintenance_scheduled -> ops@globex.example",
    ]
    mail = smtp.messages[0]
    assert mail.subject == (
        "[CloudCTI] Maintenance scheduled: Thu 03 Dec 2026 22:00 – Fri 04 Dec 02:00 CET "
        f"({'ACME B.V.' if 'acme' in mail.rcpt_tos[0] else 'Globex Nederland'})"
    )
    assert "Services:  CRM integration" in mail.text
    assert "Reason:    CRM connector upgrade" in mail.text
    assert f"Maintenance window {window.id}, revision 1." in mail.text
    # Nothing more until 24 hours before the start.
    assert await deliver(scene, smtp, START - timedelta(hours=24, minutes=1)) == []
    assert await deliver(scene, smtp, START - timedelta(hours=24)) == [
        "maintenance_reminder -> it@acme.example",
        "maintenance_reminder -> ops@globex.example",
    ]
    assert await deliver(scene, smtp, START - timedelta(seconds=1)) == []
    assert await deliver(scene, smtp, START) == [
        "maintenance_started -> it@acme.example",
        "maintenance_started -> ops@globex.example",
    ]
    # A sender of a new process life at the same instant sends nothing again.
    assert await deliver(scene, smtp, START + timedelta(minutes=1), worker="w2") == []
    assert await deliver(scene, smtp, END) == [
        "maintenance_ended -> it@acme.example",
        "maintenance_ended -> ops@globex.example",
    ]
    assert len(smtp.messages) == 8


async def test_a_window_scoped_to_a_location_tells_only_that_customer(
    scene: Scene, smtp: FakeSmtp
) -> None:
    await scene.console.schedule_maintenance(
        WindowRequest(START, END, None, None, "router swap", locations=["globex-utr"]), "Sanne"
    )
    assert await deliver(scene, smtp, NOW) == ["maintenance_scheduled -> ops@globex.example"]
    assert "Locations: Utrecht" in smtp.messages[0].text


async def test_a_change_is_told_and_replaces_the_pending_notices_keeping_the_record(
    scene: Scene, smtp: FakeSmtp
) -> None:
    window = await scene.console.schedule_maintenance(
        WindowRequest(START, END, None, ["acme"], "upgrade"), "Sanne"
    )
    await deliver(scene, smtp, NOW)
    later = NOW + timedelta(hours=2)
    scene.clock.set(later)
    changed = await scene.console.change_maintenance(
        window.id,
        WindowRequest(START, END + timedelta(hours=1), None, ["acme"], "upgrade"),
        "Piet",
        "the vendor needs an extra hour",
    )
    assert (changed.revision, changed.end) == (2, END + timedelta(hours=1))
    assert [(h.revision, h.action, h.actor, h.at, h.reason) for h in changed.history] == [
        (1, "scheduled", "Sanne", NOW, ""),
        (2, "changed", "Piet", later, "the vendor needs an extra hour"),
    ]
    assert changed.history[1].before is not None
    assert changed.history[1].before["end"] == END.isoformat()
    assert await deliver(scene, smtp, later) == ["maintenance_changed -> it@acme.example"]
    assert "Why changed: the vendor needs an extra hour" in smtp.messages[-1].text
    await deliver(scene, smtp, START - timedelta(hours=24))
    await deliver(scene, smtp, START)
    # The end notice of revision 1 was dropped: one end notice, at the new end.
    assert await deliver(scene, smtp, END) == []
    assert await deliver(scene, smtp, END + timedelta(hours=1)) == [
        "maintenance_ended -> it@acme.example"
    ]
    kinds = [m.message["X-Ctiwatch-Kind"] for m in smtp.messages]
    assert kinds == [
        "maintenance_scheduled",
        "maintenance_changed",
        "maintenance_reminder",
        "maintenance_started",
        "maintenance_ended",
    ]


async def test_a_cancelled_window_is_told_and_nothing_more_is_sent(
    scene: Scene, smtp: FakeSmtp
) -> None:
    window = await scene.console.schedule_maintenance(
        WindowRequest(START, END, None, ["acme"], "upgrade"), "S"
    )
    await deliver(scene, smtp, NOW)
    cancelled = await scene.console.cancel_maintenance(window.id, "Piet", "postponed to January")
    assert (cancelled.state, cancelled.history[-1].action) == ("cancelled", "cancelled")
    assert await deliver(scene, smtp, NOW) == ["maintenance_cancelled -> it@acme.example"]
    assert "Why cancelled: postponed to January" in smtp.messages[-1].text
    assert await deliver(scene, smtp, END + timedelta(days=1)) == []


async def test_an_emergency_inside_support_hours_says_so_in_every_notice(
    scene: Scene, smtp: FakeSmtp
) -> None:
    start = NOW + timedelta(hours=1)  # Tue 11:00, inside support hours, no notice
    view = await scene.console.schedule_maintenance(
        WindowRequest(
            start,
            start + timedelta(minutes=30),
            ["click2dial"],
            ["globex"],
            "hotfix",
            emergency=True,
            justification="calls drop for every Globex user since 09:50",
        ),
        "Sanne",
    )
    assert (view.emergency, view.justification) == (
        True,
        "calls drop for every Globex user since 09:50",
    )
    # No reminder: its instant has passed.
    assert await deliver(scene, smtp, NOW) == ["maintenance_scheduled -> ops@globex.example"]
    assert await deliver(scene, smtp, start) == ["maintenance_started -> ops@globex.example"]
    for mail in smtp.messages:
        assert "Emergency maintenance: exempt from the notice period" in mail.text
        assert "Justification: calls drop for every Globex user since 09:50" in mail.text


async def test_each_occurrence_of_a_recurring_window_gets_its_notices(
    scene: Scene, smtp: FakeSmtp
) -> None:
    await scene.console.schedule_maintenance(
        WindowRequest(
            START, END, None, ["acme"], "weekly patching", recurrence="FREQ=WEEKLY;COUNT=2"
        ),
        "Sanne",
    )
    assert await deliver(scene, smtp, NOW) == ["maintenance_scheduled -> it@acme.example"]
    assert "Repeats:   FREQ=WEEKLY;COUNT=2 (2 occurrences)" in smtp.messages[0].text
    week = timedelta(days=7)
    assert await deliver(scene, smtp, END) == [
        "maintenance_ended -> it@acme.example",
        "maintenance_reminder -> it@acme.example",
        "maintenance_started -> it@acme.example",
    ]
    assert await deliver(scene, smtp, START + week - timedelta(hours=24)) == [
        "maintenance_reminder -> it@acme.example"
    ]
    assert await deliver(scene, smtp, END + week) == [
        "maintenance_ended -> it@acme.example",
        "maintenance_started -> it@acme.example",
    ]


async def test_a_notice_arrives_as_text_with_a_styled_html_part_beside_it_everything_escaped(
    scene: Scene, smtp: FakeSmtp
) -> None:
    await scene.console.schedule_maintenance(
        WindowRequest(START, END, ["crm"], ["acme"], "Upgrade <b>CRM</b> & connector"), "Sanne"
    )
    await deliver(scene, smtp, NOW)
    mail = smtp.messages[-1].message
    assert mail.get_content_type() == "multipart/alternative"
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    assert "Reason:    Upgrade <b>CRM</b> & connector" in text_part.get_content()
    html = html_part.get_content()
    assert "Upgrade &lt;b&gt;CRM&lt;/b&gt; &amp; connector" in html
    assert "<b>CRM</b>" not in html
    assert "<style" not in html and "<link" not in html  # inline CSS only
    assert 'style="' in html
    assert "Thu 03 Dec 2026 22:00 – Fri 04 Dec 02:00 CET" in html


# --- the link to the customer's own status page --------------------------------------------

LINKED = {
    "customers": [
        *TOPOLOGY["customers"],
        {
            "id": "hooli",
            "name": "Hooli",  # a contact, but neither a link nor a public page
            "contact": {"email": "noc@hooli.example"},
            "locations": [{"id": "hooli-gvr", "users": ["gavin"]}],
        },
    ]
}
LINKED["customers"][1] = {**LINKED["customers"][1], "public": True}  # globex
PUBLIC_URL = "https://status.cloudcti.example"
URL = re.compile(r"https?://[^\s\"'<>]+")


def urls(mail: ReceivedMail) -> set[str]:
    """Every address in the mail, its text and its HTML part."""
    return set(URL.findall(mail.text)) | set(URL.findall(mail.html))


@pytest.fixture
async def linked(storage_url: str) -> AsyncIterator[Scene]:
    settings = {"web": {"public_url": PUBLIC_URL + "/"}}
    async with real_console(storage_url, topology=LINKED, settings=settings) as scene:
        yield scene


async def test_every_notice_links_to_the_customers_own_status_page_and_nothing_else(
    linked: Scene, smtp: FakeSmtp
) -> None:
    token = await linked.store.customer_links.make("acme", NOW, "test")
    assert token is not None
    own = {
        "it@acme.example": f"{PUBLIC_URL}/status/{token}",
        "ops@globex.example": f"{PUBLIC_URL}/status/c/globex",  # public: its public page
    }
    window = await linked.console.schedule_maintenance(
        WindowRequest(START, END, None, None, "core switch replacement"), "Sanne"
    )
    await deliver(linked, smtp, NOW)
    later = NOW + timedelta(hours=1)
    linked.clock.set(later)
    await linked.console.change_maintenance(
        window.id,
        WindowRequest(START, END + timedelta(hours=1), None, None, "core switch replacement"),
        "Piet",
        "an hour longer",
    )
    for at in (later, START - timedelta(hours=24), START, END + timedelta(hours=1)):
        await deliver(linked, smtp, at)
    week = timedelta(days=7)
    another = await linked.console.schedule_maintenance(
        WindowRequest(START + week, END + week, None, None, "core switch replacement, part 2"),
        "Sanne",
    )
    await linked.console.cancel_maintenance(another.id, "Piet", "not needed after all")
    await deliver(linked, smtp, END + timedelta(hours=1))

    kinds = {m.message["X-Ctiwatch-Kind"] for m in smtp.messages}
    assert kinds == {
        f"maintenance_{k}"
        for k in ("scheduled", "changed", "reminder", "started", "ended", "cancelled")
    }
    for mail in smtp.messages:
        [to] = mail.rcpt_tos
        if to == "noc@hooli.example":
            assert urls(mail) == set()  # no link made, not public: no link, the text as ever
            assert "status page" not in mail.text
            assert mail.text.startswith("Dear customer,\n")
            assert "Reason:    core switch replacement" in mail.text
            continue
        assert urls(mail) == {own[to]}, mail.subject
        assert f"\nYour status page: {own[to]}\n" in mail.text
        assert f'<a href="{own[to]}"' in mail.html
        assert "/incidents" not in mail.text + mail.html


async def test_a_rotated_link_is_the_one_in_the_notices_from_then_on(
    linked: Scene, smtp: FakeSmtp
) -> None:
    first = await linked.store.customer_links.make("acme", NOW, "test")
    window = await linked.console.schedule_maintenance(
        WindowRequest(START, END, None, ["acme"], "upgrade"), "Sanne"
    )
    await deliver(linked, smtp, NOW)
    second = await linked.store.customer_links.make("acme", NOW, "test", rotate=True)
    await linked.console.change_maintenance(
        window.id,
        WindowRequest(
            START + timedelta(hours=1), END + timedelta(hours=1), None, ["acme"], "upgrade"
        ),
        "Piet",
        "later",
    )
    await deliver(linked, smtp, NOW)
    scheduled, changed = smtp.messages
    assert urls(scheduled) == {f"{PUBLIC_URL}/status/{first}"}
    assert urls(changed) == {f"{PUBLIC_URL}/status/{second}"}


async def test_without_a_public_url_a_notice_carries_no_link(
    storage_url: str, smtp: FakeSmtp
) -> None:
    settings = {"web": {"public_url": None}}
    async with real_console(storage_url, topology=LINKED, settings=settings) as scene:
        await scene.store.customer_links.make("acme", NOW, "test")
        await scene.console.schedule_maintenance(
            WindowRequest(START, END, None, None, "upgrade"), "Sanne"
        )
        await deliver(scene, smtp, NOW)
    assert len(smtp.messages) == 3
    for mail in smtp.messages:
        assert urls(mail) == set()
        assert "status page" not in mail.text
        assert "CloudCTI has scheduled maintenance that affects your services." in mail.text
        assert "\nCloudCTI\n" in mail.text
