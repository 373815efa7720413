"""What people send: JSON bodies and HTML forms, validated strictly, errors naming the field.

Every problem becomes a :class:`ServiceError` with status 400 and the field at fault, the same
error type the service raises, so the web turns both into one kind of answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ctiwatch.errors import problems
from ctiwatch.web.service import ServiceError, WindowRequest

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LocationId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ServiceName = Literal["click2dial", "crm"]


class Body(BaseModel):
    """An action's fields. Who does it is the logged-in user or the API token, never a typed
    name: an ``actor`` field is still accepted (clients of the earlier API send it) and
    ignored, for one release."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    actor: Annotated[str, StringConstraints(max_length=200)] | None = None


class ActorBody(Body):
    pass


class UpdateBody(Body):
    text: Text


class PriorityBody(Body):
    priority: Annotated[int, Field(ge=1, le=4)]
    reason: Reason


class ResolveBody(Body):
    """A person's resolve. While conditions in the incident's scope still hold it needs
    ``force`` and a ``reason`` (classification.md); the reason goes on the timeline."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""
    force: bool = False


class QuestionBody(Body):
    customer: CustomerId
    text: Text


class MaintenanceBody(Body):
    start: AwareDatetime
    end: AwareDatetime
    services: list[ServiceName] | None = None
    customers: list[CustomerId] | None = None
    locations: list[LocationId] | None = None
    reason: Reason
    # RFC 5545, e.g. FREQ=WEEKLY;BYDAY=SA;COUNT=4 (occurrences at the start's local time).
    recurrence: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = (
        None
    )
    emergency: bool = False
    justification: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""

    def window(self) -> WindowRequest:
        """The window asked for, as the service judges it."""
        return WindowRequest(
            self.start,
            self.end,
            self.services or None,
            self.customers or None,
            self.reason,
            locations=self.locations or None,
            recurrence=self.recurrence or None,
            emergency=self.emergency,
            justification=self.justification,
        )


class ChangeMaintenanceBody(MaintenanceBody):
    """The window as it is to be, and why it changes (kept with what it was before)."""

    why: Reason


class CancelMaintenanceBody(Body):
    why: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


B = TypeVar("B", bound=Body)

_TIME = "must be a time with a UTC offset, e.g. 2026-12-02T22:00:00+01:00"
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_too_short": "must not be empty",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "list_type": "must be a list",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "timezone_aware": _TIME,
    "datetime_type": _TIME,
    "datetime_parsing": _TIME,
    "datetime_from_date_parsing": _TIME,
}


def parse_json(model: type[B], raw: bytes) -> B:
    """A JSON request body, strictly: no unknown fields, no strings for numbers."""
    if not raw.strip():
        raise ServiceError("the request body must be a JSON object", None, 400)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _first_error(exc) from None


def parse_form(model: type[B], data: Mapping[str, Any]) -> B:
    """Form fields arrive as strings: validate leniently in type, strictly in content."""
    try:
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        raise _first_error(exc) from None


def _first_error(exc: ValidationError) -> ServiceError:
    problem = problems(exc, words=_MESSAGES)[0]
    if problem.kind in ("json_invalid", "model_type", "model_attributes_type"):
        return ServiceError("the request body must be a JSON object", None, 400)
    message = problem.message
    if problem.kind == "literal_error" and problem.field == "services":
        message = "must be click2dial or crm"
    if problem.field == "priority" and problem.kind in ("less_than_equal", "greater_than_equal"):
        message = "must be 1, 2, 3 or 4"
    where = problem.path
    return ServiceError(f"{where}: {message}" if where else message, problem.field, 400)


def parse_local_time(value: str, field: str, tz: ZoneInfo) -> datetime:
    """A ``datetime-local`` form value (``2026-12-02T22:00``) read as wall time in ``tz``."""
    text = value.strip()
    if not text:
        raise ServiceError(f"{field}: is required", field, 400)
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ServiceError(f"{field}: not a date and time: {text!r}", field, 400) from None
    if naive.tzinfo is not None:
        return naive
    aware = naive.replace(tzinfo=tz)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise ServiceError(
            f"{field}: {naive:%Y-%m-%d %H:%M} does not exist in {tz.key} "
            "(the clocks skip that hour)",
            field,
            400,
        )
    return aware


def check_query(query: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    """An API query string names only ``allowed`` parameters (like bodies: no unknown fields,
    so a misspelt filter is refused instead of silently ignored)."""
    for name in query:
        if name not in allowed:
            known = ", ".join(allowed)
            raise ServiceError(f"{name}: unknown query parameter (known: {known})", name[:100])


def parse_limit(value: str | None, default: int = 100, maximum: int = 500) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise ServiceError(f"limit: must be a whole number, not {value!r}", "limit") from None
    if not 1 <= limit <= maximum:
        raise ServiceError(f"limit: must be between 1 and {maximum}", "limit")
    return limit
