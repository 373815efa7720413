"""Inbound Twilio webhooks over real HTTP, posted and signed by the fake Twilio server, with
the replays remembered in a real (SQLite) store."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from auth_helpers import add_user, make_accounts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from alerting.channels import open_channels
from alerting.outbox import PendingMessage
from ctiwatch.clock import FixedClock
from ctiwatch.config import AlertingConfig, TwilioConfig
from ctiwatch.fakes import FakeTwilio, add_fake_views, sign
from ctiwatch.storage import Store
from ctiwatch.web.service import ServiceError
from ctiwatch.web.twilio_webhooks import add_twilio_routes

SID = "AC" + "2" * 32
TOKEN = "webhook-token"
FROM = "+3197010000002"
A, B, STRANGER = "+31611111111", "+31622222222", "+31699999999"
NOW = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)


@dataclass
class RecordingActions:
    calls: list[tuple[object, ...]] = field(default_factory=list)
    refuse: ServiceError | None = None

    async def acknowledge(self, number: int, actor: str, *, address: str = "") -> None:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(("acknowledge", number, actor))

    async def resolve(
        self, number: int, actor: str, reason: str = "", force: bool = False, *, address: str = ""
    ) -> None:
        self.calls.append(("resolve", number, actor, reason, force))

    async def status_text(self) -> str:
        return "1 open: #12 P1 acme (acknowledged)"

    async def delivery_status(
        self, provider_id: str, status: str, recipient: str, failed: bool
    ) -> None:
        self.calls.append(("delivery", provider_id, status, recipient, failed))


@dataclass
class Setup:
    actions: RecordingActions
    fake: FakeTwilio
    config: AlertingConfig
    base: str
    http: aiohttp.ClientSession
    store: Store
    clock: FixedClock


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, known before the routes are built
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with FakeTwilio(
        account_sid=SID, auth_token=TOKEN, webhook_base_url=base, from_number=FROM
    ) as fake:
        config = AlertingConfig(
            oncall=[A, B],
            twilio=TwilioConfig(
                account_sid=SID,
                auth_token=TOKEN,
                from_number=FROM,
                base_url=fake.url,
                webhook_base_url=base,
            ),
        )
        actions = RecordingActions()
        clock = FixedClock(NOW)
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'ctiwatch.db'}")
        app = web.Application()
        # B belongs to a user: what comes from B is theirs. A belongs to nobody.
        accounts = make_accounts(store, clock)
        await add_user(accounts, "sanne", "oncall", phone=B)
        add_twilio_routes(
            app,
            actions,
            config,
            replays=store.webhook_replays,
            clock=clock,
            people=accounts.person_with_phone,
        )
        add_fake_views(app, fake, None)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Setup(actions, fake, config, base, http, store, clock)
        finally:
            await runner.cleanup()
            await store.close()


async def call(setup: Setup, to: str, incident: int) -> str:
    """Place a real alert call through the twilio client; returns its SID."""
    message = PendingMessage(1, "k", incident, "voice", to, "opened", "", "This is ctiwatch.")
    async with open_channels(setup.config) as channels:
        receipt = await channels["voice"].send(message)
    assert receipt.provider_id is not None
    return receipt.provider_id


def twiml_message(text: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'


def twiml_say(text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f'<Say language="en-GB">{text}</Say></Response>'
    )


async def test_sms_reply_ack_acknowledges_the_incident(setup: Setup) -> None:
    result = await setup.fake.reply_sms(A, "ACK 12")
    assert (result.status, result.body) == (
        200,
        twiml_message("Incident 12 acknowledged. Thank you."),
    )
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (SMS)")]


async def test_sms_reply_resolve_is_a_forced_resolve_by_sms(setup: Setup) -> None:
    result = await setup.fake.reply_sms(B, "resolve #7")
    assert result.body == twiml_message("Incident 7 resolved.")
    # B is sanne's phone: the action is hers.
    assert setup.actions.calls == [("resolve", 7, "sanne (SMS)", "by SMS", True)]


async def test_sms_status_answers_with_the_open_incidents(setup: Setup) -> None:
    result = await setup.fake.reply_sms(A, "status")
    assert result.body == twiml_message("1 open: #12 P1 acme (acknowledged)")
    assert setup.actions.calls == []


async def test_sms_that_is_not_a_command_gets_the_usage(setup: Setup) -> None:
    result = await setup.fake.reply_sms(A, "hello?")
    assert result.body == twiml_message(
        "Not understood. Reply ACK &lt;incident&gt;, RESOLVE &lt;incident&gt; or STATUS."
    )


async def test_sms_from_a_number_not_on_call_is_politely_refused(setup: Setup) -> None:
    result = await setup.fake.reply_sms(STRANGER, "ACK 12")
    assert result.status == 200
    assert result.body == twiml_message(
        "Sorry, this number is not on the ctiwatch on-call list, so no action was taken."
    )
    assert setup.actions.calls == []


async def test_refused_action_is_explained_in_the_reply(setup: Setup) -> None:
    setup.actions.refuse = ServiceError("incident 12 is already resolved", status=409)
    result = await setup.fake.reply_sms(A, "ACK 12")
    assert result.body == twiml_message("Incident 12: incident 12 is already resolved")


async def test_pressing_1_during_the_alert_call_acknowledges(setup: Setup) -> None:
    sid = await call(setup, A, 12)
    result = await setup.fake.press(sid, "1")
    assert result.url == f"{setup.base}/twilio/voice/gather?incident=12"
    assert (result.status, result.body) == (
        200,
        twiml_say("Incident 12 is acknowledged. Thank you. Goodbye."),
    )
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (phone)")]


async def test_pressing_another_key_does_not_acknowledge(setup: Setup) -> None:
    sid = await call(setup, A, 12)
    result = await setup.fake.press(sid, "2")
    assert result.body == twiml_say("Incident 12 is not acknowledged. Goodbye.")
    assert setup.actions.calls == []


async def test_the_support_line_may_acknowledge_by_key(setup: Setup) -> None:
    sid = await call(setup, "+31356990230", 3)
    await setup.fake.press(sid, "1")
    assert setup.actions.calls == [("acknowledge", 3, "+31356990230 (phone)")]


async def test_keypress_from_an_unknown_callee_is_refused(setup: Setup) -> None:
    sid = await call(setup, STRANGER, 12)
    result = await setup.fake.press(sid, "1")
    assert result.body == twiml_say(
        "Sorry, this number is not on the ctiwatch on-call list, so no action was taken."
    )
    assert setup.actions.calls == []


async def test_failed_delivery_is_reported_for_escalation(setup: Setup) -> None:
    sid = await call(setup, A, 12)
    result = await setup.fake.send_status(sid, "no-answer")
    assert result.status == 204
    assert setup.actions.calls == [("delivery", sid, "no-answer", A, True)]


async def test_delivered_sms_is_reported_as_not_failed(setup: Setup) -> None:
    message = PendingMessage(1, "k", 12, "sms", B, "opened", "", "CTIWATCH")
    async with open_channels(setup.config) as channels:
        receipt = await channels["sms"].send(message)
    assert receipt.provider_id is not None
    await setup.fake.send_status(receipt.provider_id, "delivered")
    assert setup.actions.calls == [("delivery", receipt.provider_id, "delivered", B, False)]


# --- signatures -----------------------------------------------------------------------------

SMS_PARAMS = {"MessageSid": "SM1", "AccountSid": SID, "From": A, "To": FROM, "Body": "ACK 12"}


async def post(setup: Setup, path: str, params: dict[str, str], signature: str | None) -> int:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    async with setup.http.post(setup.base + path, data=params, headers=headers) as response:
        return response.status


async def test_correctly_signed_request_is_accepted(setup: Setup) -> None:
    url = f"{setup.base}/twilio/sms"
    assert await post(setup, "/twilio/sms", SMS_PARAMS, sign(TOKEN, url, SMS_PARAMS)) == 200
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (SMS)")]


async def test_unsigned_request_is_refused(setup: Setup) -> None:
    assert await post(setup, "/twilio/sms", SMS_PARAMS, None) == 403
    assert setup.actions.calls == []


async def test_request_signed_with_another_token_is_refused(setup: Setup) -> None:
    url = f"{setup.base}/twilio/sms"
    assert await post(setup, "/twilio/sms", SMS_PARAMS, sign("forged", url, SMS_PARAMS)) == 403
    assert setup.actions.calls == []


async def test_tampered_body_is_refused(setup: Setup) -> None:
    url = f"{setup.base}/twilio/sms"
    signature = sign(TOKEN, url, SMS_PARAMS)
    tampered = {**SMS_PARAMS, "Body": "RESOLVE 12"}
    assert await post(setup, "/twilio/sms", tampered, signature) == 403
    assert setup.actions.calls == []


async def test_signed_keypress_replayed_to_another_incident_is_refused(setup: Setup) -> None:
    params = {"CallSid": "CA1", "AccountSid": SID, "From": FROM, "To": A, "Digits": "1"}
    signature = sign(TOKEN, f"{setup.base}/twilio/voice/gather?incident=12", params)
    assert await post(setup, "/twilio/voice/gather?incident=12", params, signature) == 200
    assert await post(setup, "/twilio/voice/gather?incident=13", params, signature) == 403
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (phone)")]


async def test_signed_sms_replayed_to_another_endpoint_is_refused(setup: Setup) -> None:
    signature = sign(TOKEN, f"{setup.base}/twilio/sms", SMS_PARAMS)
    assert await post(setup, "/twilio/status", SMS_PARAMS, signature) == 403
    assert setup.actions.calls == []


async def test_keypress_without_incident_number_is_a_bad_request(setup: Setup) -> None:
    params = {"CallSid": "CA1", "To": A, "Digits": "1"}
    signature = sign(TOKEN, f"{setup.base}/twilio/voice/gather?incident=x", params)
    assert await post(setup, "/twilio/voice/gather?incident=x", params, signature) == 400


# --- the fake phone page ----------------------------------------------------------------------


async def test_fake_phone_lists_messages_and_its_reply_box_acknowledges(setup: Setup) -> None:
    message = PendingMessage(1, "k", 12, "sms", A, "opened", "", "CTIWATCH P1 #12 <acme>")
    async with open_channels(setup.config) as channels:
        await channels["sms"].send(message)
    async with setup.http.get(setup.base + "/fake/phone") as response:
        page = await response.text()
    assert response.status == 200
    assert '<div class="bubble">CTIWATCH P1 #12 &lt;acme&gt;</div>' in page
    async with setup.http.post(
        setup.base + "/fake/phone/reply", data={"from": A, "body": "ACK 12"}
    ) as response:
        assert response.status == 200  # after the redirect back to the page
        assert "webhook answered 200" in await response.text()
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (SMS)")]
    async with setup.http.get(setup.base + "/fake/phone.json") as response:
        data = await response.json()
    assert [m["body"] for m in data["messages"]] == ["CTIWATCH P1 #12 <acme>"]
    assert data["webhooks"][0]["url"] == f"{setup.base}/twilio/sms"


# --- malformed bodies -------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
PART = 'Content-Disposition: form-data; name="Body"'
# Bodies the form parser cannot read; each answered 500 with an ERROR traceback before.
MALFORMED: list[tuple[str, bytes]] = [
    (FORM, b"Body=\xff\xfe"),
    (FORM, b"From=%2B31611111111&Body=ACK \xe9 12"),
    (FORM + "; charset=klingon", b"Body=ACK+12"),
    (FORM + "; charset=x-unknown-8", b"Body=ACK+12"),
    ("multipart/form-data", b"--x\r\n" + PART.encode() + b"\r\n\r\nACK 12\r\n--x--\r\n"),
    ("multipart/form-data; boundary=", b"--\r\n\r\n"),
    ("multipart/form-data; boundary=abc", b"no boundary here"),
    (
        "multipart/form-data; boundary=abc",
        b"--zzz\r\n" + PART.encode() + b"\r\n\r\nx\r\n--zzz--\r\n",
    ),
    (
        "multipart/form-data; boundary=abc",
        b"--abc\r\nContent-Disposition: form-data\r\n\r\nx\r\n--abc--\r\n",
    ),
    ("multipart/form-data; boundary=abc", b"--abc\r\n" + PART.encode() + b"\r\n\r\nACK 12"),
    ("multipart/form-data; boundary=abc", b"--abc\r\n" + PART.encode() + b"\r\n"),
    (
        "multipart/form-data; boundary=abc",
        b"--abc\r\n" + PART.encode() + b"\r\nContent-Type: text/plain; charset=klingon\r\n\r\n"
        b"ACK 12\r\n--abc--\r\n",
    ),
    (
        "multipart/form-data; boundary=abc",
        b"--abc\r\n" + PART.encode() + b"\r\n\r\n\xff\xfe\r\n--abc--\r\n",
    ),
    (
        "multipart/form-data; boundary=abc",
        b"--abc\r\n" + PART.encode() + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"\xc3\x28\r\n--abc--\r\n",
    ),
    ("multipart/form-data; boundary=abc", b"--abc\r\nBroken header line\r\n\r\nx\r\n--abc--\r\n"),
    (
        "multipart/form-data; boundary=abc",
        b"--abc\r\n" + PART.encode() + b"\r\nContent-Type: multipart/mixed; boundary=def\r\n\r\n"
        b"--def\r\n\r\nx\r\n--def--\r\n--abc--\r\n",
    ),
    ('multipart/form-data; boundary="' + "b" * 80 + '"', b"--" + b"b" * 80 + b"\r\n\r\nx\r\n"),
    ("multipart/form-data; boundary=abc", b"--abc\r\n\r\n"),
    ("multipart/form-data; boundary=abc", b'--abc\r\nContent-Disposition: form-data; name="A"\r\n'),
    (FORM + "; charset=utf-32", b"Body=ACK+12"),
    (
        "multipart/form-data; boundary=abc",
        b"--abc\r\n" + PART.encode() + b"\r\nContent-Type: text/plain; charset=utf-32\r\n\r\n"
        b"ACK 12\r\n--abc--\r\n",
    ),
]


@pytest.mark.parametrize(
    "path", ["/twilio/sms", "/twilio/voice/gather?incident=12", "/twilio/status"]
)
@pytest.mark.parametrize(("content_type", "body"), MALFORMED)
async def test_a_malformed_body_is_a_bad_request_with_one_warning_line(
    setup: Setup,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    body: bytes,
) -> None:
    caplog.set_level(logging.INFO)
    url = setup.base + path
    headers = {"Content-Type": content_type, "X-Twilio-Signature": sign(TOKEN, url, {})}
    async with setup.http.post(url, data=body, headers=headers) as response:
        assert (response.status, await response.text()) == (400, "the body is not a readable form")
    records = [
        (r.name, r.levelname, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.WARNING
    ]
    assert records == [
        ("ctiwatch.web.twilio", "WARNING", "refused a Twilio webhook with a malformed body")
    ]
    assert setup.actions.calls == []


# --- strict incident numbers ------------------------------------------------------------------


@pytest.mark.parametrize("body", ["ACK ²", "ACK ٣", "RESOLVE #¹²", "ack ⑦"])
async def test_an_incident_number_not_in_ascii_digits_is_explained_not_taken(
    setup: Setup, body: str
) -> None:
    result = await setup.fake.reply_sms(A, body)
    assert (result.status, result.body) == (
        200,
        twiml_message(
            "Not understood. Write the incident number in the digits 0 to 9. "
            "Reply ACK &lt;incident&gt;, RESOLVE &lt;incident&gt; or STATUS."
        ),
    )
    assert setup.actions.calls == []


@pytest.mark.parametrize("incident", ["²", "٣", "1²", "", "1234567890"])
async def test_a_keypress_for_an_incident_not_in_ascii_digits_is_a_bad_request(
    setup: Setup, incident: str
) -> None:
    params = {"CallSid": "CA1", "AccountSid": SID, "From": FROM, "To": A, "Digits": "1"}
    path = f"/twilio/voice/gather?incident={incident}"
    signed_url = str(URL(setup.base + path))  # percent-encoded, as it is sent and as Twilio signs
    assert await post(setup, path, params, sign(TOKEN, signed_url, params)) == 400
    assert setup.actions.calls == []


# --- replays --------------------------------------------------------------------------------


async def test_a_replayed_signed_sms_is_refused_and_acts_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{setup.base}/twilio/sms"
    signature = sign(TOKEN, url, SMS_PARAMS)
    assert await post(setup, "/twilio/sms", SMS_PARAMS, signature) == 200
    caplog.set_level(logging.INFO)
    setup.clock.advance(timedelta(days=30))
    assert await post(setup, "/twilio/sms", SMS_PARAMS, signature) == 409
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (SMS)")]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.getMessage(), getattr(r, "webhook", None)) for r in warnings] == [
        ("WARNING", "refused a replayed Twilio webhook", "sms:SM1")
    ]


async def test_a_captured_resolve_replayed_after_a_restart_resolves_nothing(
    setup: Setup, tmp_path: Path
) -> None:
    params = {**SMS_PARAMS, "MessageSid": "SM7", "Body": "RESOLVE 7"}
    signature = sign(TOKEN, f"{setup.base}/twilio/sms", params)
    assert await post(setup, "/twilio/sms", params, signature) == 200
    # The incident is reopened, ctiwatch restarts on the same database; the capture comes back.
    await setup.store.close()
    setup.store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'ctiwatch.db'}")
    assert await setup.store.webhook_replays.first_time("sms:SM7", NOW) is False
    assert await post(setup, "/twilio/sms", params, signature) == 409
    assert setup.actions.calls == [("resolve", 7, "+31611111111 (SMS)", "by SMS", True)]


async def test_a_replayed_keypress_is_refused(setup: Setup) -> None:
    params = {"CallSid": "CA9", "AccountSid": SID, "From": FROM, "To": A, "Digits": "1"}
    signature = sign(TOKEN, f"{setup.base}/twilio/voice/gather?incident=12", params)
    assert await post(setup, "/twilio/voice/gather?incident=12", params, signature) == 200
    assert await post(setup, "/twilio/voice/gather?incident=12", params, signature) == 409
    assert setup.actions.calls == [("acknowledge", 12, "+31611111111 (phone)")]


async def test_each_status_of_a_message_is_taken_once(setup: Setup) -> None:
    message = PendingMessage(1, "k", 12, "sms", B, "opened", "", "CTIWATCH")
    async with open_channels(setup.config) as channels:
        receipt = await channels["sms"].send(message)
    sid = receipt.provider_id
    assert sid is not None
    assert (await setup.fake.send_status(sid, "sent")).status == 204
    assert (await setup.fake.send_status(sid, "delivered")).status == 204
    assert (await setup.fake.send_status(sid, "delivered")).status == 409
    assert setup.actions.calls == [
        ("delivery", sid, "sent", B, False),
        ("delivery", sid, "delivered", B, False),
    ]


async def test_a_signed_sms_without_a_message_sid_is_a_bad_request(setup: Setup) -> None:
    params = {k: v for k, v in SMS_PARAMS.items() if k != "MessageSid"}
    signature = sign(TOKEN, f"{setup.base}/twilio/sms", params)
    assert await post(setup, "/twilio/sms", params, signature) == 400
    assert setup.actions.calls == []


async def test_two_fakes_never_hand_out_the_same_sid(setup: Setup) -> None:
    async with FakeTwilio(account_sid=SID, auth_token=TOKEN, webhook_base_url=setup.base) as other:
        first = await setup.fake.reply_sms(A, "STATUS")
        second = await other.reply_sms(A, "STATUS")
    assert (first.status, second.status) == (200, 200)


# --- fuzzing the forms ----------------------------------------------------------------------

PATHS = ["/twilio/sms", "/twilio/voice/gather?incident=12", "/twilio/status"]
CONTENT_TYPES = [
    FORM,
    FORM + "; charset=utf-8",
    FORM + "; charset=latin-1",
    FORM + "; charset=utf-16",
    FORM + "; charset=nope",
    "multipart/form-data",
    "multipart/form-data; boundary=abc",
    "multipart/form-data; boundary=",
    "multipart/mixed; boundary=abc",
    "text/plain",
    "application/json",
]
FIELDS = ["MessageSid", "CallSid", "From", "To", "Body", "Digits", "MessageStatus", "CallStatus"]
fuzz = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@fuzz
@given(
    path=st.sampled_from(PATHS),
    content_type=st.sampled_from(CONTENT_TYPES),
    body=st.binary(max_size=300) | st.sampled_from([m[1] for m in MALFORMED]),
)
async def test_any_unsigned_body_is_refused_without_a_500(
    setup: Setup, caplog: pytest.LogCaptureFixture, path: str, content_type: str, body: bytes
) -> None:
    url = setup.base + path
    headers = {"Content-Type": content_type, "X-Twilio-Signature": sign(TOKEN, url, {})}
    async with setup.http.post(url, data=body, headers=headers) as response:
        assert response.status in (400, 403)
    assert setup.actions.calls == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@fuzz
@given(
    path=st.sampled_from(PATHS),
    params=st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=5),
        st.sampled_from(["ACK 12", "RESOLVE ²", "STATUS", "1", "delivered", A, "SM1", "", "\0"])
        | st.text(max_size=40),
        max_size=6,
    ),
)
async def test_any_signed_form_is_answered_without_a_500(
    setup: Setup, caplog: pytest.LogCaptureFixture, path: str, params: dict[str, str]
) -> None:
    url = setup.base + path
    signed_url = str(URL(url))
    headers = {"X-Twilio-Signature": sign(TOKEN, signed_url, params), "Content-Type": FORM}
    body = urlencode(params).encode()
    async with setup.http.post(url, data=body, headers=headers) as response:
        assert response.status in (200, 204, 400, 403, 409), await response.text()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
