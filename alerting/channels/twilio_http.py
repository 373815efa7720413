"""The real ``twilio`` client, talking to ``twilio.base_url`` (the project's fake by default).

The twilio library builds every URL on ``https://<product>.twilio.com``; its documented way to
send elsewhere is a custom HTTP client. :class:`RedirectingHttpClient` is one: an
``AsyncHttpClient`` on an aiohttp session the caller owns, rewriting the Twilio origin to
``base_url`` and turning failures into :class:`TransportError`.

Every request made inside :func:`call_twilio` with an idempotency key carries it in the
``Idempotency-Key`` header (the IETF httpapi draft's name). The project's fake Twilio honours it:
a repeated key gets the first answer again and creates nothing. The real Twilio REST API has no
idempotency keys and ignores the header (see "Delivery guarantees" in ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from alerting.channels.base import TransportError

_TWILIO_ORIGIN = re.compile(r"^https://[a-z0-9.-]+\.twilio\.com(?=/|$)")
_logger = logging.getLogger("ctiwatch.twilio")
IDEMPOTENCY_HEADER = "Idempotency-Key"
# The key of the message being sent by the current task: the twilio client builds its requests
# itself, so the key reaches ``RedirectingHttpClient.request`` through the task's context.
_sending_key: ContextVar[str | None] = ContextVar("ctiwatch_twilio_idempotency_key", default=None)
# And back the other way: the ``Retry-After`` of the last answer (the twilio client's exceptions
# do not carry the headers), written by ``request`` into the holder ``call_twilio`` set.
_retry_after: ContextVar[list[float] | None] = ContextVar(
    "ctiwatch_twilio_retry_after", default=None
)
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,200}$")

T = TypeVar("T")


class TwilioSettings(Protocol):
    """The shape of ``config.alerting.twilio``."""

    @property
    def account_sid(self) -> str: ...
    @property
    def auth_token(self) -> str: ...
    @property
    def from_number(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def webhook_base_url(self) -> str: ...


class RedirectingHttpClient(AsyncHttpClient):  # type: ignore[misc]
    def __init__(self, session: aiohttp.ClientSession, base_url: str, timeout: float = 10.0):
        super().__init__(_logger, True, timeout)
        self._session = session
        self._base_url = base_url.rstrip("/")

    def target(self, url: str) -> str:
        return _TWILIO_ORIGIN.sub(self._base_url, url)

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the twilio interface
        allow_redirects: bool = False,
    ) -> Response:
        all_headers = dict(headers or {})
        key = _sending_key.get()
        if key is not None and method.upper() == "POST":
            all_headers[IDEMPOTENCY_HEADER] = idempotency_token(key)
        if auth:
            all_headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        seconds = timeout if timeout is not None else self.timeout
        async with self._session.request(
            method.upper(),
            self.target(uri),
            params=cast(Any, params),
            data=data,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=seconds),
            allow_redirects=allow_redirects,
        ) as response:
            text = await response.text()
            holder = _retry_after.get()
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if holder is not None and wait is not None:
                holder.append(wait)
            return Response(response.status, text, dict(response.headers))


def twilio_client(settings: TwilioSettings, http_client: RedirectingHttpClient) -> Any:
    """A ``twilio.rest.Client`` using ``http_client``; never reads TWILIO_* from the environment."""
    return Client(
        username=settings.account_sid,
        password=settings.auth_token,
        http_client=http_client,
        environment={"CTIWATCH": "explicit settings only"},
    )


def is_permanent_status(status: int) -> bool:
    """4xx is the request's fault (permanent), except 408 and 429; 5xx is the provider's."""
    return 400 <= status < 500 and status not in (408, 429)


def retry_after_seconds(value: str | None, limit: float = 86_400.0) -> float | None:
    """A ``Retry-After`` of delay-seconds (what Twilio sends with 429), bounded; ``None`` if
    absent or in another form (an HTTP date is not worth trusting a provider's clock for)."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(int(value.strip())), limit)


def idempotency_token(key: str) -> str:
    """The header value for ``key``: the key itself when it is printable ASCII, else a digest."""
    if _HEADER_SAFE.match(key):
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def call_twilio(what: str, call: Awaitable[T], idempotency_key: str | None = None) -> T:
    """Await a twilio client call, mapping every failure to :class:`TransportError`; its POST
    requests carry ``idempotency_key`` (when given) in the ``Idempotency-Key`` header."""
    token = _sending_key.set(idempotency_key)
    waits: list[float] = []
    waits_token = _retry_after.set(waits)
    try:
        return await call
    except (TwilioRestException, TwilioServiceException) as exc:
        status = int(exc.status)
        detail = getattr(exc, "msg", None) or getattr(exc, "title", None) or str(exc)
        wait = waits[-1] if waits and status in (429, 503) else None
        raise TransportError(
            f"{what}: Twilio answered HTTP {status}: {detail}", is_permanent_status(status), wait
        ) from exc
    except TimeoutError as exc:
        raise TransportError(f"{what}: Twilio did not answer in time", False) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"{what}: cannot reach Twilio ({exc})", False) from exc
    except asyncio.CancelledError:
        raise
    finally:
        _retry_after.reset(waits_token)
        _sending_key.reset(token)
