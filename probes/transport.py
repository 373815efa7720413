"""The real transport: one shared ``aiohttp.ClientSession`` (keep-alive, connection pool).

Make the session with :func:`probe_session`: its responses note the server's certificate
expiry as the answer starts (:class:`TlsResponse`). aiohttp hands a small answer's connection
back to the pool as soon as its body is in, so by the time a caller looks at
``response.connection`` it is usually gone, and the certificate with it.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

import aiohttp
from aiohttp.connector import Connection
from yarl import URL

from probes.base import HttpRequest, HttpResponse, TransportError

_CACHE_LIMIT = 65_536
# The most of an answer's body a probe reads: an API's answer or a health page is far smaller.
MAX_BODY = 1 << 20
# The probe's own ``asyncio.timeout`` bounds every attempt; the session's default total
# timeout would only add a second timer to every request.
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=None)


class TlsResponse(aiohttp.ClientResponse):
    """A response that keeps the expiry of the server's verified TLS certificate."""

    tls_not_after: datetime | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        if transport is not None:
            self.tls_not_after = _not_after(transport.get_extra_info("peercert"))
        return await super().start(connection)


def probe_session(connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """The probes' session: its responses carry the certificate expiry (``TlsResponse``)."""
    return aiohttp.ClientSession(connector=connector, response_class=TlsResponse)


class _Prepared(NamedTuple):
    """What aiohttp needs for one request, derived once: parsed URL, encoded JSON body."""

    request: HttpRequest  # held so that its id() is not reused while cached
    url: URL
    headers: Mapping[str, str]
    body: bytes | None


class AiohttpTransport:
    """Sends probe requests over ``session``; the session's owner closes it.

    Timeouts are the probe's (``asyncio.timeout`` per attempt), not the session's.
    Probes send the same request objects round after round (``cached_request``), so the parsed
    URL and the encoded JSON body are kept per request object (bounded) instead of being
    redone for every send.
    """

    def __init__(self, session: aiohttp.ClientSession, max_body: int = MAX_BODY) -> None:
        self._session = session
        self._max_body = max_body
        self._prepared: dict[int, _Prepared] = {}

    async def _bounded(self, response: aiohttp.ClientResponse, length: int | None) -> bytes:
        """The body of an answer that did not say how long it is (or said too long), read up
        to ``max_body``: an endpoint that sends without end is a failed round, not a process
        out of memory."""
        limit = self._max_body
        if length is not None:
            raise TransportError(f"the answer's body is {length} bytes, over {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65_536):
            size += len(chunk)
            if size > limit:
                raise TransportError(f"the answer's body is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _prepare(self, request: HttpRequest) -> _Prepared:
        prepared = self._prepared.get(id(request))
        if prepared is not None and prepared.request is request:
            return prepared
        headers = request.headers
        body = None
        if request.json is not None:
            body = json.dumps(request.json).encode()
            if not any(name.lower() == "content-type" for name in headers):
                headers = {**headers, "Content-Type": "application/json"}
        prepared = _Prepared(request, URL(request.url), headers, body)
        if len(self._prepared) >= _CACHE_LIMIT:
            self._prepared.clear()
        self._prepared[id(request)] = prepared
        return prepared

    async def send(self, request: HttpRequest) -> HttpResponse:
        prepared = self._prepare(request)
        try:
            async with self._session.request(
                request.method,
                prepared.url,
                headers=prepared.headers,
                data=prepared.body,
                allow_redirects=False,
                timeout=_NO_TIMEOUT,
            ) as response:
                not_after = None
                if request.url[:6] == "https:":
                    not_after = getattr(response, "tls_not_after", None)
                    if not_after is None:  # a session of another response class
                        not_after = _certificate_expiry(response)
                length = response.content_length
                if length is not None and length <= self._max_body:
                    body = await response.read()
                else:
                    body = await self._bounded(response, length)
                return HttpResponse(response.status, body, response.headers, not_after)
        except aiohttp.ClientError as exc:
            raise TransportError(_describe(exc)) from exc
        except OSError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without an answer"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _certificate_expiry(response: aiohttp.ClientResponse) -> datetime | None:
    connection = response.connection
    if connection is None or connection.transport is None:
        return None
    return _not_after(connection.transport.get_extra_info("peercert"))


def _not_after(peer: object) -> datetime | None:
    # ``peercert`` is a dict only for a certificate that was verified.
    not_after = peer.get("notAfter") if isinstance(peer, dict) else None
    if not isinstance(not_after, str):
        return None
    try:
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    except ValueError:
        return None
