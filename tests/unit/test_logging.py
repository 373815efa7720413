"""Structured log lines: format, level from config or environment, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ctiwatch.config import Config, ConfigError, LoggingConfig, config_from_data
from ctiwatch.logs import Redactor, resolve_level, secrets_of, setup_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def capture(
    fmt: str = "kv",
    level: str = "INFO",
    env: dict[str, str] | None = None,
    secrets: tuple[str, ...] | list[str] = (),
) -> io.StringIO:
    stream = io.StringIO()
    config = LoggingConfig.model_validate({"level": level, "format": fmt})
    setup_logging(config, env or {}, secrets=secrets, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def without_time(line: str) -> str:
    assert line.startswith("at=")
    return line.split(" ", 1)[1]


def test_kv_line_holds_level_logger_message_and_extras(restore_root: None) -> None:
    stream = capture()
    logging.getLogger("probes.scheduler").warning(
        "probe failed after %d attempts",
        3,
        extra={"customer": "acme", "status": 503, "ok": False, "latency_ms": 12.5},
    )
    assert [without_time(line) for line in lines(stream)] == [
        'level=warning logger=probes.scheduler msg="probe failed after 3 attempts" '
        "customer=acme status=503 ok=false latency_ms=12.5"
    ]


def test_kv_timestamp_is_utc_with_milliseconds(restore_root: None) -> None:
    stream = capture()
    logging.getLogger("x").info("hello")
    stamp = lines(stream)[0].split(" ", 1)[0].removeprefix("at=")
    assert len(stamp) == len("2026-12-01T08:00:00.123Z")
    assert stamp.endswith("Z")
    assert stamp[10] == "T"


def test_kv_quotes_and_escapes_values_with_spaces_quotes_and_newlines(restore_root: None) -> None:
    stream = capture()
    logging.getLogger("x").info("a\nb", extra={"detail": 'say "hi"', "empty": ""})
    assert without_time(lines(stream)[0]) == (
        'level=info logger=x msg="a\\nb" detail="say \\"hi\\"" empty=""'
    )


def test_json_line_is_one_object_with_the_same_fields(restore_root: None) -> None:
    stream = capture(fmt="json")
    logging.getLogger("ctiwatch.app").info("started", extra={"port": 8080, "host": "127.0.0.1"})
    [line] = lines(stream)
    record = json.loads(line)
    del record["at"]
    assert record == {
        "level": "info",
        "logger": "ctiwatch.app",
        "msg": "started",
        "port": 8080,
        "host": "127.0.0.1",
    }


def test_exception_is_kept_on_the_same_line(restore_root: None) -> None:
    stream = capture(fmt="json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    [line] = lines(stream)
    record = json.loads(line)
    assert record["msg"] == "failed"
    assert record["exc"].splitlines()[-1] == "RuntimeError: boom"


def test_level_comes_from_config(restore_root: None) -> None:
    stream = capture(level="WARNING")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert [without_time(line) for line in lines(stream)] == ["level=warning logger=x msg=shown"]


def test_environment_level_wins_over_config(restore_root: None) -> None:
    stream = capture(level="ERROR", env={"CTIWATCH_LOG_LEVEL": "debug"})
    logging.getLogger("x").debug("shown")
    assert [without_time(line) for line in lines(stream)] == ["level=debug logger=x msg=shown"]


def test_empty_environment_level_keeps_config_level() -> None:
    assert resolve_level(LoggingConfig(level="WARNING"), {"CTIWATCH_LOG_LEVEL": ""}) == "WARNING"


def test_unknown_environment_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_level(LoggingConfig(), {"CTIWATCH_LOG_LEVEL": "loud"})
    assert caught.value.errors == [
        "CTIWATCH_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, not 'loud'"
    ]


def test_second_setup_replaces_the_first_handler(restore_root: None) -> None:
    first = capture()
    second = capture()
    logging.getLogger("x").info("once")
    assert lines(first) == []
    assert [without_time(line) for line in lines(second)] == ["level=info logger=x msg=once"]


def test_secret_extras_are_redacted_by_key(restore_root: None) -> None:
    stream = capture()
    logging.getLogger("x").info(
        "sending",
        extra={"auth_token": "abcdef123456", "smtp_password": "hunter22", "to": "+31612345678"},
    )
    assert without_time(lines(stream)[0]) == (
        "level=info logger=x msg=sending auth_token=*** smtp_password=*** to=+31612345678"
    )


def test_secret_pairs_in_the_message_are_redacted(restore_root: None) -> None:
    stream = capture()
    logging.getLogger("x").info(
        'token=abc123&user=bob password: "p w" Authorization: Basic QUM6c2VjcmV0 api_key=k1'
    )
    assert without_time(lines(stream)[0]) == (
        "level=info logger=x "
        'msg="token=***&user=bob password: \\"***\\" Authorization: *** api_key=***"'
    )


def test_password_in_a_url_is_redacted(restore_root: None) -> None:
    stream = capture(fmt="json")
    logging.getLogger("x").info(
        "connecting to %s", "postgresql+asyncpg://ctiwatch:s3cr3t@db:5432/ctiwatch"
    )
    assert json.loads(lines(stream)[0])["msg"] == (
        "connecting to postgresql+asyncpg://ctiwatch:***@db:5432/ctiwatch"
    )


def test_twilio_auth_token_of_the_config_is_redacted_everywhere(restore_root: None) -> None:
    token = "0123456789abcdef0123456789abcdef"
    config = config_from_data({"alerting": {"twilio": {"auth_token": token}}}, {})
    stream = capture(fmt="json", secrets=secrets_of(config))
    try:
        raise ValueError(f"Twilio said no to {token}")
    except ValueError:
        logging.getLogger("twilio.http_client").error(
            "request with %s failed", token, exc_info=True, extra={"detail": f"x {token} y"}
        )
    output = stream.getvalue()
    assert token not in output
    record = json.loads(output)
    assert record["msg"] == "request with *** failed"
    assert record["detail"] == "x *** y"
    assert record["exc"].splitlines()[-1] == "ValueError: Twilio said no to ***"


def test_secrets_of_collects_every_secret_of_the_config() -> None:
    config = config_from_data(
        {
            "alerting": {
                "twilio": {"auth_token": "tw-token-1"},
                "smtp": {"password": "smtp-pass"},
            },
            "mqtt": {"password": "mqtt-pass"},
            "probes": {"api_token": "cti-token"},
            "storage": {"url": "postgresql+asyncpg://u:db-pass@h/db"},
        },
        {},
    )
    assert secrets_of(config) == ["tw-token-1", "smtp-pass", "mqtt-pass", "cti-token", "db-pass"]


def test_defaults_have_no_empty_secrets() -> None:
    assert secrets_of(Config()) == ["fake-auth-token", "ctiwatch-demo-token"]


def test_redactor_leaves_ordinary_text_alone() -> None:
    text = "probe crm acme/acme-ams/alice ok in 12 ms; author=x? no: authorised callers=3"
    assert Redactor(["ab"]).text("probe ok in 12 ms") == "probe ok in 12 ms"
    assert Redactor().text("incident 4 opened: P1 click2dial") == (
        "incident 4 opened: P1 click2dial"
    )
    assert "callers=3" in Redactor().text(text)


def test_chatty_twilio_request_log_is_quiet_at_info(restore_root: None) -> None:
    stream = capture()
    logging.getLogger("twilio.http_client").info("-- BEGIN Twilio API Request --")
    assert lines(stream) == []


def test_a_megabyte_message_extra_and_exception_give_a_bounded_line(restore_root: None) -> None:
    stream = capture(fmt="json")
    huge = "a" * 1_000_000
    try:
        raise ValueError(huge)
    except ValueError:
        logging.getLogger("x").warning(huge, exc_info=True, extra={"topic": huge})
    [line] = lines(stream)
    record = json.loads(line)
    assert record["msg"] == "a" * 2048 + " [cut: 1000000 characters in all]"
    assert record["topic"] == "a" * 2048 + " [cut: 1000000 characters in all]"
    assert record["exc"].startswith("Traceback (most recent call last):\n")
    assert len(record["exc"]) < 16_384 + 100
    assert len(line) < 2 * (2048 + 100) + 16_384 + 200


def test_a_short_field_is_not_cut() -> None:
    assert Redactor().field("b" * 2048) == "b" * 2048


def test_a_secret_value_cut_by_the_bound_is_hidden_to_the_cut() -> None:
    text = "x" * 2030 + " token=" + "s" * 5000
    assert Redactor().field(text) == "x" * 2030 + " token=***" + " [cut: 7037 characters in all]"


def test_a_url_password_cut_before_its_at_sign_is_hidden() -> None:
    text = "x" * 2000 + " postgresql://ctiwatch:" + "p" * 400 + "@db/ctiwatch"
    shown = Redactor().field(text)
    assert shown == "x" * 2000 + " postgresql://ctiwatch:***" + " [cut: 2435 characters in all]"


def test_a_configured_secret_across_the_bound_is_hidden_whole() -> None:
    secret = "0123456789abcdef"
    text = "x" * 2040 + secret + "y" * 10
    assert Redactor([secret]).field(text) == "x" * 2040 + "***" + "y" * 5 + (
        " [cut: 2066 characters in all]"
    )


def test_an_unterminated_quoted_secret_is_hidden_to_the_end() -> None:
    assert Redactor().text('login password: "p w and more') == 'login password: "***'


def test_a_long_traceback_keeps_its_head_and_its_last_line() -> None:
    trace = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "ValueError: boom"
    shown = Redactor().trace(trace)
    assert shown.startswith("Traceback (most recent call last):\n  frame\n")
    assert shown.splitlines()[-1] == "ValueError: boom"
    assert f"[cut: {len(trace)} characters in all]" in shown
    assert len(shown) <= 16_384 + 50


def test_the_inputs_that_were_quadratic_are_redacted_as_before() -> None:
    # The old pattern read each of these again from every position (2.5 s for 8 KB); the
    # benchmark bench/bench_logging.py shows the new ones linear. Here: the same answers.
    redactor = Redactor()
    assert redactor.text("a" * 8000) == "a" * 8000
    assert redactor.text('token="' * 3) == 'token="***"token="***'
    assert redactor.text("a://b:c " * 2) == "a://b:c a://b:c "
    assert redactor.text("xtoken=1 mytoken=2 to-ken=3") == "xtoken=*** mytoken=*** to-ken=3"
