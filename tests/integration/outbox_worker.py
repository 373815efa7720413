"""An outbox sender as a process of its own, for ``test_outbox_crash.py`` to kill and restart.

It starts as ``ctiwatch run`` starts its sender: a worker identity of its own on node
``--node`` (:class:`alerting.outbox.WorkerIdentity`), and first frees what an earlier life of
that node left claimed (printing ``{"recovered": n}``). It then sends through the real channels
(the twilio client and aiosmtplib, pointed at the fakes the test runs) until nothing is
claimable, prints one JSON line per delivery report, and exits. One test-only knob lives here,
never in the product:

``--stall-on CHANNEL``   after the first message on CHANNEL was accepted by the provider, print
                         ``{"accepted": key}`` and hang before the sender can mark it sent,
                         waiting for the SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from datetime import timedelta

from alerting.channels import Channel, SendReceipt, open_channels
from alerting.outbox import OutboxMessage
from alerting.sender import OutboxSender, this_process
from ctiwatch.clock import RealClock
from ctiwatch.config import AlertingConfig, SmtpConfig, TwilioConfig
from ctiwatch.storage import Store


class StallAfterAccept:
    """Sends through ``inner``; the first accepted message then hangs, never marked sent."""

    def __init__(self, inner: Channel) -> None:
        self._inner = inner
        self._stalled = False

    async def send(self, message: OutboxMessage) -> SendReceipt:
        receipt = await self._inner.send(message)
        if not self._stalled:
            self._stalled = True
            line = {"accepted": message.idempotency_key, "provider_id": receipt.provider_id}
            print(json.dumps(line), flush=True)
            await asyncio.Event().wait()  # the test kills the process here
        return receipt


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--twilio-url", required=True)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--from-number", required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--node", default="worker-node")
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--stall-on", choices=("sms", "voice", "email"))
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    settings = AlertingConfig(
        twilio=TwilioConfig(
            account_sid=args.account_sid,
            auth_token=args.auth_token,
            from_number=args.from_number,
            base_url=args.twilio_url,
            webhook_base_url="https://ctiwatch.example.net",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=args.smtp_port, sender="ctiwatch@example.net"),
    )
    clock = RealClock()
    async with (
        Store.open(args.storage, migrate=False) as store,
        open_channels(settings, timeout=10, now=clock.now) as opened,
    ):
        channels: Mapping[str, Channel] = opened
        if args.stall_on is not None:
            channels = {**opened, args.stall_on: StallAfterAccept(opened[args.stall_on])}
        sender = OutboxSender(
            store.outbox,
            channels,
            clock,
            worker=this_process(args.node),
            lease=timedelta(seconds=args.lease),
            batch=50,
        )
        print(json.dumps({"recovered": await sender.recover()}), flush=True)
        while reports := await sender.send_due():
            for report in reports:
                line = {
                    "key": report.idempotency_key,
                    "outcome": report.outcome,
                    "provider_id": report.provider_id,
                    "error": report.error,
                }
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    asyncio.run(main(arguments(sys.argv[1:])))
