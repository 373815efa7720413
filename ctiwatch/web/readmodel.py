"""Rendered fragments cached per built view (``StatusView.version``).

The status page and ``/api/v1/status`` are rendered once per view the read model builds and
then served as stored bytes (and their gzip, for clients that accept it) until the next one.
A cached page carries no per-request nonce: its inline style is allowed by its SHA-256 hash
in the page's own Content-Security-Policy, so every request gets the same bytes.

A rendering runs on the event loop in steps (:func:`joined`: a template's ``generate()``, a
document's pieces), handing the loop back every :data:`STEP_SECONDS`, and only the gzip (which
releases the interpreter) in a worker thread: a thread rendering Python code would hold the
interpreter against the loop, which then waits up to a switch interval (5 ms) after each of
its own system calls, and the probes' rounds with it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

# Level 1: about three times faster than 6 on these pages for a few percent more bytes; a view
# of 10,000 targets is compressed once per build, in a worker thread.
GZIP_LEVEL = 1
# How long a rendering runs before it hands the event loop back (the scheduler's rounds wait
# at most about this long for it).
STEP_SECONDS = 0.002

_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)

PAGE_POLICY = (
    "default-src 'none'; style-src {styles}; script-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered answer: its bytes, their gzip, its type and its own CSP (pages)."""

    body: bytes
    gzipped: bytes
    content_type: str
    policy: str | None = None

    def response(self, request: web.Request) -> web.Response:
        headers = {"Vary": "Accept-Encoding"}
        if self.policy is not None:
            headers["Content-Security-Policy"] = self.policy
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = self.gzipped
        else:
            body = self.body
        response = web.Response(body=body, headers=headers)
        response.content_type = self.content_type
        response.charset = "utf-8"
        return response


def _policy(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html)
    )
    return PAGE_POLICY.format(styles=hashes or "'none'")


def page(html: str) -> Rendered:
    """An HTML page whose inline styles are allowed by hash."""
    body = html.encode()
    return Rendered(body, gzip.compress(body, GZIP_LEVEL), "text/html", _policy(html))


def data(text: str, content_type: str = "application/json") -> Rendered:
    body = text.encode()
    return Rendered(body, gzip.compress(body, GZIP_LEVEL), content_type)


async def joined(pieces: Iterable[str], step: float = STEP_SECONDS) -> str:
    """The pieces (a template's ``generate()``, a document's parts) joined, the event loop
    running whenever ``step`` seconds of joining have passed."""
    found: list[str] = []
    clock = time.perf_counter
    until = clock() + step
    for piece in pieces:
        found.append(piece)
        if clock() >= until:
            await asyncio.sleep(0)
            until = clock() + step
    return "".join(found)


async def page_of(pieces: Iterable[str]) -> Rendered:
    """:func:`page`, rendered in steps on the loop, compressed in a worker thread."""
    html = await joined(pieces)
    body = html.encode()
    gzipped = await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL)
    return Rendered(body, gzipped, "text/html", _policy(html))


async def data_of(pieces: Iterable[str], content_type: str = "application/json") -> Rendered:
    """:func:`data`, joined in steps on the loop, compressed in a worker thread."""
    body = (await joined(pieces)).encode()
    gzipped = await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL)
    return Rendered(body, gzipped, content_type)


class FragmentCache:
    """What was rendered from the current view, by name; forgotten when the view changes."""

    def __init__(self) -> None:
        self._version: int | None = None
        self._items: dict[str, Rendered] = {}
        self._rendering: dict[tuple[int, str], asyncio.Future[Rendered]] = {}

    async def fetch(
        self, version: int | None, name: str, render: Callable[[], Awaitable[Rendered]]
    ) -> Rendered:
        """As :meth:`get`, for a rendering that hands the loop back as it goes (:func:`page_of`,
        :func:`data_of`): once per version and name however many requests wait for it."""
        if version is None:
            return await render()
        if version != self._version:
            self._version = version
            self._items = {}
        found = self._items.get(name)
        if found is not None:
            return found
        key = (version, name)
        pending = self._rendering.get(key)
        if pending is None:
            pending = self._rendering[key] = asyncio.ensure_future(render())
            pending.add_done_callback(lambda _: self._rendering.pop(key, None))
        rendered = await asyncio.shield(pending)
        if version == self._version:
            self._items.setdefault(name, rendered)
        return rendered

    def get(self, version: int | None, name: str, render: Callable[[], Rendered]) -> Rendered:
        if version is None:
            return render()
        if version != self._version:
            self._version = version
            self._items = {}
        found = self._items.get(name)
        if found is None:
            found = self._items[name] = render()
        return found
