"""The fake phone against the real service: ctiwatch's console, pipeline and store on a real
database, its Twilio webhooks and the fake phone's pages served over real HTTP, its outbox sent
through the real twilio client to the fake Twilio, on a fixed clock moved by the test.

An accepted SMS goes queued -> sent -> delivered and a call queued -> ringing -> in-progress ->
completed (or no-answer, busy, failed when the phone is told so), each change posted, signed,
to ``/twilio/status``; the on-call person's replies and ctiwatch's answers are in their thread.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from console_scene import Scene

from alerting.channels import open_channels
from alerting.sender import OutboxSender
from classifier.observation import Service
from ctiwatch.app import restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.fakes import FakeSmtp, FakeTwilio, add_fake_views, sign
from ctiwatch.fakes.twilio import CALL_STEPS, SMS_STEPS
from ctiwatch.persist import Pipeline
from ctiwatch.storage import Store
from ctiwatch.web.twilio_webhooks import add_twilio_routes

ONCALL, SECOND_LINE = "+31611111111", "+31622222222"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tue 1 Dec 2026 10:00 Amsterdam: support hours
SID, TOKEN = "AC" + "7" * 32, "phone-token"


@dataclass
class Phone:
    scene: Scene
    fake: FakeTwilio
    sender: OutboxSender
    base: str
    http: aiohttp.ClientSession

    @property
    def clock(self) -> FixedClock:
        return self.scene.clock

    async def page(self) -> str:
        async with self.http.get(self.base + "/fake/phone") as response:
            assert response.status == 200
            return await response.text()

    async def timeline(self, number: int = 1) -> list[tuple[str, str]]:
        entries = await self.scene.store.incidents.timeline(number)
        return [(e.kind, e.detail) for e in entries]

    async def at(self, seconds: float) -> list[int]:
        """Move the clock to ``seconds`` after NOW; the phone moves on; the callbacks' answers."""
        self.clock.set(NOW + timedelta(seconds=seconds))
        return [result.status for result in await self.fake.progress()]


@pytest.fixture
async def phone(storage_url: str) -> AsyncIterator[Phone]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the webhooks' address, known before the routes are built
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = FixedClock(NOW)
    async with (
        FakeTwilio(account_sid=SID, auth_token=TOKEN, webhook_base_url=base, clock=clock) as fake,
        FakeSmtp(port=0) as smtp,
    ):
        config = Config.model_validate(
            {
                "topology": {
                    "customers": [
                        {"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice"]}]}
                    ]
                },
                "alerting": {
                    "oncall": [ONCALL],
                    # Far beyond the test: only an unanswered page can bring the second line in.
                    "escalation": [
                        {"name": "second line", "after": "1h", "numbers": [SECOND_LINE]}
                    ],
                    "twilio": {
                        "account_sid": SID,
                        "auth_token": TOKEN,
                        "base_url": fake.url,
                        "webhook_base_url": base,
                    },
                    "smtp": {"host": "127.0.0.1", "port": smtp.port},
                },
                "storage": {"url": storage_url},
            }
        )
        async with Store.open(storage_url) as store:
            pipeline = Pipeline(await restore_monitor(config, store, clock), store, clock)
            console = ConsoleServiceImpl(config, pipeline)
            scene = Scene(console, pipeline, store, clock, config)
            app = web.Application()
            add_twilio_routes(
                app, console, config.alerting, replays=store.webhook_replays, clock=clock
            )
            add_fake_views(app, fake, None, oncall=[ONCALL])
            runner = web.AppRunner(app)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            try:
                async with (
                    open_channels(config.alerting, now=clock.now) as channels,
                    aiohttp.ClientSession() as http,
                ):
                    sender = OutboxSender(store.outbox, channels, clock, worker="phone-test")
                    yield Phone(scene, fake, sender, base, http)
            finally:
                await runner.cleanup()


async def p1_paged(phone: Phone) -> None:
    """Every user at acme-ams fails Click2Dial three rounds (a P1, incident 1), the last at
    NOW; the pages go out."""
    phone.clock.set(NOW)
    await phone.scene.rounds("acme", "acme-ams", ["alice"], Service.CLICK2DIAL, ok=False, count=3)
    assert phone.clock.now() == NOW
    await phone.sender.send_due()


