"""A probe as configuration: a request template and conditions on its answer.

A :class:`RequestTemplate` is a method, a URL (a path such as ``/api/v1/...`` under the target's
``base_url``, or a whole ``https://`` URL), headers, a JSON body and :mod:`conditions
<probes.conditions>`. ``{customer}``, ``{location}``, ``{user}``, ``{number}``, ``{extension}``
and ``{contact}`` stand for the target's values: URL-encoded in the URL, as they are in headers
and body. A body entry whose value is a single placeholder that is empty for the target is left
out (a user without an extension sends no ``extension``).

A round is ok when every condition holds, evaluated in order; the first that fails ends it (the
later ones read what the earlier ones vouch for). When all hold, the ``recognised`` condition,
if any, says whether the call was recognised (a miss is still a good round). The evidence is the
conditions evaluated, each with its actual value, in order: ``[STATUS] (503) == 2xx``.

:data:`DEFAULT_SPECS` are the checks of the built-in services, written as a user would write
them; the simulator (:mod:`ctiwatch.simulator`) serves the paths they name. While a service's
template is its default (:data:`DEFAULT_TEMPLATES`), the service's built-in check judges the
answer and prints the evidence ctiwatch has always printed (``[STATUS] (201) == 2xx, [STATE]
(ringing), [CONTACT] (Bob) == Alice B.V.``); the alerts, timelines and stored results read the
same as before templates.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

from classifier.observation import ProbeResult
from probes import click2dial, crm
from probes.base import (
    Check,
    HttpRequest,
    HttpResponse,
    ProbeContext,
    ProbeTarget,
    Transport,
    run_http_probe,
)
from probes.conditions import (
    PLACEHOLDERS,
    Answer,
    Condition,
    ConditionError,
    parse_condition,
    placeholders_in,
    substitute,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SINGLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# The built-in services' checks (the defaults of ``probes.templates``), written as a user would
# write them; each module keeps its own (``SPEC``) and the check that judges it (see below).
DEFAULT_SPECS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"click2dial": click2dial.SPEC, "crm": crm.SPEC}
)
_BUILTIN_CHECKS: Mapping[str, Check] = MappingProxyType(
    {"click2dial": click2dial.check_click2dial, "crm": crm.check_crm}
)


class TemplateError(ValueError):
    """A template field that cannot be used: ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- checking the parts (the configuration calls these at load) ------------------------------


def check_method(method: str) -> str:
    upper = method.upper()
    if upper not in METHODS:
        raise ValueError(f"must be one of {', '.join(METHODS)}, not {method!r}")
    return upper


def _check_placeholders(text: str) -> None:
    for name in placeholders_in(text):
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + known + "}" for known in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}} (use {known})")


