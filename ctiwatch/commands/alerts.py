"""``alerts test --to NUMBER``: send a test SMS through the configured provider.

With ``alerting.fakes: true`` (the default) the provider is the project's fake Twilio: if
nothing listens at ``alerting.twilio.base_url`` yet (``ctiwatch run`` is not running), the
command starts the fake there for the duration of the test and shows what it received.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from contextlib import AsyncExitStack
from typing import Any

from alerting.channels import TransportError, open_channels
from alerting.outbox import PendingMessage
from ctiwatch.clock import RealClock
from ctiwatch.config import ConfigError, load_config
from ctiwatch.fakes.twilio import FakeTwilio

_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
TEST_TEXT = "CTIWATCH test message: alerts from ctiwatch reach this phone. No action needed."


def register(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="alerting tools")
    commands = alerts.add_subparsers(dest="alerts_command", required=True)
    test = commands.add_parser(
        "test", help="send a test SMS through the configured provider (the fake by default)"
    )
    test.add_argument("--to", required=True, help="mobile number in E.164, e.g. +31612345678")
    test.add_argument("--config", help="configuration file (default: embedded defaults)")
    test.set_defaults(func=alerts_test)


def normalise_number(value: str) -> str:
    cleaned = value.replace("(0)", "").replace(" ", "").replace("-", "")
    if not _PHONE.match(cleaned):
        raise ConfigError([f"--to: {value!r} is not a phone number in E.164 form (+31612345678)"])
    return cleaned


def alerts_test(args: argparse.Namespace) -> int:
    to = normalise_number(args.to)
    config = load_config(args.config)
    return asyncio.run(_send_test(config.alerting, to))


async def _send_test(settings: Any, to: str) -> int:
    clock = RealClock()
    now = clock.now()
    message = PendingMessage(
        id=0,
        idempotency_key=f"test:{to}:{now.isoformat()}",
        incident_number=None,
        channel="sms",
        recipient=to,
        kind="test",
        subject="",
        body=TEST_TEXT,
    )
    async with AsyncExitStack() as stack:
        fake: FakeTwilio | None = None
        if settings.fakes:
            candidate = FakeTwilio.from_settings(settings.twilio, clock=clock)
            try:
                await candidate.start()
            except OSError:
                pass  # already listening there: most likely `ctiwatch run`
            else:
                fake = candidate
                stack.push_async_callback(candidate.stop)
        async with open_channels(settings) as channels:
            try:
                receipt = await channels["sms"].send(message)
            except TransportError as exc:
                kind = "permanent" if exc.permanent else "temporary"
                print(f"error: test SMS not sent ({kind}): {exc.message}", file=sys.stderr)
                return 1
    where = settings.twilio.base_url
    print(f"sent test SMS to {to} via {where}: {receipt.provider_id} ({receipt.status})")
    if fake is not None:
        print(f"the fake Twilio (started for this test) received: {fake.messages[-1].body!r}")
    return 0
