"""``ctiwatch agent``: who the agent is and what it probes, with errors naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiwatch.cli import main
from ctiwatch.config import AgentConfig, ConfigError, config_from_data
from ctiwatch.mqtt.agent import AgentPlan, plan_agent

TOPOLOGY = {
    "customers": [
        {"id": "acme", "locations": [{"id": "ams", "users": ["a"]}, {"id": "rtm", "users": ["b"]}]},
        {"id": "globex", "locations": [{"id": "utr", "users": ["c"]}]},
    ]
}


def test_command_line_overrides_the_agent_section() -> None:
    config = config_from_data(
        {"topology": TOPOLOGY, "agent": {"name": "from-file", "locations": ["utr"]}}
    )

    plan = plan_agent(config, "ams-1", ["rtm", "ams", "rtm"])

    assert (plan.name, plan.locations) == ("ams-1", ("rtm", "ams"))


def test_without_locations_the_agent_probes_every_location() -> None:
    config = config_from_data({"topology": TOPOLOGY, "agent": {"name": "all"}})

    assert plan_agent(config) == AgentPlan("all", ("ams", "rtm", "utr"), AgentConfig(name="all"))


def test_agent_section_defaults() -> None:
    settings = config_from_data({"agent": {"name": "x", "batch_interval": "250ms"}}).agent

    assert settings is not None
    assert (settings.batch_size, settings.batch_interval.total_seconds(), settings.buffer_path) == (
        500,
        0.25,
        "ctiwatch-agent.db",
    )


def test_missing_name_is_an_error_naming_both_ways_to_give_it() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_agent(config_from_data({"topology": TOPOLOGY}))

    assert caught.value.errors == ["agent.name: is required (set it in the config or give --name)"]


def test_unknown_locations_are_each_named() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_agent(config_from_data({"topology": TOPOLOGY}), "x", ["ams", "ehv", "gro"])

    assert caught.value.errors == [
        "agent.locations: unknown location 'ehv' (known: ams, rtm, utr)",
        "agent.locations: unknown location 'gro' (known: ams, rtm, utr)",
    ]


def test_name_that_cannot_be_a_topic_level_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_agent(config_from_data({"topology": TOPOLOGY}), "ams/#")

    assert caught.value.errors == [
        "agent name 'ams/#': must be lower-case letters, digits, '.', '_' or '-'"
    ]


def test_command_exits_2_with_the_error_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("topology:\n  customers: []\n")

    code = main(["agent", "--config", str(config), "--name", "x", "--locations", "ams"])

    assert code == 2
    assert capsys.readouterr().err == (
        "error: agent.locations: unknown location 'ams' (known: none)\n"
    )
