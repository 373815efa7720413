"""The YAML loader's bounds and the configuration's value bounds, beside what they still allow.

The refused files themselves (5,000-deep nesting, an alias bomb, a duplicate key, a duration
past ten years, ``interval: 0s``, wildcard topics, ``file:`` URLs) are in ``config/invalid/``
with their exact errors; here, the edges of each bound.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ctiwatch.config import (
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    ConfigError,
    config_from_data,
    parse_yaml,
)


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_data(parse_yaml(text, "f.yaml"), {})
    return caught.value.errors


def nested(depth: int) -> str:
    """A document whose innermost value is ``depth`` levels deep (the top mapping is level 1)."""
    return "a: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"


def test_nesting_up_to_the_limit_is_read() -> None:
    value = parse_yaml(nested(MAX_DEPTH), "f.yaml")["a"]
    for _ in range(MAX_DEPTH - 2):
        [value] = value
    assert value == []


def test_nesting_one_past_the_limit_is_refused_where_it_starts() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(nested(MAX_DEPTH + 1), "f.yaml")
    assert caught.value.errors == [
        f"f.yaml: refused at line 1, column {MAX_DEPTH + 3}: nested more than 64 levels deep"
    ]


def test_aliases_that_share_a_block_are_read() -> None:
    text = "base: &b {x: 1, y: 2}\none: *b\ntwo: *b\n"
    assert parse_yaml(text, "f.yaml") == {
        "base": {"x": 1, "y": 2},
        "one": {"x": 1, "y": 2},
        "two": {"x": 1, "y": 2},
    }


def test_alias_expansion_is_counted_up_to_its_limit() -> None:
    # A list of 999 values (1,000 with the list itself) named 100 times: exactly the limit.
    block = "[" + ", ".join(["0"] * 999) + "]"
    at_limit = f"a: &a {block}\nb: [{', '.join(['*a'] * 100)}]\n"
    assert MAX_ALIAS_EXPANSION == 100 * 1000
    assert len(parse_yaml(at_limit, "f.yaml")["b"]) == 100


def test_alias_expansion_past_its_limit_is_refused_at_the_alias_that_passes_it() -> None:
    block = "[" + ", ".join(["0"] * 999) + "]"
    past_limit = f"a: &a {block}\nb: [{', '.join(['*a'] * 101)}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_yaml(past_limit, "f.yaml")
    assert caught.value.errors == [
        "f.yaml: refused at line 2, column 405: aliases expand to more than 100,000 values"
    ]


def test_a_key_merged_in_may_be_overridden() -> None:
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n"
    assert parse_yaml(text, "f.yaml")["m"] == {"x": 3, "y": 2}


def test_a_key_given_twice_in_a_nested_mapping_names_both_lines() -> None:
    assert errors_of("mqtt:\n  host: a\n  port: 1883\n  host: b\n") == [
        "f.yaml: not valid YAML at line 4, column 3: key 'host' is given twice (first at line 2)"
    ]


def test_keys_equal_only_as_text_are_two_keys() -> None:
    assert parse_yaml("1: x\n'1': y\n", "f.yaml") == {1: "x", "1": "y"}


@pytest.mark.parametrize(
    ("interval", "seconds"), [("1s", 1), ("1000ms", 1), ("60s", 60), ("1d", 86400), (3600, 3600)]
)
def test_interval_within_one_second_and_one_day_is_taken(interval: object, seconds: int) -> None:
    config = config_from_data({"probes": {"interval": interval}}, {})
    assert config.probes.interval == timedelta(seconds=seconds)


@pytest.mark.parametrize("interval", ["999ms", "0s", 0, "1.5d", 86401])
def test_interval_outside_one_second_and_one_day_is_refused(interval: object) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_data({"probes": {"interval": interval}}, {})
    assert caught.value.errors == ["probes.interval: must be between 1s and 1d"]


@pytest.mark.parametrize("value", ["99999999999999d", "3651d", 1e300, float("inf")])
def test_a_duration_past_ten_years_is_refused(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_data({"probes": {"raw_retention": value}}, {})
    [line] = caught.value.errors
    assert line.startswith("probes.raw_retention: must be at most 3650d (ten years), not ")


def test_ten_years_is_the_longest_duration() -> None:
    config = config_from_data({"probes": {"rollup_retention": "3650d"}}, {})
    assert config.probes.rollup_retention == timedelta(days=3650)


@pytest.mark.parametrize("prefix", ["ctiwatch/v1", "acme/ctiwatch/v2", "ctiwatch", "a b/c"])
def test_a_topic_prefix_without_wildcards_is_taken(prefix: str) -> None:
    assert config_from_data({"mqtt": {"topic_prefix": prefix}}, {}).mqtt.topic_prefix == prefix


@pytest.mark.parametrize(
    "prefix", ["#", "ctiwatch/+", "", "/ctiwatch", "ctiwatch/", "$SYS/x", "a\0b"]
)
def test_a_topic_prefix_with_a_wildcard_or_an_empty_level_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_data({"mqtt": {"topic_prefix": prefix}}, {})
    [line] = caught.value.errors
    assert line.startswith("mqtt.topic_prefix: must be a topic prefix without '#', '+' or NUL")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8081", "https://api.twilio.com", "https://be.cloudcti.example/api"]
)
def test_http_and_https_urls_are_taken(url: str) -> None:
    assert config_from_data({"probes": {"base_url": url}}, {}).probes.base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://host/x",
        "http://",
        "http://host:port/",
        "http://host/a b",
        "host:8080",
        "",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_data({"alerting": {"twilio": {"webhook_base_url": url}}}, {})
    [line] = caught.value.errors
    assert line.startswith(
        "alerting.twilio.webhook_base_url: must be an http:// or https:// URL such as "
    )
