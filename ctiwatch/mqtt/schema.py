"""Versioned JSON payloads on the MQTT topics, and their strict decoding.

Every payload names its schema (``"schema": "ctiwatch.results/1"``); a consumer reads only the
versions it knows and says so otherwise. Decoding never raises anything but
:class:`PayloadError`, whose message names the field and shows the value it got, e.g.
``results[3].service: must be click2dial or crm, not "sms"``.

* results batch (agent → ``<prefix>/results/<agent>``)::

    {"schema": "ctiwatch.results/1", "agent": "ams-1", "sent_at": "2025-01-06T09:00:01+00:00",
     "results": [{"result_id": "…", "service": "crm", "customer": "acme", "location": "acme-ams",
                  "user": "alice", "at": "2025-01-06T09:00:00+00:00", "ok": true,
                  "recognised": true, "latency_ms": 41.5, "status": 200,
                  "evidence": "GET … -> 200", "attempts": 1}]}

* call event (CTI platform → ``<prefix>/calls/<customer>``)::

    {"schema": "ctiwatch.call/1", "call_id": "c-981", "caller": "+31201234567",
     "location": "acme-ams", "user": "alice", "recognised": false,
     "at": "2025-01-06T10:00:00+01:00", "direction": "inbound"}

* agent status (agent → ``<prefix>/agents/<agent>/status``, retained)::

    {"schema": "ctiwatch.agent-status/1", "agent": "ams-1", "status": "offline",
     "at": "2025-01-06T09:00:00+00:00", "reason": "connection lost"}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from classifier.observation import CALLS, ProbeResult, Service, Source, TargetKey
from ctiwatch.config import TopologyConfig
from ctiwatch.errors import Problem, problems

RESULTS_SCHEMA = "ctiwatch.results/1"
CALL_SCHEMA = "ctiwatch.call/1"
STATUS_SCHEMA = "ctiwatch.agent-status/1"

# A batch bigger than this is a broken agent, not a busy one (and would be a 5 MB message).
MAX_RESULTS_PER_MESSAGE = 10_000

_M = TypeVar("_M", bound=BaseModel)


class PayloadError(Exception):
    """A message that cannot be used.

    ``reason`` is a short category for counting (``invalid_payload``, ``unknown_user``, …);
    the message says which field is wrong and why.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- the payload models ------------------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=64)]
ResultId = Annotated[str, Field(min_length=1, max_length=128)]
AgentName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ResultPayload(_Strict):
    result_id: ResultId
    service: Literal["click2dial", "crm"]
    customer: Name
    location: Name
    user: Name
    at: AwareDatetime
    ok: bool
    recognised: bool | None
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    status: int | None
    evidence: str = Field(default="", max_length=4000)
    attempts: int = Field(default=1, ge=1, le=100)


class ResultsBatchPayload(_Strict):
    schema_: Literal["ctiwatch.results/1"] = Field(alias="schema")
    agent: AgentName
    sent_at: AwareDatetime
    results: list[ResultPayload] = Field(min_length=1, max_length=MAX_RESULTS_PER_MESSAGE)


class CallPayload(_Strict):
    schema_: Literal["ctiwatch.call/1"] = Field(alias="schema")
    call_id: ResultId
    caller: str = Field(max_length=64)
    location: Name
    user: Name
    recognised: bool
    at: AwareDatetime
    direction: Literal["inbound", "outbound"]


class StatusPayload(_Strict):
    schema_: Literal["ctiwatch.agent-status/1"] = Field(alias="schema")
    agent: AgentName
    status: Literal["online", "offline"]
    at: AwareDatetime
    reason: str = Field(default="", max_length=200)


