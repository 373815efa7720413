"""One translator from pydantic's ``ValidationError`` to messages in the user's words.

Every input ctiwatch validates with pydantic (the configuration, scenarios, simulator faults,
console and API requests, agents' MQTT payloads) reports its errors through :func:`problems`:
each error becomes a :class:`Problem` naming the entity and field (``topology.customers[acme]
.locations[ams].users``: list items are named by their ``id`` when the data is given) and a
message ("must not be empty", "unknown key (check the spelling; did you mean 'interval'?)").

An audience with its own vocabulary passes ``words`` (pydantic error type → message template;
the template may use ``{got}`` (", not <value>"), ``{expected}``, ``{ge}``, ``{le}``,
``{max_length}``, ``{actual_length}`` and ``{error}``) and ``show`` (how a given value is
quoted: YAML-like ``'text'`` by default, JSON for JSON inputs). Everything else -- walking the
errors, the path, the fallback wording -- is this module's.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation error: ``path`` names the entity and field, ``field`` is its first step
    (the top-level field of the input), ``kind`` pydantic's error type."""

    path: str
    field: str | None
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def problems(
    exc: ValidationError,
    data: Any = None,
    model: type[BaseModel] | None = None,
    *,
    words: Mapping[str, str] | None = None,
    show: Callable[[Any], str] | None = None,
) -> list[Problem]:
    """The errors of ``exc`` as problems, in pydantic's order.

    ``data`` (the validated input) lets list items be named by their ``id``; ``model`` (the
    validated root model) lets an unknown key suggest the closest known one.
    """
    shown = show if show is not None else show_value
    found = []
    for error in exc.errors(include_url=False):
        kind: str = error["type"]
        loc: tuple[int | str, ...] = tuple(error["loc"])
        path = _readable_path(loc, data)
        if words is not None and kind in words:
            message = words[kind].format(**_template_values(error, shown))
        else:
            message = _friendly_message(error, model)
        if loc and loc[-1] == "[key]":
            message = f"key {message}"
        if error["msg"].startswith("Value error, "):
            # A model-level check that names its field ("rate: is required ...") reads as
            # if it came from that field.
            named = re.match(r"^([a-z_]+): (.*)$", message)
            if named:
                path = f"{path}.{named.group(1)}" if path else named.group(1)
                message = named.group(2)
        field = str(loc[0]) if loc and not str(loc[0]).startswith("[") else None
        found.append(Problem(path, field, message, kind))
    return found


def describe_errors(
    exc: ValidationError, data: Any, model: type[BaseModel] | None = None
) -> list[str]:
    """Pydantic errors as ``path: message`` lines, with list items named by their ``id``.

    With ``model`` (the validated root model), an unknown key suggests the closest known one.
    """
    return [str(problem) for problem in problems(exc, data, model)]


def _template_values(error: Any, show: Callable[[Any], str]) -> dict[str, Any]:
    ctx: dict[str, Any] = error.get("ctx") or {}
    return {
        "got": f", not {show(error.get('input'))}",
        "expected": str(ctx.get("expected", "")).replace("'", ""),
        "ge": _number(ctx.get("ge")),
        "le": _number(ctx.get("le")),
        "max_length": ctx.get("max_length"),
        "actual_length": ctx.get("actual_length"),
        "error": ctx.get("error", "unreadable"),
    }


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def item_label(item: Any, index: int) -> Any:
    """A list item is named by its ``id`` (or its text), else by its index."""
    label = item.get("id") if isinstance(item, dict) else None
    return label if label is not None else (item if isinstance(item, str) else index)


def _friendly_message(error: Any, model: type[BaseModel] | None) -> str:
    """Pydantic's wording ("Input should be ...") in the user's words ("must be ...")."""
    kind: str = error["type"]
    message: str = error["msg"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    given = error.get("input")
    not_given = f", not {show_value(given)}" if _is_scalar(given) else ""
    if kind == "extra_forbidden":
        return "unknown key (check the spelling" + _suggestion(error["loc"], model) + ")"
    if kind == "missing":
        return "is required"
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} items"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern == PHONE_PATTERN:
            return f"must be a phone number in international format such as +31612345678{not_given}"
        if pattern == ID_PATTERN:
            return (
                "must be an id of lowercase letters, digits, '.', '_' and '-' "
                f"such as 'acme-ams'{not_given}"
            )
        if pattern == NODE_PATTERN:
            return (
                "must be a node name of letters, digits, '.', '_' and '-' "
                f"such as 'ctiwatch-1'{not_given}"
            )
        return f"must match {pattern}{not_given}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys{not_given}"
    if kind == "list_type":
        return f"must be a list{not_given}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number{not_given}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number{not_given}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false{not_given}"
    if kind == "string_type":
        return f"must be text (put it in quotes){not_given}"
    if kind.startswith("date_"):
        return f"must be a date such as 2026-12-31{not_given}"
    friendly = re.sub(r"^(Input|String|List|Dictionary|Value) should ", "must ", message)
    if friendly != message:
        return friendly + not_given
    return message


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | date | time)


def show_value(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _suggestion(loc: tuple[int | str, ...], model: type[BaseModel] | None) -> str:
    """``; did you mean 'interval'?`` for a misspelt key, when the model knows a close one."""
    if model is None or not loc or not isinstance(loc[-1], str):
        return ""
    node: Any = model
    for step in loc[:-1]:
        node = _field_type(node, step)
        if node is None:
            return ""
    node = _field_type(node, None)
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return ""
    known = [field.alias or name for name, field in node.model_fields.items()]
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _field_type(annotation: Any, step: int | str | None) -> Any:
    """The type found one ``step`` of a pydantic error location below ``annotation``."""
    while True:  # unwrap Annotated[...] and X | None down to a model or a container
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0] if len(options) == 1 else None
        else:
            break
    if step is None or (isinstance(step, str) and "[" in step):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if step in (name, field.alias):
                return field.annotation
    return None


def _readable_path(loc: tuple[int | str, ...], data: Any) -> str:
    """``a.b[acme].c``: list items named by their ``id`` in ``data``, by index without data."""
    parts: list[str] = []
    node = data
    for step in loc:
        if isinstance(step, int) and (isinstance(node, list) or data is None):
            item = node[step] if isinstance(node, list) and 0 <= step < len(node) else None
            label = item_label(item, step)
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


class Refused(Exception):
    """An input refused before it changed anything (the step it was part of leaves no trace).

    The live pipeline lets these through as they are; any other error in a step puts the
    monitor back to what the database holds."""
