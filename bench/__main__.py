"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench deadlines ...``.

Every module ``bench/bench_<name>.py`` is found by its file name and its ``main()`` called.
Those in :data:`ON_REQUEST` (the soak: half an hour or more) run only when named (``make soak``).
A ``main()`` returning a non-zero number (a goal missed) makes the exit status non-zero.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

ON_REQUEST = frozenset({"soak"})


def available() -> list[str]:
    folder = Path(__file__).resolve().parent
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(folder)])
        if info.name.startswith("bench_")
    )


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    known = available()
    unknown = [name for name in names if name.removeprefix("bench_") not in known]
    if unknown:
        print(
            f"bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    selected = [name.removeprefix("bench_") for name in names] or [
        name for name in known if name not in ON_REQUEST
    ]
    status = 0
    for name in selected:
        print(f"== bench_{name}", flush=True)
        outcome = importlib.import_module(f"bench.bench_{name}").main()
        if isinstance(outcome, int) and outcome:
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
