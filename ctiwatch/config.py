"""Configuration: strict YAML validated by pydantic, errors in the user's words.

Unknown keys are errors; every error names the entity and the field, e.g.
``topology.customers[acme].locations[acme-ams].users: must not be empty``.
Secrets come from the environment: ``${TWILIO_AUTH_TOKEN}`` anywhere in a string value is
replaced by that variable (``${NAME:-default}`` gives a default).
"""

from __future__ import annotations

import os
import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ID = r"^[a-z0-9][a-z0-9_.-]*$"
_PHONE = r"^\+[1-9][0-9]{6,14}$"


class ConfigError(Exception):
    """A configuration (or scenario) that cannot be used; ``errors`` are one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def parse_duration(value: Any) -> timedelta:
    """``"60s"``, ``"1.5h"``, ``"250ms"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '60s', '5m', '4h' or '2d'")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"must be a duration such as '60s', '5m', '4h' or '2d', not {value!r}")


def _phone(value: Any) -> Any:
    """Accept the SLA's spelling ``+31 (0) 35 699 02 30`` and store E.164 ``+31356990230``."""
    if isinstance(value, str):
        cleaned = value.replace("(0)", "").replace(" ", "").replace("-", "")
        return cleaned
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PhoneNumber = Annotated[str, BeforeValidator(_phone), Field(pattern=_PHONE)]
Identifier = Annotated[str, Field(pattern=_ID, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- topology -------------------------------------------------------------------------------


class UserConfig(Strict):
    id: Identifier
    name: str = ""
    extension: str = ""
    # The caller number the CRM probe presents for this user, and the contact it must find.
    caller_number: PhoneNumber = "+31201234567"
    expected_contact: str = "ctiwatch test contact"


class LocationConfig(Strict):
    id: Identifier
    name: str = ""
    users: list[UserConfig] = Field(min_length=1)
    # Base URL of the CloudCTI API this location is served by; default: probes.base_url.
    base_url: str | None = None

    @field_validator("users", mode="before")
    @classmethod
    def _users_as_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"id": u} if isinstance(u, str) else u for u in value]
        return value

    @model_validator(mode="after")
    def _unique_users(self) -> LocationConfig:
        _require_unique("users", [u.id for u in self.users])
        return self


class ContactConfig(Strict):
    name: str = ""
    email: str = ""
    phone: str = ""


