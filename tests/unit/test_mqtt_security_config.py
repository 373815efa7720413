"""``mqtt.tls``, ``mqtt.username`` and ``mqtt.password``: files that cannot be used are errors
naming the field, a password is never written in a configuration file, an agent logs in as its
own name, and a refused connection is explained in the configuration's words."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiomqtt.exceptions import MqttConnectError, MqttError
from ci import unavailable
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from test_config_files import placeholder_env

from ctiwatch.clock import RealClock
from ctiwatch.config import (
    ConfigError,
    MqttConfig,
    MqttTlsConfig,
    TopologyConfig,
    config_from_data,
    load_config,
)
from ctiwatch.mqtt.agent import agent_username, plan_agent
from ctiwatch.mqtt.connect import client_options, explain
from ctiwatch.mqtt.ingest import Ingestion

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "mqtt-secure.sh"
TOPOLOGY = {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["a"]}]}]}


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test material of scripts/mqtt-secure.sh: a CA, a server certificate, a client one."""
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed")
    folder = tmp_path_factory.mktemp("material")
    subprocess.run(
        ["bash", str(SCRIPT), str(folder), "--client", "ams-1"], check=True, capture_output=True
    )
    return folder


def errors_of(mqtt: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_data({"mqtt": mqtt}, {})
    return caught.value.errors


# --- mqtt.tls ------------------------------------------------------------------------------------


def test_a_missing_ca_file_is_an_error_naming_the_field(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    assert errors_of({"tls": {"enabled": True, "ca_file": str(missing)}}) == [
        f"mqtt.tls.ca_file: cannot read '{missing}' (No such file or directory)"
    ]


def test_an_unreadable_key_file_is_an_error_naming_the_field(
    material: Path, tmp_path: Path
) -> None:
    # A directory stands for a file the process may not read (tests may run as root).
    assert errors_of(
        {
            "tls": {
                "enabled": True,
                "cert_file": str(material / "client-ams-1.pem"),
                "key_file": str(tmp_path),
            }
        }
    ) == [f"mqtt.tls.key_file: cannot read '{tmp_path}' (Is a directory)"]


def test_a_ca_file_that_is_not_a_certificate_is_an_error(tmp_path: Path) -> None:
    text = tmp_path / "ca.pem"
    text.write_text("not a certificate\n")
    [error] = errors_of({"tls": {"enabled": True, "ca_file": str(text)}})
    assert error.startswith(f"mqtt.tls.ca_file: '{text}' holds no usable PEM certificate (")


def test_a_client_certificate_needs_its_key_and_the_key_must_match(material: Path) -> None:
    cert = str(material / "client-ams-1.pem")
    assert errors_of({"tls": {"enabled": True, "cert_file": cert}}) == [
        "mqtt.tls.key_file: is required with cert_file (a client certificate and its key)"
    ]
    [error] = errors_of(
        {"tls": {"enabled": True, "cert_file": cert, "key_file": str(material / "server.key")}}
    )
    assert error.startswith(
        f"mqtt.tls.cert_file: '{cert}' with key_file '{material / 'server.key'}' is not a PEM "
        "certificate and its key ("
    )


def test_tls_files_are_not_read_while_tls_is_off(tmp_path: Path) -> None:
    config = config_from_data({"mqtt": {"tls": {"ca_file": str(tmp_path / "later.pem")}}}, {})
    assert config.mqtt.tls.enabled is False
    assert "tls_context" not in client_options(config.mqtt, username=None)


def test_the_tls_context_verifies_the_broker_and_its_name_unless_insecure(material: Path) -> None:
    tls = MqttTlsConfig(
        enabled=True,
        ca_file=str(material / "ca.pem"),
        cert_file=str(material / "client-ams-1.pem"),
        key_file=str(material / "client-ams-1.key"),
    )
    context = tls.context()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "ctiwatch test material"),), (("commonName", "ctiwatch test CA"),))
    ]
    insecure = tls.model_copy(update={"insecure": True}).context()
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_REQUIRED, False)


