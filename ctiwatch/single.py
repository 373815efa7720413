"""One ``ctiwatch run`` per SQLite file: a lock file beside the database.

SQLite is the single-process default: two processes running the monitor on one file would
each allocate incident numbers and send each other's pages. ``ctiwatch run`` holds an
exclusive ``flock`` on ``<database>.lock`` for as long as it runs (the kernel drops it when the
process ends, however it ends) and writes its pid there; a second one is refused at start,
naming the file and the pid holding it. Several workers need PostgreSQL (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url


class AnotherRun(Exception):
    """Another ``ctiwatch run`` uses this SQLite file."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite storage URL, or ``None`` for any other database."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


@contextlib.contextmanager
def only_run(url: str) -> Iterator[None]:
    """Hold the lock of ``url``'s SQLite file while the block runs (nothing for PostgreSQL);
    :class:`AnotherRun` if another process holds it."""
    database = sqlite_file(url)
    if database is None:
        yield
        return
    lock = database.with_name(database.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AnotherRun(
                f"another ctiwatch run is using {database} (pid {holder}); "
                "one process per SQLite file (several workers need PostgreSQL)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
