"""The fake phone and mailbox pages: newest first, Amsterdam local times, escaped, linked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ctiwatch.fakes import FakeCall, FakeMessage, FakeSmtp, FakeTwilio, ReceivedMail
from ctiwatch.fakes.views import add_fake_views, reply_numbers, status_class

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

A, B, TWILIO = "+31611111111", "+31622222222", "+3197010000002"
GATHER = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather numDigits="1" '
    'action="/twilio/voice/gather?incident=7"><Say>Incident 7 for acme.</Say>'
    "<Say>Press 1 to acknowledge incident 7.</Say></Gather></Response>"
)


def utc(month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, 123456, tzinfo=UTC)


def sms(sid: str, to: str, body: str, at: datetime, status: str = "queued") -> FakeMessage:
    return FakeMessage(sid, to, TWILIO, body, status, at)


def mail(subject: str, to: str, text: str, html: str, at: datetime) -> ReceivedMail:
    message = EmailMessage()
    message["From"] = "ctiwatch@example.nl"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@ctiwatch>"
    message["Date"] = format_datetime(at)
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return ReceivedMail("ctiwatch@example.nl", (to,), message)


@pytest.fixture
def twilio() -> FakeTwilio:
    fake = FakeTwilio(account_sid="AC" + "1" * 32, auth_token="t", webhook_base_url="http://x")
    # Recorded out of time order: the page sorts by time, not by arrival.
    fake.messages += [
        sms("SM2", B, "CTIWATCH P1 #7 escalated <acme> & co", utc(11, 25, 17, 5), "delivered"),
        sms("SM1", A, "CTIWATCH P1 #7 acme Click2Dial down", utc(11, 25, 17, 2, 10), "failed"),
        sms("SM3", A, "CTIWATCH summer test", utc(7, 1, 10, 0)),
    ]
    fake.calls.append(FakeCall("CA9", A, TWILIO, GATHER, "queued", utc(11, 25, 17, 3)))
    return fake


@pytest.fixture
def smtp() -> FakeSmtp:
    box = FakeSmtp()
    box.messages += [
        mail("first report", "oncall@example.nl", "Priority: P1 <down>", "", utc(11, 25, 17, 1)),
        mail(
            "second report",
            "support@example.nl",
            "Resolved.",
            "<h1>Resolved</h1><script>alert(1)</script>",
            utc(11, 25, 17, 9, 30),
        ),
    ]
    return box


@pytest.fixture
async def client(aiohttp_client: ClientFactory, twilio: FakeTwilio, smtp: FakeSmtp) -> Client:
    app = web.Application()
    add_fake_views(app, twilio, smtp, prefix="/fakes", oncall=[B, A])
    return await aiohttp_client(app)


async def text_of(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status
    return await response.text()


def in_order(page: str, *parts: str) -> bool:
    positions = [page.index(part) for part in parts]
    return positions == sorted(positions)


async def test_phone_lists_sms_newest_first_in_amsterdam_local_time(client: Client) -> None:
    page = await text_of(client, "/fakes/phone")
    assert '<div class="bubble">CTIWATCH P1 #7 escalated &lt;acme&gt; &amp; co</div>' in page
    assert in_order(page, ">Wed 25 Nov 18:05:00</time>", ">Wed 25 Nov 18:02:10</time>")
    assert in_order(page, "CTIWATCH P1 #7 escalated", "Click2Dial down", "summer test")
    assert ">Wed 01 Jul 12:00:00</time>" in page  # summer time: UTC+2
    assert '<time datetime="2026-11-25T18:02:10.123456+01:00"' in page
    assert '<span class="pill s-ok">delivered</span>' in page
    assert '<span class="pill s-down">failed</span>' in page
    assert "17:02:10" not in page


async def test_phone_shows_what_a_call_says_with_a_press_1_button(client: Client) -> None:
    page = await text_of(client, "/fakes/phone")
    assert "<p>&ldquo;Incident 7 for acme.&rdquo;</p>" in page
    assert "<p>&ldquo;Press 1 to acknowledge incident 7.&rdquo;</p>" in page
    assert ">Wed 25 Nov 18:03:00</time>" in page
    assert '<input type="hidden" name="call" value="CA9">' in page
    assert '<button type="submit" class="small">Press 1</button>' in page


async def test_reply_box_prefills_the_first_oncall_number(client: Client) -> None:
    page = await text_of(client, "/fakes/phone")
    assert 'name="from" value="+31622222222"' in page
    assert 'placeholder="ACK 1"' in page
    assert '<option value="+31622222222"><option value="+31611111111">' in page


async def test_phone_and_mailbox_link_to_each_other_and_the_status_page(client: Client) -> None:
    phone = await text_of(client, "/fakes/phone")
    mailbox = await text_of(client, "/fakes/mailbox")
    assert '<a href="/fakes/mailbox" class="">Mailbox</a>' in phone
    assert '<a href="/fakes/phone" class="active">Fake phone</a>' in phone
    assert '<a href="/fakes/phone" class="">Fake phone</a>' in mailbox
    assert '<a href="/fakes/mailbox" class="active">Mailbox</a>' in mailbox
    assert '<a href="/">Status page</a>' in phone
    assert '<a href="/">Status page</a>' in mailbox


async def test_mailbox_lists_newest_first_with_local_times_and_expandable_text(
    client: Client,
) -> None:
    page = await text_of(client, "/fakes/mailbox")
    assert in_order(page, "second report", "first report")
    assert in_order(page, ">Wed 25 Nov 18:09:30</time>", ">Wed 25 Nov 18:01:00</time>")
    assert '<details class="mail" data-index="1" open>' in page
    assert '<details class="mail" data-index="0">' in page
    assert '<pre class="text">Priority: P1 &lt;down&gt;\n</pre>' in page
    assert '<iframe src="/fakes/mailbox/1.html"' in page
    assert "/fakes/mailbox/0.html" not in page  # the first mail has no HTML part


async def test_html_part_is_served_sandboxed(client: Client) -> None:
    response = await client.get("/fakes/mailbox/1.html")
    assert response.status == 200
    assert await response.text() == "<h1>Resolved</h1><script>alert(1)</script>\n"
    policy = response.headers["Content-Security-Policy"]
    assert "sandbox" in policy
    assert "script-src" not in policy and policy.startswith("default-src 'none'")
    assert (await client.get("/fakes/mailbox/0.html")).status == 404
    assert (await client.get("/fakes/mailbox/2.html")).status == 404


async def test_pages_style_themselves_under_their_own_nonce(client: Client) -> None:
    response = await client.get("/fakes/phone")
    policy = response.headers["Content-Security-Policy"]
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in await response.text()


def test_status_colours() -> None:
    assert [status_class(s) for s in ("delivered", "completed", "queued", "no-answer")] == [
        "s-ok",
        "s-ok",
        "s-degraded",
        "s-down",
    ]


def test_reply_numbers_are_oncall_first_then_everyone_reached_in_order(
    twilio: FakeTwilio,
) -> None:
    assert reply_numbers([], twilio) == [A, B]  # A was texted in July
    assert reply_numbers(["+31633333333"], twilio) == ["+31633333333", A, B]


async def test_each_person_has_one_thread_with_their_replies_and_our_answers(
    client: Client, twilio: FakeTwilio
) -> None:
    twilio.replies += [
        FakeMessage(
            "SM8", TWILIO, A, "ACK <7>", "received", utc(11, 25, 17, 6), direction="inbound"
        ),
        FakeMessage(
            "SM9", A, TWILIO, "Incident 7 acknowledged.", "sent", utc(11, 25, 17, 6),
            direction="outbound-reply",
        ),
    ]  # fmt: skip
    page = await text_of(client, "/fakes/phone")
    # A's thread has the latest message (the reply), so it comes first; then B's.
    assert in_order(page, f'data-number="{A}"', f'data-number="{B}"')
    thread_a = page.split(f'data-number="{A}"')[1].split('<section class="person"')[0]
    assert in_order(
        thread_a, "Incident 7 acknowledged.", "ACK &lt;7&gt;", "Click2Dial down", "summer test"
    )
    assert '<article class="sms in" data-sid="SM8" data-direction="inbound">' in thread_a
    assert "escalated" not in thread_a  # B's message stays in B's thread
    assert '<span class="count">5</span>' in page  # three sent, a reply and our answer