async def test_an_sms_goes_queued_sent_delivered_each_change_posted_signed_and_on_the_timeline(
    phone: Phone,
) -> None:
    await p1_paged(phone)
    [sms] = [m for m in phone.fake.messages if m.to == ONCALL]
    assert sms.status == "queued"
    assert sms.status_callback == f"{phone.base}/twilio/status"

    assert await phone.at(0.5) == []  # nothing due yet
    assert sms.status == "queued"
    assert 204 in await phone.at(1)  # the call rings at the same second
    assert sms.status == "sent"
    assert 204 in await phone.at(3)
    assert sms.status == "delivered"
    assert sms.history == [
        ("queued", NOW),
        ("sent", NOW + timedelta(seconds=1)),
        ("delivered", NOW + timedelta(seconds=3)),
    ]
    # Every callback reached /twilio/status and passed its signature check (else 403).
    posted = [w for w in phone.fake.webhooks if w.url.endswith("/twilio/status")]
    assert posted and all(w.status == 204 for w in posted)
    assert ("alert_delivered", f"opened sms to {ONCALL}: Twilio reports delivered") in (
        await phone.timeline()
    )
    page = await phone.page()
    assert f'<section class="person" data-number="{ONCALL}">' in page
    assert '<span class="pill s-ok">delivered</span>' in page
    assert ">queued 10:00:00</span> → <span" in page
    assert ">delivered 10:00:03</span>" in page


async def test_an_answered_call_rings_is_answered_and_completes_each_change_posted(
    phone: Phone,
) -> None:
    await p1_paged(phone)
    [call] = [c for c in phone.fake.calls if c.to == ONCALL]
    # ctiwatch asks for every change of its calls, not only the end.
    assert call.events == ("initiated", "ringing", "answered", "completed")
    seconds = 0.0
    for status, after in CALL_STEPS["answer"]:
        seconds += after.total_seconds()
        await phone.at(seconds)
        assert call.status == status
    assert [status for status, _ in call.history] == [
        "queued",
        "ringing",
        "in-progress",
        "completed",
    ]
    posted = [w for w in phone.fake.webhooks if w.url.endswith("/twilio/status")]
    # A P1 calls on-call and the support line: ringing, in-progress, completed each; and the
    # on-call SMS's sent and delivered.
    assert [c.to for c in phone.fake.calls] == [ONCALL, "+31356990230"]
    assert len(posted) == 2 * 3 + 2
    assert all(w.status == 204 for w in posted)
    kinds = [kind for kind, _ in await phone.timeline()]
    assert "alert_failed" not in kinds and "escalation_hastened" not in kinds
    assert ("alert_delivered", f"opened voice to {ONCALL}: Twilio reports completed") in (
        await phone.timeline()
    )


@pytest.mark.parametrize("mode", ["no-answer", "busy", "failed"])
async def test_a_call_not_answered_pages_the_next_escalation_step_at_once(
    phone: Phone, mode: str
) -> None:
    phone.fake.answer_calls(ONCALL, mode)  # type: ignore[arg-type]
    await p1_paged(phone)
    [call] = [c for c in phone.fake.calls if c.to == ONCALL]
    end = sum(after.total_seconds() for _, after in CALL_STEPS[mode])  # type: ignore[index]
    await phone.at(end - 0.5)
    assert not [m for m in await phone.scene.store.outbox.list() if m.recipient == SECOND_LINE]

    assert 204 in await phone.at(end)
    assert call.status == mode
    at = NOW + timedelta(seconds=end)
    second = [m for m in await phone.scene.store.outbox.list() if m.recipient == SECOND_LINE]
    assert second and all(m.created_at == at for m in second)  # at once, not in an hour
    timeline = await phone.timeline()
    assert (
        "alert_failed",
        f"opened voice to {ONCALL}: Twilio reports {mode}",
    ) in timeline
    kinds = [kind for kind, _ in timeline]
    hastened = kinds.index("escalation_hastened")
    assert kinds[hastened + 1] == "escalated"
    # The second line's pages go out and their phone moves on as usual.
    await phone.sender.send_due()
    assert [m.status for m in phone.fake.messages if m.to == SECOND_LINE] == ["queued"]


async def test_an_undelivered_sms_is_on_the_timeline_and_pages_the_next_step(
    phone: Phone,
) -> None:
    phone.fake.answer_calls(ONCALL, "failed")
    await p1_paged(phone)
    [sms] = [m for m in phone.fake.messages if m.to == ONCALL]
    end = sum(after.total_seconds() for _, after in SMS_STEPS["failed"])
    await phone.at(end)
    assert [status for status, _ in sms.history] == ["queued", "sent", "undelivered"]
    timeline = await phone.timeline()
    assert ("alert_failed", f"opened sms to {ONCALL}: Twilio reports undelivered") in timeline


async def test_a_status_callback_posted_again_is_refused_and_recorded_once(phone: Phone) -> None:
    await p1_paged(phone)
    [sms] = [m for m in phone.fake.messages if m.to == ONCALL]
    await phone.at(3)
    params = {"MessageSid": sms.sid, "To": ONCALL, "MessageStatus": "delivered"}
    again = await phone.fake.post_webhook(f"{phone.base}/twilio/status", params)
    assert again.status == 409
    delivered = [e for e in await phone.timeline() if e[0] == "alert_delivered" and "sms" in e[1]]
    assert len(delivered) == 1
    # And a stranger's unsigned "no-answer" for a real SID moves nothing.
    form = {"CallSid": phone.fake.calls[0].sid, "To": ONCALL, "CallStatus": "no-answer"}
    async with phone.http.post(f"{phone.base}/twilio/status", data=form) as response:
        assert response.status == 403
    forged = sign("not-the-token", f"{phone.base}/twilio/status", form)
    async with phone.http.post(
        f"{phone.base}/twilio/status", data=form, headers={"X-Twilio-Signature": forged}
    ) as response:
        assert response.status == 403
    assert "escalation_hastened" not in [kind for kind, _ in await phone.timeline()]


