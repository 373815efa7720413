"""Conditions on an answer, written the way Gatus writes them, parsed once, never ``eval``-ed.

A condition is ``LEFT OPERATOR EXPECTED``::

    [STATUS] == 201                       [STATUS] == 2xx          [STATUS] < 500
    [BODY].state == "ringing"             [BODY].state == any(dialing, ringing, connected)
    [BODY].contact.id != ""               [BODY].items[0].id == 42
    [BODY].contacts[*].name contains {contact}
    len([BODY].contacts) > 0              has([BODY].error) == false
    [BODY] contains "ok"                  [RESPONSE_TIME] < 2000   (milliseconds, or 2s)
    [CERTIFICATE_EXPIRATION] > 48h        (also 14d, or milliseconds)

* LEFT: ``[STATUS]`` (the HTTP status), ``[BODY]`` (the body as text) or ``[BODY]`` followed by
  a JSON path (``.key``, ``[index]``, ``[*]`` for every item of a list), ``[RESPONSE_TIME]``
  (milliseconds of this attempt), ``[CERTIFICATE_EXPIRATION]`` (time until the server's TLS
  certificate expires), ``len(...)`` and ``has(...)`` of a body path.
* OPERATOR: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``contains`` (a list holds the value,
  a text holds it as a part).
* EXPECTED: a number, ``2xx`` (a status class), a duration (``500ms``, ``30s``, ``48h``,
  ``14d``), a text in double quotes (``"a \\"b\\""``) or bare (``ringing``, ``true``,
  ``null``), ``any(a, b, ...)``; ``{customer}``, ``{location}``, ``{user}``, ``{number}``,
  ``{extension}`` and ``{contact}`` stand for the target's values.

A body path that does not exist fails every comparison (``!=`` too: ``[BODY].id != ""`` means
"is set"); ``has(...)`` asks about existence. The parser reads the text once from left to right
(linear time); a bad condition is a :class:`ConditionError` saying what is wrong.

The evidence of a condition is Gatus's: the left side with its actual value beside the
expected one, ``[STATUS] (503) == 201``, ``[BODY].state (failed) == any(dialing, ringing)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

PLACEHOLDERS = ("customer", "location", "user", "number", "extension", "contact")
MAX_LENGTH = 1000
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_CLASS = re.compile(r"^([1-5])xx$")
_KEY = re.compile(r"[A-Za-z0-9_$@-]+")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "contains")
_ORDERING = frozenset({"<", "<=", ">", ">="})
_EXCERPT = 80


class ConditionError(ValueError):
    """A condition that cannot be used; the message says why, in the user's words."""


class _Absent(Enum):
    MISSING = "missing"  # the body path does not exist
    NOT_JSON = "not JSON"  # the body is not JSON, so no path exists
    UNKNOWN = "unknown"  # no certificate (not TLS, or not verified)


MISSING, NOT_JSON, UNKNOWN = _Absent.MISSING, _Absent.NOT_JSON, _Absent.UNKNOWN

# A body path step: a key, an index, or None for ``[*]`` (every item).
Step = str | int | None


@dataclass(frozen=True, slots=True)
class Operand:
    """The left side: what is read from the answer."""

    kind: str  # STATUS | BODY | RESPONSE_TIME | CERTIFICATE_EXPIRATION
    path: tuple[Step, ...] = ()  # for BODY: () is the body as text
    function: str | None = None  # len | has
    text: str = ""  # as written

    @property
    def numeric(self) -> bool:
        return self.kind != "BODY" or self.function == "len"


