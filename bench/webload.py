"""The web's clients for the soak (``bench/bench_soak.py``), in their own process.

``python bench/webload.py URL --seconds S --clients C``: C concurrent clients in a closed loop
(each asks again as soon as it is answered), in turn for the status page, ``/api/v1/status``
and ``/healthz``, for S seconds; prints one JSON line: requests, requests/s, latency p50/p99/max
overall and per path, the statuses answered and the requests that failed (no answer).
Imports aiohttp only, so that it starts quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp

WEB_PATHS = ("/", "/api/v1/status", "/healthz")


def percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(url: str, seconds: float, clients: int, token: str = "") -> dict[str, Any]:

    latencies: dict[str, list[float]] = {path: [] for path in WEB_PATHS}
    statuses: Counter[str] = Counter()
    failures = 0
    deadline = time.monotonic() + seconds

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal failures
        n = index
        while time.monotonic() < deadline:
            path = WEB_PATHS[n % len(WEB_PATHS)]
            n += 1
            began = time.perf_counter()
            try:
                async with session.get(url + path) as answer:
                    await answer.read()
                    statuses[str(answer.status)] += 1
            except (aiohttp.ClientError, TimeoutError):
                failures += 1
                await asyncio.sleep(0.1)
                continue
            latencies[path].append(time.perf_counter() - began)

    began = time.monotonic()
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    elapsed = time.monotonic() - began
    every = sorted(x for values in latencies.values() for x in values)
    answer: dict[str, Any] = {
        "requests": len(every),
        "requests_per_s": round(len(every) / elapsed, 1),
        "p50_ms": round(percentile(every, 0.5) * 1000, 1),
        "p99_ms": round(percentile(every, 0.99) * 1000, 1),
        "max_ms": round((every[-1] if every else math.nan) * 1000, 1),
        "statuses": dict(statuses),
        "failures": failures,
        "paths": {},
    }
    for path, values in latencies.items():
        values.sort()
        answer["paths"][path] = {
            "requests": len(values),
            "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        }
    return answer


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--token", default="", help="API token (a viewer's) for the pages")
    args = parser.parse_args(list(argv))
    answer = asyncio.run(load(args.url, args.seconds, args.clients, args.token))
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