async def test_a_reply_and_our_answer_appear_in_the_persons_thread(phone: Phone) -> None:
    await p1_paged(phone)
    await phone.at(3)
    phone.clock.set(NOW + timedelta(minutes=2))
    async with phone.http.post(
        phone.base + "/fake/phone/reply", data={"from": ONCALL, "body": "ACK 1"}
    ) as response:
        assert response.status == 200  # the page again, after the redirect
    assert (await phone.scene.store.incidents.get(1)).acknowledged_at == phone.clock.now()
    reply, answer = phone.fake.replies
    assert (reply.direction, reply.from_, reply.body) == ("inbound", ONCALL, "ACK 1")
    assert (answer.direction, answer.to, answer.body) == (
        "outbound-reply",
        ONCALL,
        "Incident 1 acknowledged. Thank you.",
    )
    page = await phone.page()
    thread = page.split(f'<section class="person" data-number="{ONCALL}">')[1]
    thread = thread.split("</section>")[0]
    # Newest first: our answer, the reply, then the page that was answered.
    answer_at = thread.index("Incident 1 acknowledged. Thank you.")
    reply_at = thread.index('<div class="bubble">ACK 1</div>')
    page_at = thread.index("CTIWATCH P1 #1")
    assert answer_at < reply_at < page_at
    assert 'data-direction="inbound"' in thread
    assert f"reply from <strong>{ONCALL}</strong>" in thread
    # The answer is an SMS like any other: it moves on, with no callback (none was asked for).
    await phone.at(120 + 3)
    assert [status for status, _ in answer.history] == ["queued", "sent", "delivered"]
    assert answer.status_callback is None


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/fake/phone/reply", {"from": "0612345678", "body": "ACK 1"}, "from"),
        ("/fake/phone/reply", {"from": ONCALL, "body": "   "}, "body"),
        ("/fake/phone/reply", {"from": ONCALL, "body": "A" * 1601}, "body"),
        ("/fake/phone/reply", {"from": "+31" + "1" * 5000, "body": "ACK 1"}, "from"),
        ("/fake/phone/answer", {"number": ONCALL, "mode": "explode"}, "mode"),
        ("/fake/phone/answer", {"number": "<script>", "mode": "busy"}, "number"),
        ("/fake/phone/press", {"call": "CA1", "digits": "1; DROP"}, "digits"),
    ],
)
async def test_bad_input_to_the_fake_phone_is_refused_naming_the_field(
    phone: Phone, path: str, form: dict[str, str], field: str
) -> None:
    async with phone.http.post(phone.base + path, data=form) as response:
        assert response.status == 400
        page = await response.text()
    # The phone page again, the reason on top.
    assert '<div class="alert error" role="status">' in page
    assert f"<div>{field}: " in page
    assert "<h1>Fake phone</h1>" in page
    assert phone.fake.replies == [] and phone.fake.answer_modes == {}


async def test_a_form_the_fake_phone_cannot_read_is_a_bad_request_not_a_trace(
    phone: Phone,
) -> None:
    body = b"--x\r\nContent-Disposition: form-data\r\n\r\nACK 1\r\n--x--\r\n"
    for path in ("/fake/phone/reply", "/fake/phone/answer", "/fake/phone/press"):
        async with phone.http.post(
            phone.base + path,
            data=body,
            headers={"Content-Type": "multipart/form-data; boundary=abc"},
        ) as response:
            assert response.status == 400
            assert "the body is not a readable form" in await response.text()
    async with phone.http.post(
        phone.base + "/fake/phone/press", data={"call": "CA404", "digits": "1"}
    ) as response:
        assert response.status == 404
        assert "<div>call: no call CA404</div>" in await response.text()


async def test_the_phone_page_tells_a_phone_how_to_answer(phone: Phone) -> None:
    async with phone.http.post(
        phone.base + "/fake/phone/answer", data={"number": ONCALL, "mode": "busy"}
    ) as response:
        assert response.status == 200
        page = await response.text()
    assert f"The phone at {ONCALL} is busy." in page
    assert phone.fake.answer_mode(ONCALL) == "busy"
    await p1_paged(phone)
    await phone.at(3)
    assert [c.status for c in phone.fake.calls if c.to == ONCALL] == ["busy"]