@dataclass(frozen=True, slots=True)
class Value:
    """One expected value: as written, and as a number/status class/duration when it is one."""

    text: str  # the text compared with (quotes removed, placeholders as written)
    shown: str  # as written, for the evidence
    number: float | None = None  # numbers; durations in seconds; status classes: None
    status_class: int | None = None
    duration: bool = False

    @property
    def placeholders(self) -> bool:
        return "{" in self.text

    def bind(self, values: Mapping[str, str]) -> Value:
        """This value with ``{name}`` replaced by the target's values."""
        if not self.placeholders:
            return self

        def repl(match: re.Match[str]) -> str:
            return values.get(match.group(1), match.group(0))

        text = _PLACEHOLDER.sub(repl, self.text)
        shown = _PLACEHOLDER.sub(repl, self.shown)
        return Value(text, shown, _as_number(text), self.status_class, self.duration)


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition; :meth:`bind` gives the one a target evaluates."""

    text: str
    left: Operand
    operator: str
    expected: tuple[Value, ...]
    any_of: bool = False
    # Derived once (the hot path): the evidence around the actual value, and for == / != the
    # texts a text answer is compared with.
    _prefix: str = field(init=False, repr=False, compare=False)
    _suffix: str = field(init=False, repr=False, compare=False)
    _texts: frozenset[str] = field(init=False, repr=False, compare=False)
    _statuses: frozenset[int] = field(init=False, repr=False, compare=False)
    _classes: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_prefix", f"{self.left.text} (")
        set_(self, "_suffix", f") {self.operator} {self.shown_expected}")
        # A text is never equal to a status class, and compares with a number as text.
        set_(self, "_texts", frozenset(v.text for v in self.expected if v.status_class is None))
        numbers = [v.number for v in self.expected if v.number is not None and not v.duration]
        set_(self, "_statuses", frozenset(int(n) for n in numbers if n == int(n)))
        classes = (v.status_class for v in self.expected if v.status_class is not None)
        set_(self, "_classes", frozenset(classes))

    def bind(self, values: Mapping[str, str]) -> Condition:
        if not any(v.placeholders for v in self.expected):
            return self
        expected = tuple(v.bind(values) for v in self.expected)
        return Condition(self.text, self.left, self.operator, expected, self.any_of)

    @property
    def shown_expected(self) -> str:
        if self.any_of:
            return f"any({', '.join(v.shown for v in self.expected)})"
        return self.expected[0].shown

    def holds(self, actual: Any) -> bool:
        """Whether ``actual`` (what :class:`Answer` read for the left side) satisfies it."""
        operator = self.operator
        if type(actual) is str and operator in ("==", "!="):
            return (actual in self._texts) is (operator == "==")
        if self.left.kind == "STATUS" and operator in ("==", "!="):
            found = actual in self._statuses or actual // 100 in self._classes
            return found is (operator == "==")
        if isinstance(actual, _Absent):
            return False
        if operator == "!=":
            return not any(_equal(actual, v, self.left) for v in self.expected)
        if operator == "==":
            return any(_equal(actual, v, self.left) for v in self.expected)
        if operator == "contains":
            return any(_contains(actual, v) for v in self.expected)
        return _ordered(actual, operator, self.expected[0], self.left)

    def evaluate(self, answer: Answer) -> tuple[bool, str]:
        """Whether it holds for ``answer``, and its evidence: ``[STATUS] (503) == 201``."""
        actual = answer.read(self.left)
        if type(actual) is str and len(actual) <= _EXCERPT and "\n" not in actual:
            shown = actual if "\r" not in actual else _excerpt(actual)
        else:
            shown = show(actual, self.left)
            if self.left.kind == "CERTIFICATE_EXPIRATION" and answer.cert_not_after is not None:
                # The date itself: what a person renewing the certificate plans with.
                expires = answer.cert_not_after.astimezone(UTC)
                shown = f"{shown}, expires {expires:%Y-%m-%d %H:%M} UTC"
        return self.holds(actual), self._prefix + shown + self._suffix


class Answer:
    """One answer as conditions read it: status, body (decoded once, when a path asks),
    the attempt's latency and the certificate's remaining time in seconds."""

    __slots__ = ("_json", "body", "cert_not_after", "cert_seconds", "latency_ms", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        latency_ms: float,
        cert_seconds: float | None,
        cert_not_after: datetime | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.latency_ms = latency_ms
        self.cert_seconds = cert_seconds
        self.cert_not_after = cert_not_after
        self._json: Any = _UNREAD

    def read(self, operand: Operand) -> Any:
        kind = operand.kind
        if kind == "BODY" and operand.path and operand.function is None:
            document = self._json
            if document is _UNREAD:
                document = self._decode()
            return document if document is NOT_JSON else _walk(document, operand.path)
        if kind == "STATUS":
            return self.status
        if kind == "RESPONSE_TIME":
            return self.latency_ms
        if kind == "CERTIFICATE_EXPIRATION":
            return UNKNOWN if self.cert_seconds is None else self.cert_seconds
        if not operand.path and operand.function is None:
            return self.body.decode("utf-8", "replace")
        document = self._json
        if document is _UNREAD:
            document = self._decode()
        value = document if document is NOT_JSON else _walk(document, operand.path)
        if operand.function == "has":
            return value is not MISSING and value is not NOT_JSON
        if operand.function == "len":
            return len(value) if isinstance(value, str | list | dict) else MISSING
        return value

    def _decode(self) -> Any:
        try:
            document = json.loads(self.body)
        except ValueError:
            document = NOT_JSON
        self._json = document
        return document


_UNREAD: Any = object()


def _walk(node: Any, path: tuple[Step, ...]) -> Any:
    for index, step in enumerate(path):
        if type(step) is str:
            if type(node) is not dict:
                return MISSING
            node = node.get(step, MISSING)
            if node is MISSING:
                return MISSING
            continue
        if step is None:
            if not isinstance(node, list):
                return MISSING
            rest = path[index + 1 :]
            found = [_walk(item, rest) for item in node]
            return [item for item in found if item is not MISSING]
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return MISSING
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return MISSING
            node = node[step]
    return node


def _text(actual: Any) -> str:
    if isinstance(actual, str):
        return actual
    if actual is None:
        return "null"
    if isinstance(actual, bool):
        return "true" if actual else "false"
    if isinstance(actual, int):
        return str(actual)
    if isinstance(actual, float):
        return f"{actual:g}"
    return json.dumps(actual, separators=(",", ":"), ensure_ascii=False)


def _equal(actual: Any, value: Value, left: Operand) -> bool:
    if value.status_class is not None:
        return isinstance(actual, int) and actual // 100 == value.status_class
    number = value.number
    if number is not None and isinstance(actual, int | float) and not isinstance(actual, bool):
        return _measured(actual, value, left) == number
    return _text(actual) == value.text


def _contains(actual: Any, value: Value) -> bool:
    if isinstance(actual, list):
        number = value.number
        for item in actual:
            if number is not None and isinstance(item, int | float) and not isinstance(item, bool):
                if item == number:
                    return True
            elif _text(item) == value.text:
                return True
        return False
    if isinstance(actual, str):
        return value.text in actual
    return False


def _measured(actual: float, value: Value, left: Operand) -> float:
    """``actual`` in the unit of ``value``: durations are seconds, plain numbers after
    [RESPONSE_TIME] and [CERTIFICATE_EXPIRATION] milliseconds (as Gatus reads them)."""
    if left.kind == "RESPONSE_TIME":  # read in milliseconds
        return actual / 1000.0 if value.duration else actual
    if left.kind == "CERTIFICATE_EXPIRATION":  # read in seconds
        return actual if value.duration else actual * 1000.0
    return actual


def _ordered(actual: Any, operator: str, value: Value, left: Operand) -> bool:
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    number = value.number
    if number is None:
        return False
    measured = _measured(actual, value, left)
    if operator == "<":
        return measured < number
    if operator == "<=":
        return measured <= number
    if operator == ">":
        return measured > number
    return measured >= number


def show(actual: Any, left: Operand | None = None) -> str:
    """How an actual value appears in the evidence."""
    if isinstance(actual, _Absent):
        return actual.value
    if left is not None and left.kind == "CERTIFICATE_EXPIRATION":
        return _show_duration(actual)
    if left is not None and left.kind == "RESPONSE_TIME":
        return f"{round(actual, 3):g}"
    if isinstance(actual, list):
        return ", ".join(show(item) for item in actual) if actual else "[]"
    return _excerpt(_text(actual))


def _show_duration(seconds: float) -> str:
    if abs(seconds) >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h"


def _excerpt(text: str) -> str:
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _as_number(text: str) -> float | None:
    return float(text) if _NUMBER.match(text) else None


# --- parsing ---------------------------------------------------------------------------------


def parse_condition(text: str) -> Condition:
    """``text`` as a :class:`Condition`; :class:`ConditionError` says what is wrong."""
    if not isinstance(text, str):
        raise ConditionError("must be a condition such as '[STATUS] == 200'")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"a condition is at most {MAX_LENGTH} characters")
    if any(not ch.isprintable() for ch in text):
        raise ConditionError("a condition is one line of printable text")
    source = text.strip()
    if not source:
        raise ConditionError("must be a condition such as '[STATUS] == 200'")
    left, position = _operand(source)
    rest = source[position:]
    stripped = rest.lstrip()
    if not stripped:
        raise ConditionError(f"{left.text} needs an operator and a value, such as '== 200'")
    operator = next((op for op in _OPERATORS if stripped.startswith(op)), None)
    if operator is None or (operator == "contains" and stripped[8:9] not in (" ", "")):
        word = stripped.split(None, 1)[0]
        raise ConditionError(
            f"unknown operator {word!r} after {left.text} (use ==, !=, <, <=, >, >= or contains)"
        )
    expected_text = stripped[len(operator) :].strip()
    if not expected_text:
        raise ConditionError(f"{left.text} {operator} needs a value after the operator")
    values, any_of = _expected(expected_text)
    condition = Condition(source, left, operator, values, any_of)
    _check_types(condition)
    return condition


def _operand(source: str) -> tuple[Operand, int]:
    function = None
    start = 0
    for name in ("len", "has"):
        if source.startswith(f"{name}("):
            function, start = name, len(name) + 1
            break
    if not source.startswith("[", start):
        raise ConditionError(
            "must start with [STATUS], [BODY], [RESPONSE_TIME], [CERTIFICATE_EXPIRATION], "
            f"len(...) or has(...), not {source.split(None, 1)[0]!r}"
        )
    close = source.find("]", start)
    name = source[start + 1 : close] if close > 0 else source[start + 1 :]
    if close < 0 or name not in ("STATUS", "BODY", "RESPONSE_TIME", "CERTIFICATE_EXPIRATION"):
        raise ConditionError(
            f"unknown placeholder [{name}] (use [STATUS], [BODY], [RESPONSE_TIME] or "
            "[CERTIFICATE_EXPIRATION])"
        )
    position = close + 1
    path: list[Step] = []
    if name == "BODY":
        position = _path(source, position, path)
    if function is not None:
        if name != "BODY" or not path:
            raise ConditionError(f"{function}(...) takes a body path such as [BODY].items")
        if not source.startswith(")", position):
            raise ConditionError(f"{function}( is not closed with ')'")
        position += 1
    text = source[:position]
    return Operand(name, tuple(path), function, text), position


def _path(source: str, position: int, path: list[Step]) -> int:
    """Read ``.key``, ``[0]`` and ``[*]`` steps from ``position``; return where they end."""
    length = len(source)
    while position < length:
        char = source[position]
        if char == ".":
            match = _KEY.match(source, position + 1)
            if match is None:
                raise ConditionError(
                    f"a body path step after '.' is a key of letters, digits, '_' or '-' "
                    f"(at {source[: position + 1]!r})"
                )
            path.append(match.group(0))
            position = match.end()
        elif char == "[":
            close = source.find("]", position)
            inner = source[position + 1 : close] if close > 0 else ""
            if inner == "*":
                path.append(None)
            elif re.fullmatch(r"-?\d{1,9}", inner):
                path.append(int(inner))
            else:
                raise ConditionError(
                    f"a body path index is a number or * such as [0] or [*] "
                    f"(at {source[: position + 1]!r})"
                )
            position = close + 1
        else:
            break
    return position


def _expected(text: str) -> tuple[tuple[Value, ...], bool]:
    if text.startswith("any(") and not text.endswith(")"):
        raise ConditionError(f"any( is not closed with ')': {text}")
    if text.startswith("any(") and text.endswith(")"):
        inner = text[4:-1]
        items = _split(inner)
        if not items or any(not item.strip() for item in items):
            raise ConditionError("any(...) takes values separated by commas, such as any(200, 201)")
        return tuple(_value(item.strip()) for item in items), True
    return (_value(text),), False


def _split(text: str) -> list[str]:
    """Split at commas outside double quotes."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
            current.append(char)
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ConditionError("a quoted value is not closed with '\"'")
    items.append("".join(current))
    return items