def check_url(url: str) -> str:
    """A path under the target's base URL (``/api/...``; empty: the base URL itself) or an
    http(s) URL with a host."""
    _check_placeholders(url)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError(f"must be a URL without spaces or control characters, not {url!r}")
    if not url or url.startswith("/"):
        return url
    sample = substitute(url, dict.fromkeys(PLACEHOLDERS, "x"), str)
    try:
        parts = urlsplit(sample)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "must be a path such as '/api/v1/status' (under the location's base_url) or an "
            f"http:// or https:// URL, not {url!r}"
        )
    return url


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a header name (letters, digits and '-')")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"{name}: a header value is one line")
        try:
            _check_placeholders(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return dict(headers)


def check_body(body: Any) -> Any:
    """A JSON value whose texts may hold placeholders."""

    def walk(node: Any) -> None:
        if isinstance(node, str):
            _check_placeholders(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise ValueError(f"body keys are texts, not {key!r}")
                walk(item)
        elif node is not None and not isinstance(node, bool | int | float):
            raise ValueError(f"the body is JSON: texts, numbers, lists and mappings, not {node!r}")

    walk(body)
    return body


# --- the template ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class RequestTemplate:
    """A request to make for each target and the conditions its answer must meet."""

    method: str
    url: str
    conditions: tuple[Condition, ...]
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    recognised: Condition | None = None
    # The built-in check of a default template (``DEFAULT_TEMPLATES``): it judges the answer
    # in place of the conditions, with the evidence ctiwatch printed before templates existed.
    builtin: Check | None = None

    @classmethod
    def parse(
        cls,
        *,
        method: str,
        url: str,
        conditions: Sequence[str],
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        recognised: str | None = None,
        builtin: Check | None = None,
    ) -> RequestTemplate:
        """From texts, checking each part; :class:`TemplateError` names the part."""

        def part(name: str, check: Any, value: Any) -> Any:
            try:
                return check(value)
            except ValueError as exc:
                raise TemplateError(name, str(exc)) from None

        if not conditions:
            raise TemplateError("conditions", "must not be empty")
        parsed = []
        for index, text in enumerate(conditions):
            try:
                parsed.append(parse_condition(text))
            except ConditionError as exc:
                raise TemplateError(f"conditions[{index}]", str(exc)) from None
        return cls(
            method=part("method", check_method, method),
            url=part("url", check_url, url),
            conditions=tuple(parsed),
            headers=part("headers", check_headers, dict(headers or {})),
            body=part("body", check_body, body),
            recognised=None
            if recognised is None
            else part("recognised", parse_condition, recognised),
            builtin=builtin,
        )

    def bind(self, target: ProbeTarget) -> BoundTemplate:
        """The request and conditions for ``target``: placeholders replaced."""
        values = target_values(target)
        url = substitute(self.url, values, _encode)
        if not url or url.startswith("/"):
            url = target.base_url + url
        headers = dict(target.auth_headers)
        for name, value in self.headers.items():
            headers[name] = substitute(value, values, str)
        body = _fill(self.body, values)
        return BoundTemplate(
            HttpRequest(self.method, url, headers, body),
            tuple(condition.bind(values) for condition in self.conditions),
            None if self.recognised is None else self.recognised.bind(values),
            self.builtin,
        )


def _encode(value: str) -> str:
    return quote(value, safe="")


def _fill(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return substitute(node, values, str)
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        filled = {}
        for key, item in node.items():
            single = _SINGLE.match(item) if isinstance(item, str) else None
            if single is not None and not values.get(single.group(1), "x"):
                continue  # an optional field the target has no value for
            filled[key] = _fill(item, values)
        return filled
    return node


def target_values(target: ProbeTarget) -> dict[str, str]:
    key = target.key
    return {
        "customer": key.customer,
        "location": key.location,
        "user": key.user,
        "number": target.caller_number,
        "extension": target.extension,
        "contact": target.expected_contact,
    }


class BoundTemplate:
    """A template bound to one target: its request and the conditions it evaluates."""

    __slots__ = ("_builtin", "_last", "_timed", "conditions", "recognised", "request")

    def __init__(
        self,
        request: HttpRequest,
        conditions: tuple[Condition, ...],
        recognised: Condition | None,
        builtin: Check | None = None,
    ) -> None:
        self.request = request
        self.conditions = conditions
        self.recognised = recognised
        self._builtin = builtin
        every = (*conditions, *((recognised,) if recognised is not None else ()))
        # Conditions on the time or the certificate judge more than the status and body.
        self._timed = any(c.left.kind in ("RESPONSE_TIME", "CERTIFICATE_EXPIRATION") for c in every)
        # The last answer judged and its verdict: the same answer again (a lookup answers the
        # same round after round) is judged the same, unless time is part of the judgement.
        self._last: tuple[int, bytes, tuple[bool, bool | None, str]] | None = None

    def check(
        self, response: HttpResponse, target: ProbeTarget, ctx: ProbeContext, latency: float
    ) -> tuple[bool, bool | None, str]:
        """A :data:`~probes.base.Check`: every condition in order, then the recognition."""
        last = self._last
        if last is not None and last[0] == response.status and last[1] == response.body:
            return last[2]
        builtin = self._builtin
        if builtin is not None:
            verdict = builtin(response, target, ctx, latency)
        else:
            verdict = self._judge(response, ctx, latency)
        if not self._timed:
            self._last = (response.status, response.body, verdict)
        return verdict

    def _judge(
        self, response: HttpResponse, ctx: ProbeContext, latency: float
    ) -> tuple[bool, bool | None, str]:
        not_after = response.tls_not_after
        cert = None if not_after is None else (not_after - ctx.clock.now()).total_seconds()
        answer = Answer(response.status, response.body, round(latency * 1000.0, 3), cert, not_after)
        shown = []
        for condition in self.conditions:
            ok, text = condition.evaluate(answer)
            shown.append(text)
            if not ok:
                return False, None, ", ".join(shown)
        recognised = None
        if self.recognised is not None:
            recognised, text = self.recognised.evaluate(answer)
            shown.append(text)
        return True, recognised, ", ".join(shown)


DEFAULT_TEMPLATES: Mapping[str, RequestTemplate] = MappingProxyType(
    {
        kind: RequestTemplate.parse(**spec, builtin=_BUILTIN_CHECKS[kind])
        for kind, spec in DEFAULT_SPECS.items()
    }
)
"""The built-in services' templates: their requests are the specs', their answers are judged
by the built-in checks (``check_click2dial``, ``check_crm``), so the evidence is what it
always was. A configuration whose template is exactly the default gets these (see
``ctiwatch.settings.template_from_config``); one that changes any part is judged by its
conditions, each printing its actual value beside the expected one."""


def bound(target: ProbeTarget, template: RequestTemplate) -> BoundTemplate:
    """``template`` bound to ``target``, once per target (requests are immutable values, so a
    transport's per-request caches keep working round after round)."""
    prepared = target.prepared
    found = prepared.get(template)
    if found is None:
        found = prepared[template] = template.bind(target)
    result: BoundTemplate = found
    return result


def probe_template(
    target: ProbeTarget, transport: Transport, ctx: ProbeContext
) -> Awaitable[ProbeResult]:
    """A :data:`~probes.base.Probe`: the target's template (its service's default when it has
    none). A plain function returning the coroutine: one frame less."""
    template = target.template
    if template is None:
        template = DEFAULT_TEMPLATES[target.kind]
    plan = bound(target, template)
    return run_http_probe(target, transport, ctx, plan.request, plan.check)
