"""Configured HTTP checks against real sockets: a local aiohttp server over TLS with a
self-signed certificate that expires in five days (made with openssl), and one over plain
HTTP. The targets come from a configuration (``probes.checks``) and run through the real
probe, ``AiohttpTransport`` and conditions; only the clock is the machine's.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ci import unavailable

from classifier.observation import Service
from ctiwatch.clock import RealClock
from ctiwatch.config import config_from_data
from ctiwatch.settings import targets_from_config
from probes import AiohttpTransport, ProbeContext, ProbeTarget
from probes.registry import PROBES
from probes.transport import probe_session

KEY = "portal-secret-from-env"


def self_signed(folder: Path, days: int) -> tuple[Path, Path, datetime]:
    """A certificate for 127.0.0.1 valid ``days`` days, its key, and its expiry."""
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notAfter"]), UTC)
    return cert, key, expires


class Portal:
    """An endpoint of the platform: answers ``/<customer>/health`` when the key is right."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def health(self, request: web.Request) -> web.Response:
        key = request.headers.get("X-Portal-Key")
        self.seen.append((request.path, key))
        if key != KEY:
            return web.json_response({"error": "unauthorised"}, status=401)
        return web.json_response({"status": "ok", "customer": request.match_info["customer"]})


async def serve(portal: Portal, ssl_context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/{customer}/health", portal.health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


def check_targets(url: str, **check: Any) -> list[ProbeTarget]:
    config = config_from_data(
        {
            "probes": {
                "checks": [
                    {
                        "id": "portal",
                        "url": url,
                        "headers": {"X-Portal-Key": "${PORTAL_KEY}"},
                        "conditions": ["[STATUS] == 200", "[BODY].customer == {customer}"],
                        **check,
                    }
                ]
            },
            "topology": {
                "customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["alice"]}]}]
            },
        },
        environ={"PORTAL_KEY": KEY},
    )
    return [t for t in targets_from_config(config) if t.key.service is Service.HTTP]


@pytest.fixture
async def tls_portal(tmp_path: Path) -> AsyncIterator[tuple[Portal, int, Path, datetime]]:
    cert, key, expires = self_signed(tmp_path, days=5)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    portal = Portal()
    runner, port = await serve(portal, server)
    try:
        yield portal, port, cert, expires
    finally:
        await runner.cleanup()


async def probe(target: ProbeTarget, trust: Path | None = None) -> Any:
    context = ssl.create_default_context(cafile=str(trust)) if trust else None
    connector = aiohttp.TCPConnector(ssl=context) if context else aiohttp.TCPConnector()
    async with probe_session(connector) as session:
        ctx = ProbeContext(RealClock(), timeout=5, retries=0)
        return await PROBES[target.kind](target, AiohttpTransport(session), ctx)


async def test_a_certificate_expiring_within_the_warning_fails_the_check_with_its_date(
    tls_portal: tuple[Portal, int, Path, datetime],
) -> None:
    portal, port, cert, expires = tls_portal
    (target,) = check_targets(
        f"https://127.0.0.1:{port}/{{customer}}/health", certificate_warning_days=14
    )
    result = await probe(target, trust=cert)
    assert (result.ok, result.recognised, result.status) == (False, None, 200)
    assert portal.seen == [("/acme/health", KEY)]  # the key from the environment
    shown = f"{expires:%Y-%m-%d %H:%M} UTC"
    assert re.fullmatch(
        rf"GET https://127\.0\.0\.1:{port}/acme/health \[STATUS\] \(200\) == 200, "
        rf"\[BODY\]\.customer \(acme\) == acme, "
        rf"\[CERTIFICATE_EXPIRATION\] \((5\.0|4\.9)d, expires {shown}\) > 14d; "
        r"[0-9.]+ ms; 1 attempt",
        result.evidence,
    ), result.evidence


async def test_a_certificate_outside_the_warning_passes(
    tls_portal: tuple[Portal, int, Path, datetime],
) -> None:
    _, port, cert, _ = tls_portal
    (target,) = check_targets(
        f"https://127.0.0.1:{port}/{{customer}}/health", certificate_warning_days=3
    )
    result = await probe(target, trust=cert)
    assert result.ok is True
    assert ") > 3d; " in result.evidence


async def test_a_certificate_that_does_not_verify_is_no_answer(
    tls_portal: tuple[Portal, int, Path, datetime],
) -> None:
    _, port, _, _ = tls_portal
    (target,) = check_targets(f"https://127.0.0.1:{port}/{{customer}}/health")
    result = await probe(target)  # the system's CAs do not know the self-signed certificate
    assert (result.ok, result.status) == (False, None)
    assert "no answer:" in result.evidence
    assert "certificate verify failed" in result.evidence.lower()


async def test_a_plain_http_check_prints_actual_and_expected() -> None:
    portal = Portal()
    runner, port = await serve(portal, None)
    try:
        (target,) = check_targets(
            f"http://127.0.0.1:{port}/{{customer}}/health",
            headers={"X-Portal-Key": "wrong"},
        )
        result = await probe(target)
    finally:
        await runner.cleanup()
    assert (result.ok, result.status) == (False, 401)
    assert re.fullmatch(
        rf"GET http://127\.0\.0\.1:{port}/acme/health \[STATUS\] \(401\) == 200; "
        r"[0-9.]+ ms; 1 attempt",
        result.evidence,
    ), result.evidence


async def test_an_endless_or_huge_answer_is_a_failed_round_not_a_full_memory() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length
        await response.prepare(request)
        chunk = b"x" * 65_536
        for _ in range(64):  # 4 MiB, over the 1 MiB the probe reads
            await response.write(chunk)
        return response

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * (2 << 20))

    app = web.Application()
    app.router.add_get("/{customer}/endless", endless)
    app.router.add_get("/{customer}/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        (chunked,) = check_targets(f"http://127.0.0.1:{port}/{{customer}}/endless")
        (declared,) = check_targets(f"http://127.0.0.1:{port}/{{customer}}/huge")
        first = await probe(chunked)
        second = await probe(declared)
    finally:
        await runner.cleanup()
    assert (first.ok, first.status) == (False, None)
    assert "no answer: the answer's body is over 1048576 bytes;" in first.evidence
    assert (second.ok, second.status) == (False, None)
    assert "no answer: the answer's body is 2097152 bytes, over 1048576;" in second.evidence