def test_a_tls_file_gone_after_loading_is_a_connection_error_naming_the_setting(
    material: Path, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(material / "ca.pem", ca)
    mqtt = MqttConfig(tls=MqttTlsConfig(enabled=True, ca_file=str(ca)))
    ca.unlink()
    with pytest.raises(MqttError) as caught:
        client_options(mqtt, username=None)
    assert str(caught.value) == (
        f"mqtt.tls.ca_file: cannot read '{ca}' (No such file or directory)"
    )
    assert explain(caught.value, mqtt, None).refused is True


# --- the password comes from the environment ---------------------------------------------------


def test_a_password_written_in_a_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ctiwatch.yaml"
    path.write_text("mqtt:\n  username: ctiwatch\n  password: hunter2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == [
        "mqtt.password: must come from the environment, such as '${MQTT_PASSWORD}' "
        "(a password written in the configuration file is refused)"
    ]


def test_a_password_from_the_environment_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ctiwatch.yaml"
    path.write_text("mqtt:\n  username: ctiwatch\n  password: ${BROKER_PASSWORD}\n")
    config = load_config(path, {"BROKER_PASSWORD": "from-the-environment"})
    assert (config.mqtt.username, config.mqtt.password) == ("ctiwatch", "from-the-environment")


# --- an agent logs in as its own name -----------------------------------------------------------


def test_an_agent_logs_in_as_its_own_name_when_it_has_a_password() -> None:
    assert agent_username(MqttConfig(password="p"), "ams-1") == "ams-1"
    assert agent_username(MqttConfig(username="ams-1", password="p"), "ams-1") == "ams-1"
    assert agent_username(MqttConfig(), "ams-1") is None  # an anonymous broker


def test_an_agent_with_another_login_than_its_name_is_a_config_error() -> None:
    config = config_from_data(
        {"topology": TOPOLOGY, "mqtt": {"username": "ctiwatch", "password": "p"}}, {}
    )
    with pytest.raises(ConfigError) as caught:
        plan_agent(config, "ams-1")
    assert caught.value.errors == [
        "mqtt.username: an agent logs in as its own name 'ams-1', not 'ctiwatch' (the broker "
        "lets a user publish under its own name only); leave it out or make it the agent's name"
    ]


# --- a refused connection, explained -----------------------------------------------------------


@pytest.mark.parametrize("code", ["Bad user name or password", "Not authorized"])
def test_a_refused_mqtt5_login_names_the_user_and_the_settings(code: str) -> None:
    refused = MqttConnectError(ReasonCode(PacketTypes.CONNACK, code))
    problem = explain(refused, MqttConfig(), "ams-1")
    assert problem.refused is True
    assert problem.text == (
        f"the broker refused the login of user 'ams-1' ({refused}): "
        "check mqtt.username and mqtt.password (and the broker's password file and ACL)"
    )


def test_a_refused_mqtt311_login_without_a_username_says_it_was_anonymous() -> None:
    problem = explain(MqttConnectError(5), MqttConfig(), None)
    assert problem.refused is True
    assert problem.text.startswith(
        "the broker refused the login of an anonymous client (no mqtt.username) ([code:5] "
    )


def test_an_unreachable_broker_is_not_a_refusal() -> None:
    problem = explain(MqttError("[Errno 111] Connection refused"), MqttConfig(), "ams-1")
    assert problem == type(problem)("[Errno 111] Connection refused", refused=False)


# --- the shipped examples ------------------------------------------------------------------------


def test_the_production_example_speaks_tls_with_credentials_from_the_environment() -> None:
    path = ROOT / "config" / "production.example.yaml"
    assert yaml.safe_load(path.read_text())["mqtt"]["password"] == "${MQTT_PASSWORD}"
    config = load_config(path, {**placeholder_env(path), "MQTT_PASSWORD": "from-env"})
    mqtt = config.mqtt
    assert (mqtt.port, mqtt.username, mqtt.password) == (8883, "ctiwatch", "from-env")
    assert mqtt.tls == MqttTlsConfig(enabled=True)  # verified against the system's CAs
    assert client_options(mqtt, username=mqtt.username)["tls_context"].check_hostname is True


def test_the_agent_example_logs_in_as_its_name_over_tls(material: Path) -> None:
    path = ROOT / "config" / "agent.example.yaml"
    env = {**placeholder_env(path), "MQTT_CA_FILE": str(material / "ca.pem")}
    config = load_config(path, env)
    plan = plan_agent(config)
    assert agent_username(config.mqtt, plan.name) == "agent-globex-utr"
    assert (config.mqtt.tls.enabled, config.mqtt.tls.ca_file) == (True, str(material / "ca.pem"))


async def test_a_subscription_the_broker_refuses_is_an_error_not_silence() -> None:
    class RefusingBroker:
        async def subscribe(self, topic: str, qos: int) -> list[ReasonCode]:
            return [ReasonCode(PacketTypes.SUBACK, "Not authorized")]

    async def sink(batch: list[Any]) -> None:
        raise AssertionError("nothing to store")

    mqtt = MqttConfig(username="ctiwatch", password="p")
    ingestion = Ingestion(mqtt, TopologyConfig(), sink, clock=RealClock())
    with pytest.raises(MqttError) as caught:
        await ingestion._subscribe(RefusingBroker(), "ctiwatch/v1/results/+")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "the broker refused the subscription to ctiwatch/v1/results/+ (Not authorized): "
        "its ACL must let user 'ctiwatch' read it"
    )
    assert explain(caught.value, mqtt, "ctiwatch").refused is True
