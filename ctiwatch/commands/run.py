"""``ctiwatch run [--config FILE]``: the service (``make run``), until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from ctiwatch.app import Ctiwatch
from ctiwatch.config import Config, load_config
from ctiwatch.logs import secrets_of, setup_logging
from ctiwatch.memory import tune_allocator
from ctiwatch.single import AnotherRun
from ctiwatch.storage import StorageError

log = logging.getLogger("ctiwatch.run")
_CHATTY = ("aiohttp.access", "mail.log")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run ctiwatch: probes, incidents, alerts, the status page and console",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="configuration file (default: embedded defaults)"
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    tune_allocator()  # before any thread exists
    config = load_config(args.config)
    setup_logging(config.logging, os.environ, secrets=secrets_of(config))
    if logging.getLogger().level > logging.DEBUG:
        # The in-process fakes narrate every request and SMTP command at INFO.
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
    return asyncio.run(run(config))


async def run(config: Config) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 1 when ctiwatch could not run, 2 when
    another ``ctiwatch run`` uses the same SQLite file."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await Ctiwatch(config).run(stop)
    except AnotherRun as exc:
        _fail(str(exc))
        return 2
    except StorageError as exc:
        _fail(str(exc))
        return 1
    except OSError as exc:
        _fail(exc.strerror or str(exc))
        return 1
    except Exception as exc:
        log.error("ctiwatch stopped on an error", exc_info=exc)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


def _fail(message: str) -> None:
    log.error(message)
    print(f"error: {message}", file=sys.stderr)
