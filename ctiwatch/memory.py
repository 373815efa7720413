"""The C allocator's settings for a long-running ``ctiwatch run`` (glibc only).

glibc's defaults suit short programs: every thread that allocates may get its own arena (up to
eight per core), each holding freed memory of its own, and the threshold above which a block
is mapped on its own (and given back when freed) rises to the largest block freed so far, so
the status renderings' few-megabyte buffers end up in the arenas and stay there. A service with
a few threads (the database's, the gzip workers) and large buffers made once per view keeps
RSS lower with two arenas and a fixed threshold: at 10,000 targets the soak's RSS went from
320 to 294 MB with these two settings alone (``docs/benchmarks.md``, *Soak*).

Set at start, before any thread exists; an operator's own ``MALLOC_ARENA_MAX`` or
``MALLOC_MMAP_THRESHOLD_`` in the environment wins. Elsewhere (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt parameters, from glibc's <malloc.h>
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MiB and more: mapped alone, returned when freed

_SETTINGS = (
    ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENAS),
    ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
)


def tune_allocator(environ: Mapping[str, str] = os.environ, libc: Any = None) -> list[str]:
    """Apply the settings the environment does not set already; the names of those applied
    (none where the C library has no ``mallopt`` or refuses them)."""
    if libc is None:
        try:
            libc = ctypes.CDLL(None)  # the process's own C library
        except OSError:
            return []
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = []
    for name, parameter, value in _SETTINGS:
        if name not in environ and mallopt(parameter, value) == 1:
            applied.append(name)
    return applied
