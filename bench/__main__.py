"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench deadlines ...``.

Every module ``bench/bench_<name>.py`` is found by its file name and its ``main()`` called.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path


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
    selected = [name.removeprefix("bench_") for name in names] or known
    for name in selected:
        print(f"== bench_{name}", flush=True)
        importlib.import_module(f"bench.bench_{name}").main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
