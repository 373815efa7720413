"""What ``ctiwatch run`` counts on ``/metrics`` about the outbox, and whose name it claims under."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import prometheus_client

from alerting.sender import DeliveryReport, FallbackReport, Outcome
from ctiwatch.app import Ctiwatch
from ctiwatch.config import Config

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def failed_count(app: Ctiwatch, channel: str, cause: str) -> float | None:
    return app.metrics.registry.get_sample_value(
        "ctiwatch_outbox_failed_total", {"channel": channel, "cause": cause}
    )


async def test_messages_that_cannot_be_sent_are_counted_by_channel_and_cause() -> None:
    app = Ctiwatch(Config())
    # Shown at zero before anything fails, so an alert rule has a series to watch.
    assert failed_count(app, "sms", "undelivered") == 0.0
    assert failed_count(app, "email", "unsendable") == 0.0

    def report(channel: str, outcome: Outcome, **more: Any) -> DeliveryReport:
        return DeliveryReport(
            1, f"7:opened:{channel}", None, channel, "x", "opened", outcome, AT, **more
        )

    await app._delivered(report("email", "failed", error="ValueError", unsendable=True))
    await app._delivered(
        report("voice", "failed", error="busy", fallback=FallbackReport("sms", "+316", "failed"))
    )
    await app._delivered(report("sms", "sent", provider_id="SM1"))
    await app._delivered(report("sms", "retry", error="429"))

    assert failed_count(app, "email", "unsendable") == 1.0
    assert failed_count(app, "voice", "undelivered") == 1.0
    assert failed_count(app, "sms", "undelivered") == 1.0  # the call's fallback SMS
    assert failed_count(app, "sms", "unsendable") == 0.0
    text = prometheus_client.generate_latest(app.metrics.registry).decode()
    assert 'ctiwatch_outbox_failed_total{cause="unsendable",channel="email"} 1.0' in text


def test_the_node_name_is_the_host_name_unless_configured() -> None:
    assert Config().alerting.node is None
    assert Config.model_validate({"alerting": {"node": "ctiwatch-1"}}).alerting.node == "ctiwatch-1"