class CustomerConfig(Strict):
    id: Identifier
    name: str = ""
    contact: ContactConfig = ContactConfig()
    locations: list[LocationConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_locations(self) -> CustomerConfig:
        _require_unique("locations", [loc.id for loc in self.locations])
        return self


class TopologyConfig(Strict):
    customers: list[CustomerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_customers(self) -> TopologyConfig:
        _require_unique("customers", [c.id for c in self.customers])
        locations = [loc.id for c in self.customers for loc in c.locations]
        _require_unique("locations", locations)
        return self

    def customer(self, customer_id: str) -> CustomerConfig | None:
        return next((c for c in self.customers if c.id == customer_id), None)


def _require_unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise ValueError(f"{what}: id {ident!r} is used twice")
        seen.add(ident)


# --- probes and classification ------------------------------------------------------------


class ProbesConfig(Strict):
    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: Duration = timedelta(seconds=1)
    concurrency: int = Field(default=100, ge=1, le=100_000)
    base_url: str = "http://127.0.0.1:8081"
    api_token: str = "ctiwatch-demo-token"
    raw_retention: Duration = timedelta(days=14)
    rollup_retention: Duration = timedelta(days=400)


class ClassificationConfig(Strict):
    failed_rounds: int = Field(default=3, ge=1)
    degraded_rate: float = Field(default=0.90, gt=0, le=1)
    degraded_window: Duration = timedelta(hours=1)
    degraded_min_calls: int = Field(default=20, ge=1)
    frequent_misses: int = Field(default=10, ge=1)
    some_misses: int = Field(default=3, ge=1)
    misses_window: Duration = timedelta(hours=24)
    recovery_rounds: int = Field(default=3, ge=1)
    miss_quiet_period: Duration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _ordered(self) -> ClassificationConfig:
        if self.some_misses >= self.frequent_misses:
            raise ValueError("some_misses must be lower than frequent_misses")
        return self


# --- SLA -------------------------------------------------------------------------------------


class TargetConfig(Strict):
    """Targets of one priority: support-time durations, or ``null`` for "not set"."""

    response: Duration | None
    update: Duration | None
    repair_working_days: int | None = Field(default=None, ge=1)


def _default_targets() -> dict[int, TargetConfig]:
    day = timedelta(hours=8, minutes=30)  # "1 working day" = one day of support hours
    return {
        1: TargetConfig(response=timedelta(hours=4), update=timedelta(hours=4)),
        2: TargetConfig(
            response=timedelta(hours=8), update=timedelta(hours=8), repair_working_days=2
        ),
        3: TargetConfig(response=day, update=None),
        4: TargetConfig(response=day, update=None),
    }


class SlaConfig(Strict):
    timezone: str = "Europe/Amsterdam"
    support_start: time = time(8, 30)
    support_end: time = time(17, 0)
    holidays_country: str = "NL"
    closed_days: list[date] = Field(default_factory=list)
    removed_holidays: list[str] = Field(default_factory=list)
    targets: dict[int, TargetConfig] = Field(default_factory=_default_targets)
    warning_at: float = Field(default=0.75, gt=0, lt=1)
    performance_target: float = Field(default=0.90, gt=0, le=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("targets")
    @classmethod
    def _priorities(cls, value: dict[int, TargetConfig]) -> dict[int, TargetConfig]:
        merged = _default_targets()
        for priority, target in value.items():
            if priority not in (1, 2, 3, 4):
                raise ValueError(f"priority {priority} does not exist (1 to 4)")
            merged[priority] = target
        return merged

    @model_validator(mode="after")
    def _hours(self) -> SlaConfig:
        if self.support_end <= self.support_start:
            raise ValueError("support_end must be after support_start")
        return self


# --- alerting --------------------------------------------------------------------------------


class TwilioConfig(Strict):
    account_sid: str = "ACfake00000000000000000000000000000"
    auth_token: str = "fake-auth-token"
    from_number: PhoneNumber = "+3197010000000"
    # Where the twilio client sends its REST calls. The default is the project's fake Twilio.
    base_url: str = "http://127.0.0.1:8025"
    # Public URL Twilio calls back (webhooks); the fake posts here.
    webhook_base_url: str = "http://127.0.0.1:8080"


class SmtpConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8026, ge=1, le=65535)
    sender: str = "ctiwatch@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False


class EscalationStepConfig(Strict):
    name: str
    after: Duration
    numbers: list[PhoneNumber] = Field(default_factory=list)


class RotationConfig(Strict):
    """Weekly rotation: week N (ISO week modulo len(weeks)) is covered by ``weeks[N]``."""

    weeks: list[list[PhoneNumber]] = Field(default_factory=list)
    overrides: list[OverrideConfig] = Field(default_factory=list)


class OverrideConfig(Strict):
    start: str
    end: str
    numbers: list[PhoneNumber]


class AlertingConfig(Strict):
    support_email: str = "support@cloudcti.nl"
    support_line: PhoneNumber = "+31356990230"
    contingency_line: PhoneNumber = "+31356990244"
    contingency_min_p1_customers: int = Field(default=2, ge=1)
    oncall: list[PhoneNumber] = Field(default_factory=list)
    escalation: list[EscalationStepConfig] = Field(default_factory=list)
    rotation: RotationConfig | None = None
    twilio: TwilioConfig = TwilioConfig()
    smtp: SmtpConfig = SmtpConfig()
    fakes: bool = True  # start the project's fake Twilio and SMTP servers in-process


# --- shell -----------------------------------------------------------------------------------


class StorageConfig(Strict):
    url: str = "sqlite+aiosqlite:///ctiwatch.db"


class MqttConfig(Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    topic_prefix: str = "ctiwatch/v1"
    shared_group: str = "ctiwatch"


class WebConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class SimulatorConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["kv", "json"] = "kv"


class Config(Strict):
    topology: TopologyConfig = TopologyConfig()
    probes: ProbesConfig = ProbesConfig()
    classification: ClassificationConfig = ClassificationConfig()
    sla: SlaConfig = SlaConfig()
    alerting: AlertingConfig = AlertingConfig()
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    web: WebConfig = WebConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    logging: LoggingConfig = LoggingConfig()


# --- loading ---------------------------------------------------------------------------------


def substitute_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string; a missing one is an error."""
    env = dict(os.environ) if environ is None else environ
    missing: list[str] = []

    def one(text: str) -> str:
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        return _ENV.sub(repl, text)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return one(node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(item) for key, item in node.items()}
        return node

    result = walk(value)
    if missing:
        raise ConfigError(
            [f"environment variable {name} is not set" for name in sorted(set(missing))]
        )
    return result


def describe_errors(exc: ValidationError, data: Any) -> list[str]:
    """Pydantic errors as ``path: message`` lines, with list items named by their ``id``."""
    lines = []
    for error in exc.errors():
        path = _readable_path(error["loc"], data)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif error["type"] == "missing":
            message = "is required"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _readable_path(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for step in loc:
        if isinstance(step, int) and isinstance(node, list):
            item = node[step] if 0 <= step < len(node) else None
            label = item.get("id") if isinstance(item, dict) else None
            label = label if label is not None else (item if isinstance(item, str) else step)
            if parts:
                parts[-1] += f"[{label}]"
            else:
                parts.append(f"[{label}]")
            node = item
            continue
        if isinstance(step, str) and "[" in step:
            # pydantic's tags for unions / function validators: skip
            continue
        parts.append(str(step))
        node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: not valid YAML{where}"]) from exc


def config_from_data(data: Any, environ: dict[str, str] | None = None) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the configuration must be a mapping of sections"])
    data = substitute_env(data, environ)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, data)) from exc


def load_config(path: str | Path | None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate ``path``; ``None`` gives the embedded defaults."""
    if path is None:
        return Config()
    return config_from_data(load_yaml(Path(path)), environ)
