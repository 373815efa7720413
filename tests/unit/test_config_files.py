"""Every shipped configuration loads; every invalid one gives exactly its documented errors.

``config/invalid/expected.yaml`` lists, per file, the error lines ``ctiwatch check-config`` must
print (``{file}`` stands for the path given). The container's configuration (the files
docker-compose.yml mounts) passes ``check-config`` with the environment compose gives it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctiwatch.cli import main
from ctiwatch.config import (
    ClassificationConfig,
    ConfigError,
    SlaConfig,
    load_config,
)
from ctiwatch.mqtt.agent import plan_agent
from ctiwatch.settings import policy_from_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
INVALID = CONFIG / "invalid"
SHIPPED = sorted(CONFIG.glob("*.yaml"))
EXPECTED: dict[str, list[str]] = yaml.safe_load((INVALID / "expected.yaml").read_text())
INVALID_FILES = sorted(p for p in INVALID.glob("*.yaml") if p.name != "expected.yaml")
UNSET = "CTIWATCH_TEST_UNSET_TOKEN"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def placeholder_env(path: Path) -> dict[str, str]:
    """A value for every ``${NAME}`` without a default that ``path`` uses (as a deployment sets):
    a URL for ``*_URL``, else a placeholder text."""
    names = {m.group(1) for m in _ENV_REF.finditer(path.read_text()) if m.group(2) is None}
    return {
        name: f"https://{name.lower()}.example"
        if name.endswith("_URL")
        else f"placeholder-{name.lower()}"
        for name in names
    }


def test_there_are_shipped_configs() -> None:
    assert {p.name for p in SHIPPED} >= {
        "ctiwatch.yaml",
        "production.example.yaml",
        "topology.example.yaml",
        "docker.yaml",
        "docker-agent.yaml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_passes_check_config(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in placeholder_env(path).items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok (")
    assert err == ""


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_builds_its_sla_policy(path: Path) -> None:
    config = load_config(path, placeholder_env(path))
    policy = policy_from_config(config.sla)
    assert policy.warning_at == config.sla.warning_at


def test_demo_config_has_the_demo_topology() -> None:
    config = load_config(CONFIG / "ctiwatch.yaml", {})
    assert [
        (c.id, [(loc.id, len(loc.users)) for loc in c.locations]) for c in config.topology.customers
    ] == [
        ("acme", [("acme-ams", 3), ("acme-rtm", 2)]),
        ("globex", [("globex-utr", 4)]),
        ("initech", [("initech-ein", 2)]),
    ]


def test_demo_config_runs_everything_locally_and_sends_nothing_real() -> None:
    config = load_config(CONFIG / "ctiwatch.yaml", {})
    assert config.probes.base_url == "http://127.0.0.1:8081"
    assert (config.simulator.enabled, config.simulator.port) == (True, 8081)
    assert config.storage.url == "sqlite+aiosqlite:///var/ctiwatch.db"
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8080)
    assert config.alerting.fakes is True
    assert config.alerting.twilio.base_url.startswith("http://127.0.0.1:")
    assert config.alerting.smtp.host == "127.0.0.1"
    assert config.alerting.oncall == ["+31612345678", "+31687654321"]
    assert (config.mqtt.enabled, config.mqtt.host, config.mqtt.port) == (True, "127.0.0.1", 1883)


def test_demo_config_keeps_the_sla_and_classification_of_the_spec() -> None:
    config = load_config(CONFIG / "ctiwatch.yaml", {})
    assert config.sla == SlaConfig()
    assert config.classification == ClassificationConfig()
    assert config.alerting.support_email == "support@cloudcti.nl"
    assert config.alerting.support_line == "+31356990230"
    assert config.alerting.contingency_line == "+31356990244"
    assert config.alerting.contingency_min_p1_customers == 2


def test_production_example_uses_postgres_mqtt_and_real_senders() -> None:
    path = CONFIG / "production.example.yaml"
    config = load_config(path, placeholder_env(path))
    assert config.storage.url.startswith("postgresql+asyncpg://ctiwatch:placeholder-")
    assert config.mqtt.enabled is True
    assert config.alerting.fakes is False
    assert config.alerting.twilio.account_sid == "placeholder-twilio_account_sid"
    assert config.alerting.twilio.auth_token == "placeholder-twilio_auth_token"
    assert config.alerting.smtp.host == "placeholder-smtp_host"
    assert config.simulator.enabled is False


def test_production_example_without_its_secrets_names_each_missing_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG / "production.example.yaml", {})
    assert "alerting.twilio.auth_token: environment variable TWILIO_AUTH_TOKEN is not set" in (
        caught.value.errors
    )


def test_no_shipped_config_holds_a_real_looking_twilio_secret() -> None:
    for path in SHIPPED:
        text = path.read_text()
        assert not re.search(r"\bAC[0-9a-f]{32}\b", text), path
        assert not re.search(r"auth_token:\s*[0-9a-f]{32}\b", text), path


# --- invalid configurations ------------------------------------------------------------------


def expected_lines(path: Path, shown_as: str) -> list[str]:
    return [line.replace("{file}", shown_as) for line in EXPECTED[path.name]]


def test_every_invalid_config_has_its_expected_errors_listed() -> None:
    assert sorted(EXPECTED) == [p.name for p in INVALID_FILES]


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.name for p in INVALID_FILES])
def test_invalid_config_gives_exactly_its_errors(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == expected_lines(path, str(path))


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.name for p in INVALID_FILES])
def test_check_config_exits_2_printing_each_error(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"error: {line}" for line in expected_lines(path, str(path))]


@pytest.mark.parametrize(
    "name",
    [
        "unknown_key.yaml",
        "yaml_syntax.yaml",
        "missing_env.yaml",
        "deep_nesting.yaml",
        "alias_bomb.yaml",
        "huge_duration.yaml",
    ],
)
def test_check_config_command_prints_errors_without_a_traceback(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != UNSET}
    relative = f"config/invalid/{name}"
    done = subprocess.run(
        [sys.executable, "-m", "ctiwatch", "check-config", relative],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    expected = expected_lines(INVALID / name, relative)
    assert done.stderr.splitlines() == [f"error: {line}" for line in expected]


def test_missing_file_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: cannot read (No such file or directory)\n"


def test_empty_file_is_the_embedded_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_config(empty, {}) == load_config(None)


def test_priority_keys_may_be_written_p1_to_p4(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "sla:\n  targets:\n    P2: {response: 6h, update: 6h, repair_working_days: 3}\n"
    )
    target = load_config(path, {}).sla.targets[2]
    assert (target.response, target.repair_working_days) == (timedelta(hours=6), 3)


# --- the container's configuration -----------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def mounted_config(service: str, target: str) -> Path:
    """The host file docker-compose.yml mounts at ``target`` in ``service``."""
    for volume in compose()["services"][service]["volumes"]:
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target:
            return (ROOT / source).resolve()
    raise AssertionError(f"{service} mounts nothing at {target}")


def compose_env(service: str) -> dict[str, str]:
    """The service's environment as compose sets it with no .env file (defaults applied)."""
    env: dict[str, str] = {}
    for key, value in compose()["services"][service].get("environment", {}).items():
        env[key] = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", str(value))
    return env


