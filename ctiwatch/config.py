"""Configuration: strict YAML validated by pydantic, errors in the user's words.

Unknown keys are errors; every error names the entity and the field, e.g.
``topology.customers[acme].locations[acme-ams].users: must not be empty``.
Secrets come from the environment: ``${TWILIO_AUTH_TOKEN}`` anywhere in a string value is
replaced by that variable (``${NAME:-default}`` gives a default).
"""

from __future__ import annotations

import math
import os
import re
import ssl
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from classifier.thresholds import Thresholds
from ctiwatch.errors import (
    ID_PATTERN,
    NODE_PATTERN,
    PHONE_PATTERN,
    describe_errors,
    item_label,
    show_value,
)
from probes.conditions import Condition, ConditionError, parse_condition, placeholders_in
from probes.template import DEFAULT_SPECS, check_body, check_headers, check_method, check_url
from sla.targets import SlaPolicy, default_targets

# The defaults of classification.md and sla.md are stated once, in the pure packages that apply
# them; the configuration only exposes them (and lets a user change them).
_THRESHOLDS = Thresholds()
_POLICY = SlaPolicy.default()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ID = ID_PATTERN
_PHONE = PHONE_PATTERN
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


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
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or math.isnan(seconds):
        raise ValueError(f"must be a duration such as '60s', '5m', '4h' or '2d', not {value!r}")
    return timedelta(seconds=seconds)  # OverflowError past timedelta's 999,999,999 days


def _config_duration(value: Any) -> timedelta:
    """A duration of the configuration: from zero to ten years."""
    try:
        duration = parse_duration(value)
    except OverflowError:
        duration = None
    if duration is None or duration > LONGEST_DURATION:
        raise ValueError(f"must be at most 3650d (ten years), not {show_value(value)}")
    if duration < timedelta(0):
        raise ValueError(f"must not be negative, not {show_value(value)}")
    return duration


def _longer_than_zero(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _http_url(value: Any) -> Any:
    """A URL ctiwatch calls or gives out: http or https with a host, nothing else."""
    if not isinstance(value, str):
        return value  # pydantic says it must be text
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or not ch.isprintable() for ch in value)
    ):
        raise ValueError(
            "must be an http:// or https:// URL such as 'https://host:8080', "
            f"not {show_value(value)}"
        )
    return value


def _topic_part(what: str, *, slashes: bool) -> Any:
    """A part of an MQTT topic ctiwatch subscribes to: not empty, no wildcard (``#``, ``+``),
    no NUL, not a ``$`` system topic, no empty level at either end; ``/`` only if ``slashes``."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        bad = set(value) & ({"#", "+", "\0"} if slashes else {"#", "+", "\0", "/"})
        if not value or bad or value.startswith(("/", "$")) or value.endswith("/"):
            raise ValueError(f"must be {what}, not {show_value(value)}")
        return value

    return check


def _phone(value: Any) -> Any:
    """Accept the SLA's spelling ``+31 (0) 35 699 02 30`` and store E.164 ``+31356990230``."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads an unquoted +31612345678 as the number 31612345678: the '+' is gone.
        raise ValueError(
            'must be a phone number in quotes, such as "+31612345678" '
            "(unquoted, YAML reads it as a number)"
        )
    if isinstance(value, str):
        cleaned = value.replace("(0)", "").replace(" ", "").replace("-", "")
        return cleaned
    return value


def _local_time(value: Any) -> Any:
    """``"08:30"`` (or ``"08:30:00"``) as a local wall-clock time without offset."""
    if isinstance(value, time):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 08:30 as the base-60 number 510.
        raise ValueError(
            'must be a time in quotes, such as "08:30" (unquoted, YAML reads 08:30 as a number)'
        )
    if isinstance(value, str):
        match = _TIME.match(value)
        if match:
            hour, minute, second = (int(part or 0) for part in match.groups())
            if hour < 24 and minute < 60 and second < 60:
                return time(hour, minute, second)
    raise ValueError(f'must be a local time such as "08:30", not {value!r}')


