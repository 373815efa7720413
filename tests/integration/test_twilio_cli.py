"""``ctiwatch alerts test``: a test SMS through the configured provider (the fake by default)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from ctiwatch.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_alerts_test_sends_an_sms_through_the_fake_twilio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctiwatch.yaml"
    config.write_text(f"alerting:\n  twilio:\n    base_url: http://127.0.0.1:{free_port()}\n")

    code = main(["alerts", "test", "--to", "+31 6 1234 5678", "--config", str(config)])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("sent test SMS to +31612345678 via http://127.0.0.1:")
    assert re.search(r": SM[0-9a-f]{16}0{15}1 \(queued\)$", out[0]), out[0]
    assert out[1] == (
        "the fake Twilio (started for this test) received: 'CTIWATCH test message: alerts from "
        "ctiwatch reach this phone. No action needed.'"
    )


def test_alerts_test_refuses_a_number_that_is_not_e164(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "test", "--to", "0612345678"]) == 2
    assert capsys.readouterr().err == (
        "error: --to: '0612345678' is not a phone number in E.164 form (+31612345678)\n"
    )


def test_alerts_test_reports_an_unreachable_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctiwatch.yaml"
    port = free_port()
    config.write_text(
        f"alerting:\n  fakes: false\n  twilio:\n    base_url: http://127.0.0.1:{port}\n"
    )
    assert main(["alerts", "test", "--to", "+31612345678", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: test SMS not sent (temporary): SMS to +31612345678: cannot reach")
