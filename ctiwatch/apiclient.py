"""A small client for the running service's JSON API (``/api/v1``), used by the CLI.

Answers are the API's JSON as plain dicts (times ISO 8601 with the service's local offset).
Two kinds of failure, so the CLI can say which: :class:`ServiceUnreachable` (nothing answered
at the URL, or it did not answer in time) and :class:`ApiError` (the service answered and
refused, with its message and the field at fault).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp

DEFAULT_TIMEOUT = 10.0


class ServiceUnreachable(Exception):
    """Nothing (or nothing in time) answered at ``url``."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the ctiwatch service at {url} ({reason})")
        self.url = url
        self.reason = reason


class ApiError(Exception):
    """The service answered with an error: ``status`` (HTTP), its ``message`` and ``field``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def base_url(text: str) -> str:
    """``text`` as the service's base URL (no trailing slash); ValueError when it is not an
    http(s) URL with a host."""
    url = text.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port  # a bad port raises here
    except ValueError:
        raise ValueError(f"not a URL such as http://127.0.0.1:8080: {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a URL such as http://127.0.0.1:8080: {text!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the URL must not have a query or fragment: {text!r}")
    del port
    return url


def url_for(host: str, port: int, scheme: str = "http") -> str:
    """Where a service listening on ``host:port`` is reached from this machine."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class ApiClient:
    """``async with ApiClient.connect(url) as api: await api.status()``."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: str, request_timeout: float = DEFAULT_TIMEOUT, *, token: str | None = None
    ) -> AsyncIterator[ApiClient]:
        """A client with its own session; each request may take ``request_timeout`` seconds.
        ``token``: the API token sent as ``Authorization: Bearer``."""
        client_timeout = aiohttp.ClientTimeout(total=request_timeout)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        async with aiohttp.ClientSession(timeout=client_timeout, headers=headers) as session:
            yield cls(base_url(url), session)

    # --- reading -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/status")

    async def incidents(
        self, status: str | None = None, customer: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; ``status`` is open, acknowledged, resolved or active."""
        query: dict[str, str] = {}
        if status is not None:
            query["status"] = status
        if customer is not None:
            query["customer"] = customer
        if limit is not None:
            query["limit"] = str(limit)
        body = await self._request("GET", "/api/v1/incidents", params=query)
        incidents = body.get("incidents")
        if not isinstance(incidents, list):
            raise ApiError(200, f"{self.url} did not answer with a list of incidents")
        return incidents

    async def incident(self, number: int) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/incidents/{number}")

    # --- acting ------------------------------------------------------------------------------

    async def act(self, number: int, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``action`` (ack, update, priority, resolve, reopen); the incident after it."""
        return await self._request("POST", f"/api/v1/incidents/{number}/{action}", body=body)

    # Who acts is the token's name (the service records it); no name is sent.

    async def acknowledge(self, number: int) -> dict[str, Any]:
        return await self.act(number, "ack", {})

    async def update(self, number: int, text: str) -> dict[str, Any]:
        return await self.act(number, "update", {"text": text})

    async def change_priority(self, number: int, priority: int, reason: str) -> dict[str, Any]:
        body = {"priority": priority, "reason": reason}
        return await self.act(number, "priority", body)

    async def resolve(self, number: int, reason: str = "", force: bool = False) -> dict[str, Any]:
        """While conditions in its scope still hold, only with ``force`` and a ``reason``."""
        body: dict[str, Any] = {"reason": reason, "force": force}
        return await self.act(number, "resolve", body)

    async def reopen(self, number: int) -> dict[str, Any]:
        return await self.act(number, "reopen", {})

    async def open_question(self, customer: str, text: str) -> int:
        """Open a P4 incident with a question; its number."""
        body = {"customer": customer, "text": text}
        answer = await self._request("POST", "/api/v1/questions", body=body)
        number = answer.get("number")
        if not isinstance(number, int):
            raise ApiError(200, f"{self.url} did not answer with the new incident's number")
        return number

    # --- maintenance ---------------------------------------------------------------------------

    async def maintenance(self) -> list[dict[str, Any]]:
        """Every window with its history, newest start first."""
        body = await self._request("GET", "/api/v1/maintenance")
        windows = body.get("maintenance")
        if not isinstance(windows, list):
            raise ApiError(200, f"{self.url} did not answer with a list of maintenance windows")
        return windows

    async def maintenance_window(self, window_id: int) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/maintenance/{window_id}")

    async def schedule_maintenance(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/maintenance", body=body)

    async def change_maintenance(self, window_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._request("POST", f"/api/v1/maintenance/{window_id}/change", body=body)

    async def cancel_maintenance(self, window_id: int, why: str) -> dict[str, Any]:
        body = {"why": why}
        return await self._request("POST", f"/api/v1/maintenance/{window_id}/cancel", body=body)

    # --- transport ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method, self.url + path, params=params, json=body
            ) as response:
                raw = await response.read()
                status = response.status
                reason = response.reason or ""
        except aiohttp.ClientConnectorError as exc:
            raise ServiceUnreachable(self.url, _connect_reason(exc)) from None
        except TimeoutError:
            raise ServiceUnreachable(self.url, "no answer in time") from None
        except aiohttp.ClientError as exc:
            raise ServiceUnreachable(self.url, str(exc) or type(exc).__name__) from None
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if status >= 400:
            if isinstance(document, dict) and isinstance(document.get("error"), str):
                field = document.get("field")
                raise ApiError(status, document["error"], field if isinstance(field, str) else None)
            raise ApiError(
                status, f"{self.url} answered HTTP {status} {reason}".rstrip() + "; is it ctiwatch?"
            )
        if not isinstance(document, dict):
            raise ApiError(status, f"{self.url} did not answer with JSON; is it ctiwatch?")
        return document


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text)
