"""What one log line costs when a field is huge (goal: 1 MB logged in milliseconds).

The issue: the old secret-redaction regex was quadratic (8 KB 2.5 s, 16 KB 11 s), so an
unauthenticated ``POST /twilio/sms?<8,000 characters>`` stalled the event loop. Each case logs one
record through the real handler (key=value and JSON) with a 1 MB message, a 1 MB extra and a
1 MB exception text, shaped as the attacks were: one long word, a query string, ``token="``
repeated (the worst case of the old pattern), URLs without ``@``. Also the whole-text redaction
(:meth:`Redactor.text`, used where nothing is cut) on the same inputs, to show it is linear: the
time per megabyte stays the same from 64 KB to 1 MB. Best of several passes.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from functools import partial

from ctiwatch.config import LoggingConfig
from ctiwatch.logs import Redactor, setup_logging

PASSES = 5
MEGABYTE = 1_000_000


def _inputs(size: int) -> dict[str, str]:
    return {
        "one long word": "a" * size,
        "query string": "&".join(f"k{i}=v{i}" for i in range(size // 8))[:size],
        'token=" repeated': ('token="' * (size // 7 + 1))[:size],
        "URLs without @": ("a://b:c " * (size // 8 + 1))[:size],
        "prose": ("probe crm acme/ams/alice failed: status 503 in 12 ms; " * (size // 50))[:size],
    }


def _best(action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def _log_line_ms(fmt: str, text: str) -> float:
    stream = io.StringIO()
    handler = setup_logging(LoggingConfig(level="INFO", format=fmt), {}, stream=stream)
    log = logging.getLogger("bench.logging")
    try:

        def one_line() -> None:
            stream.seek(0)
            stream.truncate()
            try:
                raise ValueError(text)
            except ValueError:
                log.warning(text, exc_info=True, extra={"topic": text})

        seconds = _best(one_line)
        assert len(stream.getvalue()) < 40_000, "a log line must stay bounded"
    finally:
        logging.getLogger().removeHandler(handler)
    return 1000 * seconds


def main() -> None:
    print("one log record with a 1 MB message, a 1 MB extra and a 1 MB exception text")
    print(f"{'input':20} {'key=value ms':>13} {'json ms':>9}")
    for name, text in _inputs(MEGABYTE).items():
        kv = _log_line_ms("kv", text)
        js = _log_line_ms("json", text)
        print(f"{name:20} {kv:13.2f} {js:9.2f}")
    print()
    print("whole-text redaction (Redactor.text), ms per MB at each size: linear if flat")
    sizes = (64_000, 256_000, MEGABYTE)
    print(f"{'input':20} " + " ".join(f"{size // 1000:>7} KB" for size in sizes))
    redactor = Redactor(["0123456789abcdef"])
    for name in _inputs(1000):
        per_mb = []
        for size in sizes:
            text = _inputs(size)[name]
            seconds = _best(partial(redactor.text, text))
            per_mb.append(1000 * seconds * MEGABYTE / size)
        print(f"{name:20} " + " ".join(f"{figure:10.1f}" for figure in per_mb))


if __name__ == "__main__":
    main()