def _value(text: str) -> Value:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"') or _unescaped_quote(text[1:-1]):
            raise ConditionError(f"a quoted value must end with '\"' and nothing after it: {text}")
        inner = re.sub(r"\\(.)", r"\1", text[1:-1])
        _check_placeholders(inner)
        return Value(inner, text)
    _check_placeholders(text)
    match = _CLASS.match(text)
    if match:
        return Value(text, text, status_class=int(match.group(1)))
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return Value(text, text, seconds, duration=True)
    return Value(text, text, _as_number(text))


def _unescaped_quote(inner: str) -> bool:
    escaped = False
    for char in inner:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return True
    return escaped


def _check_placeholders(text: str) -> None:
    for match in _PLACEHOLDER.finditer(text):
        if match.group(1) not in PLACEHOLDERS:
            raise ConditionError(
                f"unknown placeholder {{{match.group(1)}}} "
                f"(use {', '.join('{' + name + '}' for name in PLACEHOLDERS)})"
            )


def _check_types(condition: Condition) -> None:
    left, operator, values = condition.left, condition.operator, condition.expected
    name = left.text
    if operator in _ORDERING and condition.any_of:
        raise ConditionError(f"{operator} compares with one value, not any(...)")
    for value in values:
        if value.status_class is not None and left.kind != "STATUS":
            raise ConditionError(f"{value.text} is a status class: only [STATUS] == {value.text}")
        if value.status_class is not None and operator not in ("==", "!="):
            raise ConditionError(f"a status class such as 2xx takes == or !=, not {operator}")
    if left.numeric and operator == "contains":
        raise ConditionError(f"{name} is a number: contains is for texts and lists")
    if left.function == "has":
        if operator not in ("==", "!=") or any(v.text not in ("true", "false") for v in values):
            raise ConditionError(f"{name} is true or false: write {name} == true or == false")
        return
    if left.kind == "STATUS":
        for value in values:
            number = value.number
            if value.status_class is None and (
                number is None or value.duration or not 100 <= number <= 599 or number % 1
            ):
                raise ConditionError(
                    f"[STATUS] compares with a status such as 200 or a class such as 2xx, "
                    f"not {value.shown}"
                )
        return
    if left.numeric:
        timed = left.kind in ("RESPONSE_TIME", "CERTIFICATE_EXPIRATION")
        for value in values:
            if value.number is None or (value.duration and not timed):
                what = "milliseconds or a duration such as 2s or 48h" if timed else "a number"
                raise ConditionError(f"{name} compares with {what}, not {value.shown}")
        return
    if operator in _ORDERING and values[0].number is None and not values[0].placeholders:
        raise ConditionError(f"{operator} compares numbers: {values[0].shown} is not a number")


def placeholders_in(text: str) -> list[str]:
    """The ``{name}`` placeholders of a template text, in order (unknown ones included)."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(text)]


def substitute(text: str, values: Mapping[str, str], encode: Callable[[str], str]) -> str:
    """``text`` with each known ``{name}`` replaced by ``encode(values[name])``."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        return encode(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(repl, text)
