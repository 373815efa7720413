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
import logging
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

from aiohttp import web

log = logging.getLogger("ctiwatch.web")

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


def page(html: str) -> Rendered:
    """An HTML page whose inline styles are allowed by hash."""
    body = html.encode()
    return Rendered(body, gzip.compress(body, GZIP_LEVEL), "text/html", _policy(html))


def _policy(html: str) -> str:
    """The page's Content-Security-Policy: its inline styles allowed by their hashes."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html)
    )
    return PAGE_POLICY.format(styles=hashes or "'none'")


# Where a shared page holds the viewer's own part (their menu: name, role, CSRF token, admin
# links): rendered per request and spliced in, so the cached bytes name nobody.
SLOT = "<!--ctiwatch:viewer-->"
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime


@dataclass(frozen=True, slots=True)
class Framed:
    """A page every viewer shares, with one hole (:data:`SLOT`) for the viewer's own part.

    The parts around the hole are stored as bytes and as pieces of one gzip member: the head's
    deflate ends on a byte boundary (a sync flush), the viewer's part goes in as a stored
    (uncompressed) block, the tail's deflate ends the stream. A request costs the concatenation
    and the CRC-32 of the viewer's part (the tail's is combined, not recomputed: RFC 1952 wants
    the CRC of the whole), never a compression of the page."""

    head: bytes
    tail: bytes
    head_gz: bytes
    tail_gz: bytes
    head_crc: int
    tail_crc: int
    # Moves a CRC past the tail (x^(8·len(tail)) mod the CRC polynomial, a linear map),
    # as four 256-entry tables, one per byte of the CRC: four look-ups a request.
    tail_shift: tuple[tuple[int, ...], ...]
    policy: str

    def response(self, request: web.Request, viewer: bytes) -> web.Response:
        headers = {"Vary": "Accept-Encoding", "Content-Security-Policy": self.policy}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = self.gzipped(viewer)
        else:
            body = b"".join((self.head, viewer, self.tail))
        response = web.Response(body=body, headers=headers)
        response.content_type = "text/html"
        response.charset = "utf-8"
        return response

    def gzipped(self, viewer: bytes) -> bytes:
        before = zlib.crc32(viewer, self.head_crc)
        t0, t1, t2, t3 = self.tail_shift
        shifted = t0[before & 255] ^ t1[(before >> 8) & 255]
        crc = shifted ^ t2[(before >> 16) & 255] ^ t3[before >> 24] ^ self.tail_crc
        size = (len(self.head) + len(viewer) + len(self.tail)) & 0xFFFFFFFF
        return b"".join(
            (self.head_gz, _stored_blocks(viewer), self.tail_gz, struct.pack("<II", crc, size))
        )


def framed(html: str) -> Framed:
    """A shared page (:func:`page`'s policy) with exactly one :data:`SLOT` for the viewer."""
    head_text, slot, tail_text = html.partition(SLOT)
    if not slot or SLOT in tail_text:
        raise ValueError("a framed page holds exactly one viewer slot")
    policy = _policy(head_text + tail_text)
    head, tail = head_text.encode(), tail_text.encode()
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    head_gz = _GZIP_HEADER + deflate.compress(head) + deflate.flush(zlib.Z_SYNC_FLUSH)
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    tail_gz = deflate.compress(tail) + deflate.flush(zlib.Z_FINISH)
    return Framed(
        head,
        tail,
        head_gz,
        tail_gz,
        zlib.crc32(head),
        zlib.crc32(tail),
        _shift_tables(_x8nmodp(len(tail))),
        policy,
    )


def _stored_blocks(data: bytes) -> bytes:
    """``data`` as non-final stored deflate blocks (RFC 1951 3.2.4), from a byte boundary."""
    out = []
    for at in range(0, len(data), 0xFFFF):
        chunk = data[at : at + 0xFFFF]
        out.append(struct.pack("<BHH", 0, len(chunk), len(chunk) ^ 0xFFFF) + chunk)
    return b"".join(out)


# CRC-32 combination as zlib's crc32_combine does it (GF(2) polynomials, reflected).
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a·b modulo the CRC-32 polynomial."""
    m, p = 1 << 31, 0
    while a:
        if a & m:
            p ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x8nmodp(n: int) -> int:
    """x^(8·n) modulo the CRC-32 polynomial: the operator that appends ``n`` zero bytes."""
    p = 1 << 31  # x^0
    power = _multmodp(1 << 30, 1 << 30)  # x^2
    power = _multmodp(power, power)  # x^4
    power = _multmodp(power, power)  # x^8: one byte
    while n:
        if n & 1:
            p = _multmodp(power, p)
        n >>= 1
        power = _multmodp(power, power)
    return p


def _shift_tables(operator: int) -> tuple[tuple[int, ...], ...]:
    """``crc -> operator·crc`` as four tables by byte: the map is linear over GF(2), so the
    image of a CRC is the XOR of its bytes' images."""
    tables = []
    for byte in range(4):
        basis = [_multmodp(operator, 1 << (8 * byte + bit)) for bit in range(8)]
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value  # its lowest set bit, and the rest already computed
            table[value] = table[value ^ low] ^ basis[low.bit_length() - 1]
        tables.append(tuple(table))
    return tuple(tables)


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A+B from A's CRC, B's CRC and B's length."""
    return _multmodp(_x8nmodp(len2), crc1) ^ crc2


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


async def framed_of(pieces: Iterable[str]) -> Framed:
    """:func:`framed`, rendered in steps on the loop, framed and compressed in a worker thread
    (the compression releases the interpreter)."""
    return await asyncio.to_thread(framed, await joined(pieces))


R = TypeVar("R", Rendered, Framed)


class FragmentCache:
    """What was rendered from the current view, by name; forgotten when the view changes.

    Views of one *epoch* differ only in their figures (``StatusView.epoch``: the console
    begins a new one whenever a caller had to wait for a view). A request for a view with no
    rendering yet gets the last rendering of the same epoch at once and the view is rendered
    behind it; only the first rendering of an epoch is waited for (by every request that
    asks meanwhile, one rendering for all)."""

    def __init__(self) -> None:
        self._version: int | None = None
        self._items: dict[str, Rendered | Framed] = {}
        self._rendering: dict[tuple[int, str], asyncio.Future[Rendered | Framed]] = {}
        # The newest rendering per name: (its view's version, its epoch, the rendering).
        self._last: dict[str, tuple[int, int | None, Rendered | Framed]] = {}
        self._epoch = -1  # the newest epoch asked for

    async def fetch(
        self,
        version: int | None,
        name: str,
        render: Callable[[], Awaitable[R]],
        epoch: int | None = None,
    ) -> R:
        """What ``render`` makes of view ``version`` (of ``epoch``; ``None``: never answered
        from another view), kept under ``name`` until the view changes (``None``: not cached),
        once per version and name however many requests ask for it. A rendering hands the
        loop back as it goes (:func:`page_of`, :func:`data_of`, :func:`framed_of`)."""
        if version is None:
            return await render()
        if version != self._version:
            self._version = version
            self._items = {}
        if epoch is not None and epoch > self._epoch:  # what older epochs rendered is done with
            self._epoch = epoch
            self._last = {n: last for n, last in self._last.items() if last[1] == epoch}
        found = self._items.get(name)
        if found is not None:
            return cast(R, found)
        key = (version, name)
        pending = self._rendering.get(key)
        if pending is None:
            pending = self._rendering[key] = asyncio.ensure_future(render())
            pending.add_done_callback(lambda done: self._rendered(key, epoch, done))
        last = self._last.get(name)
        if epoch is not None and last is not None and last[1] == epoch:
            return cast(R, last[2])  # this view is rendered behind the last of its epoch
        return cast(R, await asyncio.shield(pending))

    def _rendered(
        self, key: tuple[int, str], epoch: int | None, done: asyncio.Future[Rendered | Framed]
    ) -> None:
        self._rendering.pop(key, None)
        if done.cancelled():
            return
        if (error := done.exception()) is not None:
            log.error("rendering %s failed: %s", key[1], error, exc_info=error)
            return
        version, name = key
        rendered = done.result()
        if version == self._version:
            self._items.setdefault(name, rendered)
        last = self._last.get(name)
        if last is None or last[0] <= version:
            self._last[name] = (version, epoch, rendered)
