"""Structured log lines on stdout: ``key=value`` or JSON, one event per line, secrets redacted.

Code logs with the standard library and puts the facts in ``extra``::

    log = logging.getLogger(__name__)
    log.info("probe failed", extra={"customer": "acme", "service": "crm", "status": 503})

which :func:`setup_logging` writes as::

    at=2026-12-01T08:00:00.123Z level=info logger=probes.scheduler msg="probe failed" \
customer=acme service=crm status=503

or, with ``logging.format: json``, as one JSON object. The level comes from the configuration,
and the environment variable ``CTIWATCH_LOG_LEVEL`` wins over it.

Secrets never reach the output: values of keys that name a secret (``token``, ``password``,
``secret``, ``auth``, ``authorization``, ``api_key``, ...) become ``***`` whether they come as an
``extra`` or as ``key=value`` / ``key: value`` text in the message, passwords in URLs
(``postgresql://user:***@host``) are hidden, and so is every literal secret of the running
configuration (:func:`secrets_of`: the Twilio auth token, SMTP and MQTT passwords, the CloudCTI
API token, the database password) wherever it appears, exception text included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from ctiwatch.config import Config, ConfigError, LoggingConfig

LEVEL_ENV = "CTIWATCH_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
REDACTED = "***"

# Keys whose value is a secret: matched anywhere in the key ("twilio_auth_token", "X-Api-Key").
_SECRET_KEY = re.compile(
    r"token|passw|pwd|secret|auth|api[-_]?key|credential|private[-_]?key|cookie|signature",
    re.IGNORECASE,
)
# ``key=value``, ``key: value``, ``"key": "value"`` in free text, for keys naming a secret.
#
# Log text can come from anyone (a query string, an MQTT topic, a webhook body), so every pattern
# here runs in time linear in the text, whatever the text:
# - a key is tried only where a word starts (the look-behind fails at once inside a word), and the
#   atomic group finds the first secret fragment of that word and then takes the whole word
#   without backtracking, so each word is read a bounded number of times;
# - every other repetition is possessive (``*+``, ``++``), so nothing is read twice; a quoted
#   value without its closing quote runs to the end of the text (and is hidden) instead of
#   failing and being read again from the next key.
_WORD = "A-Za-z0-9_.-"
_SECRET_PAIR = re.compile(
    rf"""(?P<key>["']?(?<![{_WORD}])"""
    rf"""(?>[{_WORD}]*?(?:token|passw|pwd|secret|auth|api[-_]?key|credential))"""
    rf"""[{_WORD}]*+["']?)"""
    r"""(?P<sep>\s*+[=:]\s*+)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*+"?|'[^']*+'?|(?:Basic|Bearer)\s++\S++|[^\s,;&}\]]++)""",
    re.IGNORECASE,
)
# ``scheme://user:password@host``: the password part. Tried only where a word starts, and nothing
# in it backtracks, so it is linear too. Where the text was clipped, a password cut off before
# its ``@`` is hidden as well.
_URL_HEAD = r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*+://[^\s:/@]*+:)"
_URL_PASSWORD = re.compile(_URL_HEAD + r"[^\s@/]++(?=@)")
_URL_PASSWORD_CLIPPED = re.compile(_URL_HEAD + r"[^\s@/]++(?=@|\Z)")

# Every text field of a log line is cut to a bound, so one record never writes more than a few
# kilobytes whatever it was given: the message and each extra keep their head, a traceback keeps
# its head and its tail (the last line says what failed).
FIELD_LIMIT = 2048
TRACE_LIMIT = 16384
# How far past the bound a clipped field is still searched for key/value and URL secrets.
_REACH = 256

# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

# Libraries that narrate every request at INFO; they speak up from WARNING unless DEBUG is asked.
_CHATTY = ("twilio.http_client", "aiosqlite")


class Redactor:
    """Hides secrets in keys/values and in free text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is hidden whole. Very short values
        # ("", "x") would blank out ordinary words, so they are left to the key-based rules.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def value(self, key: str, value: Any) -> Any:
        if _SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.field(value)
        return value

    def text(self, text: str) -> str:
        """``text`` with every secret hidden, whole (linear in its length)."""
        return self._patterns(self._literals(text), clipped=False)

    def field(self, text: str, limit: int = FIELD_LIMIT) -> str:
        """``text`` with its secrets hidden, cut to ``limit`` characters with a marker.

        Only the head is searched for key/value and URL secrets, so a megabyte costs what a few
        kilobytes cost. A secret cut in two by the clip is still hidden: a value whose key is in
        the head is hidden to the end of the head, and a URL password cut before its ``@`` too.
        """
        size = len(text)
        text = self._literals(text)
        if len(text) <= limit:
            return self._patterns(text, clipped=False)
        shown = self._patterns(text[: limit + _REACH], clipped=True)[:limit]
        return f"{shown} [cut: {size} characters in all]"

    def trace(self, text: str, limit: int = TRACE_LIMIT) -> str:
        """A traceback: its head and, from the start of a line, its tail (the line that failed)."""
        size = len(text)
        text = self._literals(text)
        if len(text) <= limit:
            return self._patterns(text, clipped=False)
        half = limit // 2
        head = self._patterns(text[: half + _REACH], clipped=True)[:half]
        # The tail starts on a line of its own, so it begins with no half key or half value.
        line = text.find("\n", len(text) - half)
        tail = self._patterns(text[line + 1 :], clipped=False) if line >= 0 else ""
        return f"{head} [cut: {size} characters in all] {tail}"

    def _literals(self, text: str) -> str:
        # str.replace over the whole text: fast, and a configured secret is never cut in two.
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    @staticmethod
    def _patterns(text: str, *, clipped: bool) -> str:
        url = _URL_PASSWORD_CLIPPED if clipped else _URL_PASSWORD
        text = url.sub(lambda m: m.group("head") + REDACTED, text)
        return _SECRET_PAIR.sub(_redact_pair, text)


def _redact_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if value == REDACTED or value.strip("\"'") == REDACTED:
        return match.group(0)
    quote = value[0] if value[:1] in ('"', "'") else ""
    closing = quote if len(value) > 1 and value.endswith(quote) else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{closing}"


def secrets_of(config: Config) -> list[str]:
    """The literal secrets of a configuration, to be hidden wherever they turn up."""
    candidates = [
        config.alerting.twilio.auth_token,
        config.alerting.smtp.password,
        config.mqtt.password,
        config.probes.api_token,
        urlsplit(config.storage.url).password,
    ]
    return [secret for secret in candidates if secret]


class _StructuredFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        at = datetime.fromtimestamp(record.created, UTC)
        fields: dict[str, Any] = {
            "at": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.redactor.field(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                name = key if key not in fields else f"extra_{key}"
                fields[name] = self.redactor.value(key, _plain(value))
        trace = record.exc_text
        if record.exc_info:
            trace = self.formatException(record.exc_info)
        if trace:
            fields["exc"] = self.redactor.trace(trace)
        if record.stack_info:
            fields["stack"] = self.redactor.trace(self.formatStack(record.stack_info))
        return fields


class KeyValueFormatter(_StructuredFormatter):
    """``at=... level=info logger=... msg="..." key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_kv_value(value)}" for key, value in self.fields(record).items())


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    """Values JSON and key=value can show as they are; anything else as its text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_NEEDS_QUOTES = re.compile(r'[\s="\\]')


def _kv_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


class _CtiwatchHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`setup_logging` installs (and replaces on a second call)."""


def resolve_level(config: LoggingConfig, env: Mapping[str, str]) -> str:
    """``CTIWATCH_LOG_LEVEL`` (any case) if set, else the configured level."""
    wanted = env.get(LEVEL_ENV, "").strip()
    if not wanted:
        return config.level
    level = wanted.upper()
    if level not in LEVELS:
        raise ConfigError([f"{LEVEL_ENV}: must be one of {', '.join(LEVELS)}, not {wanted!r}"])
    return level


def setup_logging(
    config: LoggingConfig,
    env: Mapping[str, str] | None = None,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (stdout) as structured, redacted lines.

    Replaces the handler of an earlier call, so calling it twice does not double the lines.
    Returns the installed handler (``logging.getLogger().removeHandler(h)`` undoes it).
    """
    level = resolve_level(config, {} if env is None else env)
    redactor = Redactor(secrets)
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if config.format == "json" else KeyValueFormatter(redactor)
    )
    handler = _CtiwatchHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CtiwatchHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.captureWarnings(True)
    return handler
