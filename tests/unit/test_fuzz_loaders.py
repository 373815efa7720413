"""Fuzzing the configuration and scenario loaders: whatever a file holds, the answer is a
configuration (or scenario) or a ``ConfigError`` whose lines say what is wrong -- never another
exception, never a traceback, never a long wait."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ctiwatch.config import Config, ConfigError, config_from_data, load_config, parse_yaml
from ctiwatch.scenario import Scenario, load_scenario, scenario_from_data

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "config" / "ctiwatch.yaml").read_text(encoding="utf-8")
SCENARIO = (ROOT / "config" / "scenarios" / "one-user-down.yaml").read_text(encoding="utf-8")
fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Words the loaders know, so that generated documents reach past "unknown key".
CONFIG_KEYS = [
    "topology", "customers", "locations", "users", "id", "name", "base_url", "probes",
    "interval", "timeout", "retries", "concurrency", "raw_retention", "classification",
    "failed_rounds", "degraded_rate", "sla", "timezone", "support_start", "support_end",
    "targets", "closed_days", "alerting", "oncall", "escalation", "after", "numbers", "twilio",
    "auth_token", "webhook_base_url", "smtp", "port", "mqtt", "topic_prefix", "shared_group",
    "storage", "url", "agent", "web", "logging", "level", "format", "rotation", "weeks",
]  # fmt: skip
SCENARIO_KEYS = [
    "start", "duration", "probe_interval", "customers", "faults", "agents", "maintenance",
    "actions", "oncall", "seed", "service", "customer", "location", "user", "from", "to", "for",
    "kind", "status", "rate", "latency", "at", "acknowledge", "resolve", "reopen", "text", "id",
    "locations", "users", "reason", "services",
]  # fmt: skip
NASTY_TEXT = [
    "", "0s", "-1", "99999999999999d", "1e400", ".nan", "#", "ctiwatch/+", "file:///etc/passwd",
    "javascript:alert(1)", "http://", "${UNSET_VARIABLE}", "\0", "²", "٣", "P1", "08:30",
    "2026-13-01", "2026-12-01T09:00:00+01:00", "9999-12-31T23:59:59-14:00", "+31612345678",
    "x" * 5000,
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=30),
)


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), children, max_size=5),
        ),
        max_leaves=30,
    )


def with_value(text: str, position: int, value: str) -> str:
    """``text`` with the value on the line at ``position`` (if it has one) replaced."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    end = len(text) if end < 0 else end
    dumped = yaml.safe_dump(value, allow_unicode=True, width=10**6).split("\n...")[0].strip()
    changed = re.sub(r":\s+\S.*$", lambda _: ": " + dumped, text[start:end])
    return text[:start] + changed + text[end:]


def assert_clear(error: ConfigError) -> None:
    assert error.errors, "a ConfigError says what is wrong"
    for line in error.errors:
        assert isinstance(line, str) and line.strip()
        assert "Traceback" not in line
        assert "\n" not in line.strip() or line.count("\n") < 5


def load_config_text(text: str) -> Config | None:
    try:
        return config_from_data(parse_yaml(text, "fuzz.yaml"), {})
    except ConfigError as error:
        assert_clear(error)
        return None


def load_scenario_text(text: str) -> Scenario | None:
    try:
        return scenario_from_data(parse_yaml(text, "fuzz.yaml"))
    except ConfigError as error:
        assert_clear(error)
        return None


@fuzz
@given(st.text(max_size=300))
@example("a: " + "[" * 5000)
@example("probes: {interval: 99999999999999d}")
@example("&a [*a]")
@example("a: !!python/object/apply:os.system ['true']")
@example("a: !!binary ////")
@example("? [a, b]\n: 1\n")
@example("a: 1\na: 2\n")
def test_any_text_is_a_config_or_a_clear_error(text: str) -> None:
    load_config_text(text)


@fuzz
@given(documents(CONFIG_KEYS))
def test_any_document_is_a_config_or_a_clear_error(document: Any) -> None:
    load_config_text(yaml.safe_dump(document, allow_unicode=True))


@fuzz
@given(st.integers(min_value=0, max_value=len(DEMO) - 1), st.sampled_from(NASTY_TEXT))
def test_the_demo_config_with_any_value_changed_is_a_config_or_a_clear_error(
    position: int, value: str
) -> None:
    load_config_text(with_value(DEMO, position, value))


@fuzz
@given(st.text(max_size=300))
@example("start: 2026-12-01T09:00:00+01:00\nduration: 99999999999999d\n")
@example("start: 9999-12-31T23:59:59-14:00\nduration: 1d\n")
def test_any_text_is_a_scenario_or_a_clear_error(text: str) -> None:
    load_scenario_text(text)


@fuzz
@given(documents(SCENARIO_KEYS))
def test_any_document_is_a_scenario_or_a_clear_error(document: Any) -> None:
    load_scenario_text(yaml.safe_dump(document, allow_unicode=True))


@fuzz
@given(st.integers(min_value=0, max_value=len(SCENARIO) - 1), st.sampled_from(NASTY_TEXT))
def test_a_shipped_scenario_with_any_value_changed_is_a_scenario_or_a_clear_error(
    position: int, value: str
) -> None:
    load_scenario_text(with_value(SCENARIO, position, value))


def test_the_fuzzed_files_themselves_still_load() -> None:
    assert isinstance(load_config(ROOT / "config" / "ctiwatch.yaml", {}), Config)
    assert isinstance(load_scenario(ROOT / "config" / "scenarios" / "one-user-down.yaml"), Scenario)