# --- decoded values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A results message: what can be used, and what was rejected (result by result).

    A message that is not a valid batch is rejected whole (:class:`PayloadError`); a valid
    batch that names a customer, location or user the topology does not know loses only those
    results, so one agent running an older topology still reports the rest.
    """

    agent: str
    sent_at: datetime
    results: list[ProbeResult]
    rejected: list[PayloadError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AgentStatus:
    agent: str
    online: bool
    at: datetime
    reason: str = ""


class TopologyIndex:
    """Which (customer, location, user) exist, for checking what remote senders name."""

    def __init__(self, topology: TopologyConfig) -> None:
        self._locations: dict[str, dict[str, frozenset[str]]] = {
            customer.id: {loc.id: frozenset(u.id for u in loc.users) for loc in customer.locations}
            for customer in topology.customers
        }
        # Every valid target, built once: the hot path is one dict lookup per result.
        self._targets: dict[tuple[str, str, str, str], TargetKey] = {
            (service.value, customer, location, user): TargetKey(service, customer, location, user)
            for customer, locations in self._locations.items()
            for location, users in locations.items()
            for user in users
            for service in Service
        }

    def target(
        self, service: str, customer: str, location: str, user: str, path: str = ""
    ) -> TargetKey:
        """The target named, or :class:`PayloadError` naming what does not exist."""
        key = self._targets.get((service, customer, location, user))
        if key is None:
            self.check(customer, location, user, path)
            raise PayloadError("invalid_payload", f"{path}.service: unknown service {service!r}")
        return key

    def check(self, customer: str, location: str, user: str, path: str = "") -> None:
        """Raise :class:`PayloadError` naming the first of the three that does not exist."""
        dot = f"{path}." if path else ""
        locations = self._locations.get(customer)
        if locations is None:
            raise PayloadError(
                "unknown_customer", f"{dot}customer: unknown customer {_show(customer)}"
            )
        users = locations.get(location)
        if users is None:
            raise PayloadError(
                "unknown_location",
                f"{dot}location: customer {_show(customer)} has no location {_show(location)}",
            )
        if user not in users:
            raise PayloadError(
                "unknown_user",
                f"{dot}user: location {_show(location)} of customer {_show(customer)} "
                f"has no user {_show(user)}",
            )


# --- decoding ----------------------------------------------------------------------------------


def decode_results(
    payload: bytes | str, topology: TopologyIndex, *, topic_agent: str | None = None
) -> DecodedBatch:
    """A results batch from an agent; ``topic_agent`` is the agent named by the topic."""
    batch = _validate(ResultsBatchPayload, payload)
    if topic_agent is not None and batch.agent != topic_agent:
        raise PayloadError(
            "agent_mismatch",
            f"agent: {_show(batch.agent)} does not match the topic's agent {_show(topic_agent)}",
        )
    results: list[ProbeResult] = []
    rejected: list[PayloadError] = []
    target = topology.target
    for index, item in enumerate(batch.results):
        try:
            key = target(item.service, item.customer, item.location, item.user, f"results[{index}]")
        except PayloadError as exc:
            rejected.append(exc)
            continue
        results.append(
            ProbeResult(
                item.result_id,
                key,
                item.at.astimezone(UTC),
                item.ok,
                item.recognised,
                item.latency_ms,
                item.status,
                item.evidence,
                Source.AGENT,
                item.attempts,
                batch.agent,
            )
        )
    return DecodedBatch(batch.agent, batch.sent_at.astimezone(UTC), results, rejected)


def call_result_id(customer: str, call_id: str) -> str:
    # Call ids are the platform's, unique per customer at best: namespace them so they can
    # never collide with another customer's call or with a probe's result id.
    return f"call:{customer}:{call_id}"


def decode_call(payload: bytes | str, customer: str, topology: TopologyIndex) -> ProbeResult:
    """A real call event for ``customer`` (named by the topic): one CRM recognition fact."""
    call = _validate(CallPayload, payload)
    topology.check(customer, call.location, call.user)
    outcome = "recognised" if call.recognised else "not recognised"
    return ProbeResult(
        result_id=call_result_id(customer, call.call_id),
        target=TargetKey(Service.CRM, customer, call.location, call.user),
        at=call.at.astimezone(UTC),
        ok=True,
        recognised=call.recognised,
        latency_ms=0.0,
        status=None,
        evidence=f"{call.direction} call {call.call_id} with {call.caller}: {outcome}",
        source=Source.CALL,
        source_id=CALLS,
    )


def decode_status(payload: bytes | str, *, topic_agent: str | None = None) -> AgentStatus:
    status = _validate(StatusPayload, payload)
    if topic_agent is not None and status.agent != topic_agent:
        raise PayloadError(
            "agent_mismatch",
            f"agent: {_show(status.agent)} does not match the topic's agent {_show(topic_agent)}",
        )
    return AgentStatus(
        status.agent, status.status == "online", status.at.astimezone(UTC), status.reason
    )


def _validate(model: type[_M], payload: bytes | str) -> _M:
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        found = problems(exc, words=_WORDS, show=_show)
        reason = "invalid_payload"
        if any(problem.kind == "json_invalid" for problem in found):
            reason = "invalid_json"
        elif any(problem.path == "schema" for problem in found):
            reason = "unsupported_schema"
        lines = [_describe(problem) for problem in found]
        if len(lines) > 5:
            lines = [*lines[:5], f"and {len(lines) - 5} more errors"]
        raise PayloadError(reason, "; ".join(lines)) from None


# --- encoding ----------------------------------------------------------------------------------


def encode_result(result: ProbeResult) -> bytes:
    """One result as the JSON object a batch carries (the agent's buffer keeps these)."""
    return _dumps(
        {
            "result_id": result.result_id,
            "service": result.target.service.value,
            "customer": result.target.customer,
            "location": result.target.location,
            "user": result.target.user,
            "at": _iso(result.at),
            "ok": result.ok,
            "recognised": result.recognised,
            "latency_ms": result.latency_ms,
            "status": result.status,
            "evidence": result.evidence,
            "attempts": result.attempts,
        }
    )


def encode_batch(agent: str, sent_at: datetime, encoded_results: Sequence[bytes]) -> bytes:
    """A results message from results already encoded with :func:`encode_result`."""
    head = _dumps({"schema": RESULTS_SCHEMA, "agent": agent, "sent_at": _iso(sent_at)})
    return head[:-1] + b',"results":[' + b",".join(encoded_results) + b"]}"


def encode_results(agent: str, sent_at: datetime, results: Iterable[ProbeResult]) -> bytes:
    return encode_batch(agent, sent_at, [encode_result(r) for r in results])


def encode_status(agent: str, online: bool, at: datetime, reason: str = "") -> bytes:
    return _dumps(
        {
            "schema": STATUS_SCHEMA,
            "agent": agent,
            "status": "online" if online else "offline",
            "at": _iso(at),
            "reason": reason,
        }
    )


def encode_call(
    *,
    call_id: str,
    caller: str,
    location: str,
    user: str,
    recognised: bool,
    at: datetime,
    direction: Literal["inbound", "outbound"] = "inbound",
) -> bytes:
    """A call event as the CTI platform publishes it (for the simulator and tests)."""
    return _dumps(
        {
            "schema": CALL_SCHEMA,
            "call_id": call_id,
            "caller": caller,
            "location": location,
            "user": user,
            "recognised": recognised,
            "at": _iso(at),
            "direction": direction,
        }
    )


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("times on the wire carry their offset: got a naive datetime")
    return when.isoformat()


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# --- error messages in the sender's words ------------------------------------------------------

_TIME_EXAMPLE = "e.g. 2025-01-06T09:00:00+01:00"


_TIME_WORDS = f"must be an ISO 8601 time with its UTC offset ({_TIME_EXAMPLE}){{got}}"
_WORDS = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "literal_error": "must be {expected}{got}",
    "bool_type": "must be true or false{got}",
    "string_type": "must be a string{got}",
    "int_type": "must be a whole number{got}",
    "int_from_float": "must be a whole number{got}",
    "float_type": "must be a number{got}",
    "finite_number": "must be a finite number",
    "greater_than_equal": "must be at least {ge}{got}",
    "less_than_equal": "must be at most {le}{got}",
    "timezone_aware": _TIME_WORDS,
    "datetime_type": _TIME_WORDS,
    "datetime_parsing": _TIME_WORDS,
    "datetime_from_date_parsing": _TIME_WORDS,
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "must be lower-case letters, digits, '.', '_' or '-'{got}",
    "too_short": "must not be empty",
    "too_long": "must have at most {max_length} items, not {actual_length}",
    "list_type": "must be a list{got}",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "json_invalid": "not valid JSON ({error})",
}


def _describe(problem: Problem) -> str:
    if not problem.path and problem.kind in ("model_type", "model_attributes_type"):
        return f"the payload {problem.message}"
    return str(problem)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