LONGEST_DURATION = timedelta(days=3650)
Duration = Annotated[timedelta, BeforeValidator(_config_duration)]
PositiveDuration = Annotated[
    timedelta, BeforeValidator(_config_duration), AfterValidator(_longer_than_zero)
]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
LocalTime = Annotated[time, BeforeValidator(_local_time)]
PhoneNumber = Annotated[str, BeforeValidator(_phone), Field(pattern=_PHONE)]
Identifier = Annotated[str, Field(pattern=_ID, max_length=64)]
# A worker's node name: letters, digits, ``.``, ``_``, ``-`` (no ``/``: it is part of
# ``node/pid/life``).
NodeName = Annotated[str, Field(pattern=NODE_PATTERN, max_length=64)]


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
    base_url: HttpUrl | None = None

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
    # This customer's own HTTP checks of other endpoints (besides ``probes.checks``).
    checks: list[CheckConfig] = Field(default_factory=list)
    # The customer's status page is also at /status/c/<id>, for anyone (its link works too).
    public: bool = False

    @model_validator(mode="after")
    def _unique_locations(self) -> CustomerConfig:
        _require_unique("locations", [loc.id for loc in self.locations])
        _require_unique("checks", [check.id for check in self.checks])
        return self


class TopologyConfig(Strict):
    customers: list[CustomerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_customers(self) -> TopologyConfig:
        _require_unique("customers", [c.id for c in self.customers])
        # Location ids are unique across customers: alerts and the console name them alone.
        locations = [loc.id for c in self.customers for loc in c.locations]
        _require_unique("customers", locations, noun="location id")
        return self

    def customer(self, customer_id: str) -> CustomerConfig | None:
        return next((c for c in self.customers if c.id == customer_id), None)


def _require_unique(what: str, ids: list[str], noun: str = "id") -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise ValueError(f"{what}: {noun} {ident!r} is used twice")
        seen.add(ident)


# --- probes and classification ------------------------------------------------------------


def _condition(value: Any) -> Any:
    """A Gatus-style condition (``probes.conditions``), parsed once, here at load."""
    if isinstance(value, Condition):
        return value
    if not isinstance(value, str):
        raise ValueError(
            'must be a condition in quotes, such as "[STATUS] == 200" (unquoted, YAML reads '
            f"[...] as a list), not {show_value(value)}"
        )
    try:
        return parse_condition(value)
    except ConditionError as exc:
        raise ValueError(str(exc)) from None


def _checked(check: Any) -> Any:
    def run(value: Any) -> Any:
        return check(value) if isinstance(value, str) else value

    return run


ConditionText = Annotated[
    Condition, BeforeValidator(_condition), PlainSerializer(lambda c: c.text, return_type=str)
]


class TemplateConfig(Strict):
    """One service's check: a request template and the conditions on its answer
    (``probes.template``). Keys left out keep the service's default."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    method: Annotated[str, AfterValidator(check_method)] = "GET"
    url: Annotated[str, AfterValidator(check_url)] = ""
    headers: Annotated[dict[str, str], AfterValidator(check_headers)] = Field(default_factory=dict)
    body: Annotated[Any, AfterValidator(check_body)] = None
    conditions: list[ConditionText] = Field(min_length=1)
    recognised: ConditionText | None = None


_CHECK_PLACEHOLDERS = frozenset({"customer"})


class CheckConfig(Strict):
    """A generic HTTP check of another endpoint of the platform (``probes.checks`` for every
    customer, ``checks`` of a customer for that one): a request, conditions on its answer
    (``probes.conditions``) and a warning threshold for the TLS certificate's expiry. Its
    failure, ``classification.failed_rounds`` rounds in a row, is a condition of the
    customer's incident at ``priority`` (never the P1 of a location without a service)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: Identifier
    method: Annotated[str, AfterValidator(check_method)] = "GET"
    url: Annotated[str, AfterValidator(check_url)]
    headers: Annotated[dict[str, str], AfterValidator(check_headers)] = Field(default_factory=dict)
    body: Annotated[Any, AfterValidator(check_body)] = None
    conditions: list[ConditionText] = Field(
        default_factory=lambda: [parse_condition("[STATUS] == 2xx")], min_length=1
    )
    # Fail the check when the server's certificate expires within this many days (the
    # evidence shows the expiry date); unset: the certificate is not judged.
    certificate_warning_days: int | None = Field(default=None, ge=1, le=3650)
    priority: int = Field(default=3, ge=2, le=4)

    @model_validator(mode="after")
    def _customer_placeholders_only(self) -> CheckConfig:
        # A check belongs to a customer: it has no location, user, number or contact.
        texts = [("url", self.url)]
        texts += [(f"headers.{name}", value) for name, value in self.headers.items()]
        texts += [("body", text) for text in _texts_of(self.body)]
        texts += [(f"conditions[{c.text}]", c.text) for c in self.conditions]
        for where, text in texts:
            for name in placeholders_in(text):
                if name not in _CHECK_PLACEHOLDERS:
                    raise ValueError(
                        f"{where}: a check belongs to a customer: only {{customer}} stands for "
                        f"a value here, not {{{name}}}"
                    )
        return self


def _texts_of(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [text for item in node for text in _texts_of(item)]
    if isinstance(node, dict):
        return [text for item in node.values() for text in _texts_of(item)]
    return []


def default_template_config(kind: str) -> TemplateConfig:
    """``kind``'s default template as configuration."""
    return TemplateConfig.model_validate(dict(DEFAULT_SPECS[kind]))


class TemplatesConfig(Strict):
    """The check of each service; the defaults are what the built-in simulator serves."""

    click2dial: TemplateConfig = Field(
        default_factory=lambda: default_template_config("click2dial")
    )
    crm: TemplateConfig = Field(default_factory=lambda: default_template_config("crm"))

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        # A service's keys replace those of its default; the others stay.
        if not isinstance(value, dict):
            return value
        merged = dict(value)
        for kind, spec in DEFAULT_SPECS.items():
            given = value.get(kind)
            if isinstance(given, dict):
                merged[kind] = {**spec, **given}
        return merged


class ProbesConfig(Strict):
    interval: Duration = timedelta(seconds=60)
    timeout: PositiveDuration = timedelta(seconds=10)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: Duration = timedelta(seconds=1)
    concurrency: int = Field(default=100, ge=1, le=100_000)
    base_url: HttpUrl = "http://127.0.0.1:8081"
    api_token: str = "ctiwatch-demo-token"
    raw_retention: PositiveDuration = timedelta(days=14)
    rollup_retention: PositiveDuration = timedelta(days=400)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    # HTTP checks of other endpoints, run for every customer (``{customer}`` in them).
    checks: list[CheckConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_checks(self) -> ProbesConfig:
        _require_unique("checks", [check.id for check in self.checks])
        return self

    @field_validator("interval")
    @classmethod
    def _sensible_interval(cls, value: timedelta) -> timedelta:
        # A round per second at most (each is a call per user), and one a day at least.
        if not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("must be between 1s and 1d")
        return value


class ClassificationConfig(Strict):
    failed_rounds: int = Field(default=_THRESHOLDS.failed_rounds, ge=1)
    degraded_rate: float = Field(default=_THRESHOLDS.degraded_rate, gt=0, le=1)
    degraded_window: PositiveDuration = _THRESHOLDS.degraded_window
    degraded_min_calls: int = Field(default=_THRESHOLDS.degraded_min_calls, ge=1)
    frequent_misses: int = Field(default=_THRESHOLDS.frequent_misses, ge=1)
    some_misses: int = Field(default=_THRESHOLDS.some_misses, ge=1)
    misses_window: PositiveDuration = _THRESHOLDS.misses_window
    recovery_rounds: int = Field(default=_THRESHOLDS.recovery_rounds, ge=1)
    miss_quiet_period: Duration = _THRESHOLDS.miss_quiet_period

    @model_validator(mode="after")
    def _ordered(self) -> ClassificationConfig:
        if self.some_misses >= self.frequent_misses:
            raise ValueError(
                f"some_misses: must be lower than frequent_misses ({self.frequent_misses})"
            )
        return self


# --- SLA -------------------------------------------------------------------------------------


class TargetConfig(Strict):
    """Targets of one priority: support-time durations, or ``null`` for "not set"."""

    response: Duration | None
    update: Duration | None
    repair_working_days: int | None = Field(default=None, ge=1)


def _default_targets() -> dict[int, TargetConfig]:
    return {
        int(priority): TargetConfig(
            response=target.response,
            update=target.update,
            repair_working_days=target.repair_working_days,
        )
        for priority, target in default_targets().items()
    }


class SlaConfig(Strict):
    timezone: str = "Europe/Amsterdam"
    support_start: LocalTime = time(8, 30)
    support_end: LocalTime = time(17, 0)
    holidays_country: str = "NL"
    closed_days: list[date] = Field(default_factory=list)
    removed_holidays: list[str] = Field(default_factory=list)
    targets: dict[int, TargetConfig] = Field(default_factory=_default_targets)
    warning_at: float = Field(default=_POLICY.warning_at, gt=0, lt=1)
    performance_target: float = Field(default=_POLICY.performance_target, gt=0, le=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("targets", mode="before")
    @classmethod
    def _priority_names(cls, value: Any) -> Any:
        # The SLA says "P1" as often as "1": accept both spellings as keys.
        if isinstance(value, dict):
            return {
                key[1:] if isinstance(key, str) and key[:1] in ("P", "p") else key: target
                for key, target in value.items()
            }
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
            raise ValueError(
                f"support_end: must be after support_start ({self.support_start:%H:%M})"
            )
        return self


# --- alerting --------------------------------------------------------------------------------


class TwilioConfig(Strict):
    account_sid: str = "ACfake00000000000000000000000000000"
    auth_token: str = "fake-auth-token"
    from_number: PhoneNumber = "+3197010000000"
    # Where the twilio client sends its REST calls. The default is the project's fake Twilio.
    base_url: HttpUrl = "http://127.0.0.1:8025"
    # Public URL Twilio calls back (webhooks); the fake posts here.
    webhook_base_url: HttpUrl = "http://127.0.0.1:8080"


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


class PagingConfig(Strict):
    """Who is woken, and how often (sla.md "Paging"; ``alerting.paging``)."""

    # On-call SMS about incidents of these priorities raised outside support hours are held
    # and sent at the next opening as one digest per person; [] pages every priority at once.
    held_priorities: list[Annotated[int, Field(ge=1, le=4)]] = Field(default_factory=lambda: [3, 4])
    # ctiwatch's own problems (a probe agent offline or back): texted inside support hours only
    # (held for the digest) unless ``any_hour``.
    agent_alerts: Literal["support_hours", "any_hour"] = "support_hours"


class AlertingConfig(Strict):
    support_email: str = "support@cloudcti.nl"
    support_line: PhoneNumber = "+31356990230"
    contingency_line: PhoneNumber = "+31356990244"
    contingency_min_p1_customers: int = Field(default=2, ge=1)
    oncall: list[PhoneNumber] = Field(default_factory=list)
    escalation: list[EscalationStepConfig] = Field(default_factory=list)
    rotation: RotationConfig | None = None
    paging: PagingConfig = PagingConfig()
    twilio: TwilioConfig = TwilioConfig()
    smtp: SmtpConfig = SmtpConfig()
    fakes: bool = True  # start the project's fake Twilio and SMTP servers in-process
    # The name this worker claims outbox rows under (``node/pid/life``): what stays the same
    # when the process is restarted, so a restart frees what its earlier life left claimed.
    # None: the host name. Give each worker its own when several share a host name (containers).
    node: NodeName | None = None
    # Sent/failed messages; pending ones stay. At least a day: the stored idempotency keys are
    # what keeps a trigger routed again after a restart from paging twice.
    outbox_retention: Duration = Field(default=timedelta(days=90), ge=timedelta(days=1))


# --- shell -----------------------------------------------------------------------------------


class StorageConfig(Strict):
    url: str = "sqlite+aiosqlite:///var/ctiwatch.db"
    # While the database is unreachable: results kept in memory (the oldest dropped beyond it,
    # counted), and how often storing them and the steps that could not commit is tried again.
    backlog: int = Field(default=100_000, ge=1, le=10_000_000)
    retry_interval: PositiveDuration = Field(default=timedelta(seconds=5), le=timedelta(minutes=10))


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


OptionalPath = Annotated[str | None, BeforeValidator(_empty_is_none)]


def _unreadable(path: str) -> str:
    """Why ``path`` is not a file this process can read; empty when it is one. A folder, a FIFO
    or a device is refused before it is opened (opening a FIFO would wait for a writer)."""
    try:
        if os.path.isdir(path):
            return "Is a directory"
        if os.path.exists(path) and not os.path.isfile(path):
            return "not a regular file"
        with open(path, "rb") as file:
            file.read(1)
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return ""


def _shown_path(path: str | None) -> str:
    """A file's path in an error: whole (a path cut short names no file), within reason."""
    return repr(path if path is None or len(path) <= 300 else path[:297] + "...")


class MqttTlsConfig(Strict):
    """TLS to the broker. The broker's certificate is verified against ``ca_file`` (or, without
    it, the system's trusted CAs) and its name against ``mqtt.host``; ``cert_file``/``key_file``
    present a client certificate to a broker that asks for one."""

    enabled: bool = False
    # An empty text is "not set", so that ``${MQTT_CA_FILE:-}`` may leave it to the system.
    ca_file: OptionalPath = None
    cert_file: OptionalPath = None
    key_file: OptionalPath = None
    # Skip the check that the broker's certificate names ``mqtt.host`` (it must still be signed
    # by the CA). For a test broker reached by an address its certificate does not name.
    insecure: bool = False

    @model_validator(mode="after")
    def _usable(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = (
                ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            )
            raise ValueError(
                f"{missing}: is required with {given} (a client certificate and its key)"
            )
        if self.enabled:
            self.context()  # a file that is missing, unreadable or not PEM is an error now
        return self

    def context(self) -> ssl.SSLContext:
        """The client's TLS context. Raises ``ValueError("<field>: <reason>")`` for a file that
        cannot be used."""
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None:
                why = _unreadable(path)
                if why:
                    raise ValueError(f"{name}: cannot read {_shown_path(path)} ({why})")
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        except ssl.SSLError as exc:
            raise ValueError(
                f"ca_file: {_shown_path(self.ca_file)} holds no usable PEM certificate "
                f"({exc.reason or exc})"
            ) from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except ssl.SSLError as exc:
                raise ValueError(
                    f"cert_file: {_shown_path(self.cert_file)} with key_file "
                    f"{_shown_path(self.key_file)} is not a PEM certificate and its key "
                    f"({exc.reason or exc})"
                ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.insecure:
            context.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
        return context


class MqttConfig(Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    # The login at the broker. The password comes from the environment (``${MQTT_PASSWORD}``):
    # a configuration file that spells it out is refused. An agent logs in as its own name.
    username: str | None = None
    password: str | None = None
    tls: MqttTlsConfig = MqttTlsConfig()
    topic_prefix: Annotated[
        str,
        BeforeValidator(
            _topic_part(
                "a topic prefix without '#', '+' or NUL, such as 'ctiwatch/v1'", slashes=True
            )
        ),
    ] = "ctiwatch/v1"
    shared_group: Annotated[
        str,
        BeforeValidator(
            _topic_part(
                "a group name without '/', '#', '+' or NUL, such as 'ctiwatch'", slashes=False
            )
        ),
    ] = "ctiwatch"
    # How far from now a time in a payload may be: older results and results from the future
    # (an agent's broken clock, a forged message) are rejected, one by one.
    max_age: PositiveDuration = timedelta(hours=24)
    max_ahead: PositiveDuration = timedelta(minutes=5)


class AgentConfig(Strict):
    """A remote probe agent (``ctiwatch agent``): what it probes and how it publishes."""

    name: Identifier | None = None
    locations: list[Identifier] = Field(default_factory=list)  # empty: every location
    buffer_path: str = "ctiwatch-agent.db"
    buffer_max_rows: int | None = Field(default=None, ge=1)  # None: the disk is the limit
    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_interval: PositiveDuration = timedelta(seconds=1)


# The documented demo password: accepted only while the demo fakes are on.
DEMO_PASSWORD = "ctiwatch-demo"


class DemoAdminConfig(Strict):
    """An admin created at start when missing (the demo's first login)."""

    username: Identifier = "admin"
    password: str = Field(min_length=10, max_length=1024)
    phone: PhoneNumber | None = None  # an on-call number: its SMS replies act as this admin


class WebConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Host headers the console answers to (``name`` any port, ``name:port`` that port); others
    # get 421, which closes DNS rebinding. Default: localhost, 127.0.0.1 and [::1] on ``port``.
    hosts: list[Annotated[str, Field(min_length=1, max_length=260)]] | None = None
    https: bool = False  # served over https (behind a proxy): cookies get the Secure flag
    session_lifetime: PositiveDuration = timedelta(hours=12)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_window: PositiveDuration = timedelta(minutes=15)
    demo_admin: DemoAdminConfig | None = None
    # Where people reach ctiwatch: links in e-mails start with it (on-call's to the incident,
    # ``/incidents/N``; a customer's to its own status page). ``null``: e-mails carry no link.
    public_url: HttpUrl | None = "http://127.0.0.1:8080"

    @field_validator("hosts")
    @classmethod
    def _no_blank_hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must name at least one host, or be left out for the default")
        for host in value or ():
            if any(ch.isspace() or ch in "/@" for ch in host):
                raise ValueError(f"{host!r} is not a host or host:port")
        return value


class SimulatorConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)


class MaintenanceConfig(Strict):
    """Maintenance as the SLA asks (sla.md, Maintenance): a window is announced at least
    ``min_notice`` before it starts (emergencies are exempt); the covered customers' contacts
    get a reminder ``reminder_before`` its start."""

    min_notice: Duration = timedelta(hours=48)
    reminder_before: PositiveDuration = timedelta(hours=24)


class WorkersConfig(Strict):
    """Several ``ctiwatch run`` processes on one PostgreSQL database (docs/architecture.md,
    "Scaling past one machine"): one of them is the active monitor, holding a lease it renews
    every ``renew_every``; when it stops renewing, another takes over once ``lease`` has
    passed. A worker holds the lease under its outbox identity (``alerting.node``/pid/life), so
    a worker restarted on the same node leads again at once. On SQLite there is one process,
    and a second one is refused."""

    lease: PositiveDuration = Field(
        default=timedelta(seconds=15), ge=timedelta(seconds=2), le=timedelta(minutes=5)
    )
    renew_every: PositiveDuration = Field(default=timedelta(seconds=5), le=timedelta(minutes=2))
    # How often the active monitor reads the results the other workers stored, and how often
    # the others read the incidents back for their pages.
    poll: PositiveDuration = Field(default=timedelta(seconds=1), le=timedelta(minutes=1))
    # How long a person's action taken in by a worker that does not lead waits for the active
    # monitor to apply it (a takeover takes lease + renew_every) before it answers 503.
    handover_wait: PositiveDuration = Field(
        default=timedelta(seconds=10), ge=timedelta(seconds=1), le=timedelta(minutes=1)
    )

    @model_validator(mode="after")
    def _renew_well_within_the_lease(self) -> WorkersConfig:
        if self.renew_every * 2 > self.lease:
            raise ValueError(
                "workers.renew_every must be at most half of workers.lease "
                f"({self.lease.total_seconds():g}s), so one missed renewal does not lose it"
            )
        return self


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
    agent: AgentConfig | None = None
    web: WebConfig = WebConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    maintenance: MaintenanceConfig = MaintenanceConfig()
    workers: WorkersConfig = WorkersConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _checks_named_once(self) -> Config:
        common = {check.id for check in self.probes.checks}
        for customer in self.topology.customers:
            for check in customer.checks:
                if check.id in common:
                    raise ValueError(
                        f"topology: customer {customer.id!r}: check {check.id!r} is also in "
                        "probes.checks (every customer has those): give it another id"
                    )
        return self

    @model_validator(mode="after")
    def _demo_password_only_with_fakes(self) -> Config:
        admin = self.web.demo_admin
        if admin is not None and admin.password == DEMO_PASSWORD and not self.alerting.fakes:
            raise ValueError(
                "web: demo_admin.password: the documented demo password is only allowed while "
                "the demo fakes are on (alerting.fakes); set CTIWATCH_DEMO_PASSWORD"
            )
        return self


# --- loading ---------------------------------------------------------------------------------


def substitute_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string; a missing one is an error.

    The error names where the variable is used:
    ``alerting.twilio.auth_token: environment variable TWILIO_AUTH_TOKEN is not set``.
    """
    env = dict(os.environ) if environ is None else environ
    missing: list[str] = []

    def one(text: str, path: str) -> str:
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            line = f"environment variable {name} is not set"
            line = f"{path}: {line}" if path else line
            if line not in missing:
                missing.append(line)
            return ""

        return _ENV.sub(repl, text)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, str):
            return one(node, path)
        if isinstance(node, list):
            return [walk(item, f"{path}[{item_label(item, i)}]") for i, item in enumerate(node)]
        if isinstance(node, dict):
            return {
                key: walk(item, f"{path}.{key}" if path else str(key)) for key, item in node.items()
            }
        return node

    result = walk(value, "")
    if missing:
        raise ConfigError(missing)
    return result


# Bounds on what a YAML document may make the loader build. A configuration is a few levels
# deep (topology.customers[].locations[].users[].id is 8); aliases are for sharing a block or
# two, not for multiplying it (the "billion laughs": 9 aliases of 9 aliases of ... expand to
# hundreds of millions of values from a few hundred bytes).
MAX_DEPTH = 64
MAX_ALIAS_EXPANSION = 100_000


class YamlRefused(yaml.MarkedYAMLError):
    """A document the loader refuses to build: nested too deep, aliases expanding too far."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)


class _Loader(yaml.SafeLoader):
    """The safe loader, bounded: nesting depth and alias expansion are limited, and a key given
    twice or an impossible date (2026-13-01) is an error at its place."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0
        # Values each composed node stands for once its aliases are expanded (itself included).
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise YamlRefused(
                    f"alias *{event.anchor} refers to a value that holds it", event.start_mark
                )
            self._expanded += size
            if self._expanded > MAX_ALIAS_EXPANSION:
                raise YamlRefused(
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} values", event.start_mark
                )
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            children = _children(node)
            self._sizes[id(node)] = 1 + sum([self._sizes.get(id(child), 1) for child in children])
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # keys merged in with "<<" may be overridden: that is their use
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} is given twice (first at line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a date ({exc})", node.start_mark
            ) from exc


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text"]) from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str) -> Any:
    """``text`` as YAML (safe and bounded); ``name`` is what errors call it."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if problem else ""
        verdict = "refused" if isinstance(exc, YamlRefused) else "not valid YAML"
        raise ConfigError([f"{name}: {verdict}{where}{why}"]) from exc


def config_from_data(data: Any, environ: dict[str, str] | None = None) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                "the configuration must be a mapping of sections "
                f"(topology:, probes:, sla:, alerting:, ...), not {_kind_of(data)}"
            ]
        )
    data = substitute_env(data, environ)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, data, Config)) from exc


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single text"
    return f"a single value ({show_value(value)})"


def load_config(path: str | Path | None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate ``path``; ``None`` gives the embedded defaults."""
    if path is None:
        return Config()
    data = load_yaml(Path(path))
    _refuse_written_secrets(data)
    return config_from_data(data, environ)


# Secrets a configuration file must take from the environment, never spell out.
_FROM_ENVIRONMENT = (("mqtt", "password", "MQTT_PASSWORD"),)


def _refuse_written_secrets(data: Any) -> None:
    """A file (which ends up in version control, backups, tickets) holding a broker password in
    clear text is refused; ``${NAME}`` takes it from the environment."""
    errors: list[str] = []
    for section, key, example in _FROM_ENVIRONMENT:
        part = data.get(section) if isinstance(data, dict) else None
        value = part.get(key) if isinstance(part, dict) else None
        if isinstance(value, str) and value and not _ENV.search(value):
            errors.append(
                f"{section}.{key}: must come from the environment, such as '${{{example}}}' "
                "(a password written in the configuration file is refused)"
            )
    if errors:
        raise ConfigError(errors)
