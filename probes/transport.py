"""The real transport: one shared ``aiohttp.ClientSession`` (keep-alive, connection pool)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

import aiohttp

from probes.base import HttpRequest, HttpResponse, TransportError


class AiohttpTransport:
    """Sends probe requests over ``session``; the session's owner closes it.

    Timeouts are the probe's (``asyncio.timeout`` per attempt), not the session's.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            async with self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                json=request.json,
                allow_redirects=False,
            ) as response:
                not_after = _certificate_expiry(response) if request.url[:6] == "https:" else None
                body = await response.read()
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
    peer = connection.transport.get_extra_info("peercert")
    not_after = peer.get("notAfter") if isinstance(peer, dict) else None
    if not isinstance(not_after, str):
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
