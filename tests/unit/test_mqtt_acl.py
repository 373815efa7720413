"""The broker's ACL follows the configuration (``ctiwatch mqtt acl``), and the secure compose
variant (``docker-compose.secure.yml``) wires it: the ACL is made from the file the central
service reads and lands where ``docker/mosquitto-secure.conf`` reads it.

``tests/integration/test_mqtt_secure.py`` runs a real Mosquitto with the ACL made here for its
own prefix: an agent publishing under another's name is refused by the broker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci import unavailable

from ctiwatch.cli import main
from ctiwatch.config import load_config
from ctiwatch.mqtt.acl import mosquitto_acl
from ctiwatch.mqtt.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
SECURE = ROOT / "docker-compose.secure.yml"
SECURE_ENV = {"MQTT_PASSWORD": "service-password", "MQTT_AGENT_PASSWORD": "agent-password"}


def rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_shipped_acl_is_the_one_made_for_the_default_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shipped = (ROOT / "docker" / "mosquitto.acl").read_text()
    assert mosquitto_acl(Topics()) == shipped
    assert main(["mqtt", "acl"]) == 0
    assert capsys.readouterr().out == shipped


def test_the_acl_follows_the_configured_prefix_and_login(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "central.yaml"
    config.write_text(
        "mqtt:\n  enabled: true\n  username: watcher\n  password: ${PW}\n"
        "  topic_prefix: acme/monitoring/v2\n"
    )
    monkeypatch.setenv("PW", "secret")
    assert main(["mqtt", "acl", "--config", str(config), "--platform-user", "pbx"]) == 0
    assert rules(capsys.readouterr().out) == [
        "user watcher",
        "topic read acme/monitoring/v2/#",
        "user pbx",
        "topic write acme/monitoring/v2/calls/#",
        "pattern write acme/monitoring/v2/results/%u",
        "pattern write acme/monitoring/v2/agents/%u/status",
    ]
    output = tmp_path / "acl"
    assert main(["mqtt", "acl", "--no-platform", "--output", str(output)]) == 0
    assert "calls" not in output.read_text()
    assert rules(output.read_text())[:2] == ["user ctiwatch", "topic read ctiwatch/v1/#"]


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        # %u in a pattern line is the login: a prefix holding it would grant another topic.
        (
            "topic_prefix",
            "a%ub",
            "mqtt.topic_prefix: a topic prefix without spaces, control characters or '%', "
            "not 'a%ub'",
        ),
        (
            "topic_prefix",
            "ctiwatch v1",
            "mqtt.topic_prefix: a topic prefix without spaces, control characters or '%', "
            "not 'ctiwatch v1'",
        ),
        (
            "username",
            "ctiwatch\\ntopic readwrite #",
            "mqtt.username: a login without spaces, control characters or '%', "
            "not 'ctiwatch\\ntopic readwrite #'",
        ),
    ],
)
def test_a_setting_that_would_write_another_rule_is_refused_naming_it(
    setting: str, value: str, error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "central.yaml"
    config.write_text(f'mqtt:\n  {setting}: "{value}"\n')
    assert main(["mqtt", "acl", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {error}\n")


def test_a_platform_login_with_a_space_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mqtt", "acl", "--platform-user", "cti platform"]) == 2
    assert capsys.readouterr().err == (
        "error: --platform-user: a login without spaces, control characters or '%', "
        "not 'cti platform'\n"
    )


# --- the secure compose variant -----------------------------------------------------------------


def secure() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SECURE.read_text())
    return loaded


def mounts(service: str) -> dict[str, str]:
    """Container path -> host path (or volume name) of the override's mounts of ``service``."""
    found = {}
    for volume in secure()["services"][service]["volumes"]:
        source, target = str(volume).split(":")[:2]
        found[target] = source
    return found


def test_the_secure_compose_variant_is_valid_for_docker_compose() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        unavailable("docker-compose is not installed")
    done = subprocess.run(
        [tool, "-f", "docker-compose.yml", "-f", SECURE.name, "config", "-q"],
        cwd=ROOT,
        env={**os.environ, **SECURE_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    # Without the passwords compose refuses to start, naming the one to set.
    env = {k: v for k, v in os.environ.items() if k not in SECURE_ENV}
    done = subprocess.run(
        [tool, "-f", "docker-compose.yml", "-f", SECURE.name, "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "set MQTT_PASSWORD" in done.stderr or "set MQTT_AGENT_PASSWORD" in done.stderr


def test_the_secure_broker_reads_the_acl_made_from_the_central_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    services = secure()["services"]
    central = mounts("ctiwatch")["/etc/ctiwatch/ctiwatch.yaml"]
    maker = services["mqtt-acl"]
    assert mounts("mqtt-acl")["/etc/ctiwatch/ctiwatch.yaml"] == central
    command = maker["command"]
    assert command[:2] == ["mqtt", "acl"]
    assert command[command.index("--config") + 1] == "/etc/ctiwatch/ctiwatch.yaml"
    written = Path(command[command.index("--output") + 1])
    volume = mounts("mqtt-acl")[str(written.parent)]
    assert mounts("mosquitto")[str(written.parent)] == volume
    conf = (ROOT / "docker" / "mosquitto-secure.conf").read_text()
    assert f"acl_file {written}\n" in conf
    assert services["mosquitto"]["depends_on"] == {
        "mqtt-acl": {"condition": "service_completed_successfully"}
    }
    # The ACL the service makes, for the configuration it mounts, lets the agent's login
    # publish under its own name, and the agent's configuration logs in as that name.
    environ = {"MQTT_PASSWORD": "x", "MQTT_AGENT_PASSWORD": "y", "POSTGRES_PASSWORD": "z"}
    config = load_config(ROOT / central, environ)
    agent = load_config(ROOT / mounts("agent")["/etc/ctiwatch/agent.yaml"], environ)
    assert (config.mqtt.port, config.mqtt.tls.enabled, agent.mqtt.tls.enabled) == (
        8883,
        True,
        True,
    )
    assert agent.agent is not None and agent.mqtt.username == agent.agent.name
    assert agent.mqtt.topic_prefix == config.mqtt.topic_prefix
    acl = mosquitto_acl(Topics(config.mqtt.topic_prefix), config.mqtt.username or "")
    assert f"pattern write {config.mqtt.topic_prefix}/results/%u" in rules(acl)
    assert f"user {config.mqtt.username}" in rules(acl)
