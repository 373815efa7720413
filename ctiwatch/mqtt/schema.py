"""Versioned JSON payloads on the MQTT topics, and their strict decoding.

Every payload names its schema (``"schema": "ctiwatch.results/1"``); a consumer reads only the
versions it knows and says so otherwise. Decoding never raises anything but
:class:`PayloadError`, whose message names the field and shows the value it got, e.g.
``results[3].service: must be click2dial or crm, not "sms"``.

Payloads are held to the bounds reality has, so that nothing a sender can publish reaches the
database or the monitor as a value they cannot take: every time within a :class:`Window`
around ``now`` (24 h back, 5 min ahead by default; ``mqtt.max_age`` / ``mqtt.max_ahead``),
HTTP status codes 100–599, no NUL character in any text, lengths capped, payloads at most
:data:`MAX_PAYLOAD_BYTES`. A results batch is judged result by result: a result out of bounds
is rejected alone, the others in its batch are used.

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
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from classifier.observation import CALL_SERVICES, CALLS, ProbeResult, Service, Source, TargetKey
from ctiwatch.config import TopologyConfig
from ctiwatch.errors import Problem, problems

RESULTS_SCHEMA = "ctiwatch.results/1"
CALL_SCHEMA = "ctiwatch.call/1"
STATUS_SCHEMA = "ctiwatch.agent-status/1"

# A batch bigger than this is a broken agent, not a busy one (and would be a 5 MB message).
MAX_RESULTS_PER_MESSAGE = 10_000
# Ten thousand results of the largest size allowed below; anything bigger is not read at all.
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_LATENCY_MS = 86_400_000.0  # a day: a larger figure is a broken clock, not a slow answer

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


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store it, and no sender has a reason to send it.
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL characters")
    return value


NoNul = AfterValidator(_no_nul)
Name = Annotated[str, Field(min_length=1, max_length=64), NoNul]
ResultId = Annotated[str, Field(min_length=1, max_length=128), NoNul]
Evidence = Annotated[str, Field(max_length=4000), NoNul]
Caller = Annotated[str, Field(max_length=64), NoNul]
Reason = Annotated[str, Field(max_length=200), NoNul]
AgentName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


@dataclass(frozen=True, slots=True)
class Window:
    """How far from ``now`` a time in a payload may be: ``back`` before it, ``ahead`` after."""

    back: timedelta = timedelta(hours=24)
    ahead: timedelta = timedelta(minutes=5)

    def check(self, at: datetime, now: datetime, path: str, *, any_past: bool = False) -> datetime:
        """``at`` in UTC, or :class:`PayloadError` naming ``path`` when it is out of bounds
        (``any_past``: only too far ahead, or not a time on any clock)."""
        try:
            utc = at.astimezone(UTC)
            inside = utc <= now + self.ahead and (any_past or now - self.back <= utc)
        except OverflowError:  # year 1 or 9999 with an offset: not a time on any clock
            inside = False
        if not inside:
            bounds = (
                f"at most {_span(self.ahead)} after now"
                if any_past
                else f"within {_span(self.back)} before and {_span(self.ahead)} after now"
            )
            raise PayloadError(
                "time_out_of_window",
                f"{path}: must be {bounds} ({now.astimezone(UTC).isoformat()}), "
                f"not {_show(at.isoformat())}",
            )
        return utc


DEFAULT_WINDOW = Window()


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
    latency_ms: float = Field(ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)
    status: Annotated[int, Field(ge=100, le=599)] | None
    evidence: Evidence = ""
    attempts: int = Field(default=1, ge=1, le=100)


class ResultsBatchPayload(_Strict):
    schema_: Literal["ctiwatch.results/1"] = Field(alias="schema")
    agent: AgentName
    sent_at: AwareDatetime
    results: list[ResultPayload] = Field(min_length=1, max_length=MAX_RESULTS_PER_MESSAGE)


class _BatchEnvelope(_Strict):
    """A results batch whose results are read one by one (when some of them are invalid)."""

    schema_: Literal["ctiwatch.results/1"] = Field(alias="schema")
    agent: AgentName
    sent_at: AwareDatetime
    results: list[Any] = Field(min_length=1, max_length=MAX_RESULTS_PER_MESSAGE)


_RESULT_LIST = TypeAdapter(list[ResultPayload])
_RESULT_PATH = re.compile(r"^results\[(\d+)\](\.|$)")


class CallPayload(_Strict):
    schema_: Literal["ctiwatch.call/1"] = Field(alias="schema")
    call_id: ResultId
    caller: Caller
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
    reason: Reason = ""


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
            for service in CALL_SERVICES
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
    payload: bytes | str,
    topology: TopologyIndex,
    *,
    now: datetime,
    window: Window = DEFAULT_WINDOW,
    topic_agent: str | None = None,
) -> DecodedBatch:
    """A results batch from an agent; ``topic_agent`` is the agent named by the topic.

    Results out of bounds (invalid, unknown target, time outside ``window`` around ``now``)
    are rejected one by one; the batch itself is rejected only when its envelope is wrong."""
    _check_size(payload)
    rejected: list[PayloadError] = []
    try:
        batch = ResultsBatchPayload.model_validate_json(payload)
        agent, sent_at, items = batch.agent, batch.sent_at, list(enumerate(batch.results))
    except ValidationError as exc:
        agent, sent_at, items = _item_by_item(payload, exc, rejected)
    if topic_agent is not None and agent != topic_agent:
        raise PayloadError(
            "agent_mismatch",
            f"agent: {_show(agent)} does not match the topic's agent {_show(topic_agent)}",
        )
    sent_utc = window.check(sent_at, now, "sent_at")
    results: list[ProbeResult] = []
    target = topology.target
    for index, item in items:
        path = f"results[{index}]"
        try:
            key = target(item.service, item.customer, item.location, item.user, path)
            at = window.check(item.at, now, f"{path}.at")
        except PayloadError as exc:
            rejected.append(exc)
            continue
        results.append(
            ProbeResult(
                item.result_id,
                key,
                at,
                item.ok,
                item.recognised,
                item.latency_ms,
                item.status,
                item.evidence,
                Source.AGENT,
                item.attempts,
                agent,
            )
        )
    rejected.sort(key=lambda problem: _index_of(problem.message))
    return DecodedBatch(agent, sent_utc, results, rejected)


def _item_by_item(
    payload: bytes | str, exc: ValidationError, rejected: list[PayloadError]
) -> tuple[str, datetime, list[tuple[int, ResultPayload]]]:
    """A batch whose only errors are inside some of its results: those results are rejected
    (appended to ``rejected``), the others read. Any other error rejects the batch."""
    by_index: dict[int, list[Problem]] = {}
    for problem in problems(exc, words=_WORDS, show=_show):
        item = _RESULT_PATH.match(problem.path)
        if item is None:
            raise _payload_error(exc) from None
        by_index.setdefault(int(item.group(1)), []).append(problem)
    try:
        envelope = _BatchEnvelope.model_validate_json(payload)
        good = [i for i in range(len(envelope.results)) if i not in by_index]
        items = _RESULT_LIST.validate_json(json.dumps([envelope.results[i] for i in good]))
    except (ValidationError, ValueError, RecursionError):
        raise _payload_error(exc) from None
    for index in sorted(by_index):
        rejected.append(PayloadError("invalid_payload", _joined(by_index[index])))
    return envelope.agent, envelope.sent_at, list(zip(good, items, strict=True))


def _index_of(message: str) -> int:
    # "results[12].at: ..." -> 12, so rejections are reported in the batch's order.
    head = message.partition("]")[0]
    digits = head.rpartition("[")[2]
    return int(digits) if digits.isdigit() else -1


def call_result_id(customer: str, call_id: str) -> str:
    # Call ids are the platform's, unique per customer at best: namespace them so they can
    # never collide with another customer's call or with a probe's result id.
    return f"call:{customer}:{call_id}"


def decode_call(
    payload: bytes | str,
    customer: str,
    topology: TopologyIndex,
    *,
    now: datetime,
    window: Window = DEFAULT_WINDOW,
) -> ProbeResult:
    """A real call event for ``customer`` (named by the topic): one CRM recognition fact."""
    _check_size(payload)
    call = _validate(CallPayload, payload)
    topology.check(customer, call.location, call.user)
    at = window.check(call.at, now, "at")
    outcome = "recognised" if call.recognised else "not recognised"
    return ProbeResult(
        result_id=call_result_id(customer, call.call_id),
        target=TargetKey(Service.CRM, customer, call.location, call.user),
        at=at,
        ok=True,
        recognised=call.recognised,
        latency_ms=0.0,
        status=None,
        evidence=f"{call.direction} call {call.call_id} with {call.caller}: {outcome}",
        source=Source.CALL,
        source_id=CALLS,
    )


def decode_status(
    payload: bytes | str,
    *,
    now: datetime,
    window: Window = DEFAULT_WINDOW,
    topic_agent: str | None = None,
) -> AgentStatus:
    """An agent's status. Its time may be old (a retained last will says when the agent
    connected, however long ago), never ahead of ``now`` by more than ``window.ahead``."""
    _check_size(payload)
    status = _validate(StatusPayload, payload)
    if topic_agent is not None and status.agent != topic_agent:
        raise PayloadError(
            "agent_mismatch",
            f"agent: {_show(status.agent)} does not match the topic's agent {_show(topic_agent)}",
        )
    at = window.check(status.at, now, "at", any_past=True)
    return AgentStatus(status.agent, status.status == "online", at, status.reason)


def _check_size(payload: bytes | str) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            "too_large",
            f"the payload must be at most {MAX_PAYLOAD_BYTES} bytes, not {len(payload)}",
        )


def _validate(model: type[_M], payload: bytes | str) -> _M:
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise _payload_error(exc) from None


def _payload_error(exc: ValidationError) -> PayloadError:
    found = problems(exc, words=_WORDS, show=_show)
    reason = "invalid_payload"
    if any(problem.kind == "json_invalid" for problem in found):
        reason = "invalid_json"
    elif any(problem.path == "schema" for problem in found):
        reason = "unsupported_schema"
    return PayloadError(reason, _joined(found))


def _joined(found: list[Problem]) -> str:
    lines = [_describe(problem) for problem in found]
    if len(lines) > 5:
        lines = [*lines[:5], f"and {len(lines) - 5} more errors"]
    return "; ".join(lines)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
    "nul_character": "must not contain NUL characters",
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