def command_config(service: str) -> str:
    command = compose()["services"][service]["command"]
    words = command if isinstance(command, list) else shlex.split(command)
    return str(words[words.index("--config") + 1])


@pytest.mark.parametrize("service", ["ctiwatch", "agent"])
def test_config_the_container_uses_passes_check_config(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = command_config(service)
    path = mounted_config(service, target)
    for name in list(os.environ):
        if name.startswith(("POSTGRES_", "CTIWATCH_")):
            monkeypatch.delenv(name)
    for name, value in compose_env(service).items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok (")


def test_container_config_reaches_the_compose_services() -> None:
    config = load_config(mounted_config("ctiwatch", "/etc/ctiwatch/ctiwatch.yaml"), {})
    services = compose()["services"]
    postgres = services["postgres"]["environment"]
    assert config.storage.url == (
        f"postgresql+asyncpg://{postgres['POSTGRES_USER']}:ctiwatch@postgres:5432/"
        f"{postgres['POSTGRES_DB']}"
    )
    assert (config.mqtt.enabled, config.mqtt.host, config.mqtt.port) == (True, "mosquitto", 1883)
    assert config.web.host == "0.0.0.0"
    assert config.alerting.fakes is True
    agent = load_config(mounted_config("agent", "/etc/ctiwatch/agent.yaml"), {})
    assert (agent.mqtt.host, agent.probes.base_url) == ("mosquitto", "http://ctiwatch:8081")
    assert agent.agent is not None
    assert (agent.agent.name, agent.agent.locations) == ("agent-rtm", ["acme-rtm"])
    assert plan_agent(agent).locations == ("acme-rtm",)


def test_image_default_command_matches_the_compose_mount() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["ctiwatch"]' in dockerfile
    assert 'CMD ["run", "--config", "/etc/ctiwatch/ctiwatch.yaml"]' in dockerfile
    assert "COPY config/docker.yaml /etc/ctiwatch/ctiwatch.yaml" in dockerfile
    assert command_config("ctiwatch") == "/etc/ctiwatch/ctiwatch.yaml"
    assert compose()["services"]["agent"]["command"][0] == "agent"


def test_check_config_names_rotation_overrides_that_run_could_not_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The schema takes any text as an override time; building the rotation (what `run` does)
    # is what finds a bad one, so check-config builds it too instead of `run` failing later.
    path = tmp_path / "rotation.yaml"
    path.write_text(
        "alerting:\n"
        '  oncall: ["+31612345678"]\n'
        "  rotation:\n"
        '    weeks: [["+31612345678"]]\n'
        "    overrides:\n"
        '      - {start: "soon", end: "2026-12-31", numbers: ["+31687654321"]}\n'
        '      - {start: "2026-12-31T12:00", end: "2026-12-31T09:00", numbers: ["+31687654321"]}\n'
    )
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: alerting.rotation.overrides[0]: 'soon' is not an ISO 8601 date or date-time",
        "error: alerting.rotation.overrides[1]: end must be after start",
    ]
