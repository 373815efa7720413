"""SQLite is the single-process default: while one ``ctiwatch run`` uses a SQLite file, a second
one on the same file is refused at start, naming the file and the pid that holds it (exit 2);
once the first is gone, the file is free again. Several workers need PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml
from running_app import WAIT_SECONDS, free_ports

from ctiwatch.single import AnotherRun, only_run

ROOT = Path(__file__).resolve().parent.parent.parent


def write_config(tmp_path: Path, database: Path) -> Path:
    [web] = free_ports(1)
    data = {
        "topology": {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["a"]}]}]},
        "storage": {"url": f"sqlite+aiosqlite:///{database}"},
        "simulator": {"enabled": False},
        "mqtt": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": web},
    }
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_a_second_run_on_one_sqlite_file_is_refused_naming_the_file_and_the_pid(
    tmp_path: Path,
) -> None:
    database = tmp_path / "var" / "ctiwatch.db"
    config = write_config(tmp_path, database)
    with only_run(f"sqlite+aiosqlite:///{database}"):  # the first run: this process
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ctiwatch", "run", "--config", str(config),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
    assert process.returncode == 2
    error = stderr.decode()
    assert f"another ctiwatch run is using {database} (pid {os.getpid()})" in error
    assert "Traceback" not in error
    assert not database.exists()  # refused before it opened (or migrated) anything

    # The first one gone, the file is free again.
    with only_run(f"sqlite+aiosqlite:///{database}"):
        pass


def test_one_process_holding_the_file_refuses_a_second_holder_until_it_lets_go(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with only_run(url), pytest.raises(AnotherRun, match=r"x\.db \(pid \d+\)"), only_run(url):
        pass
    with only_run(url), only_run("postgresql://postgres@127.0.0.1/test"):
        pass  # PostgreSQL takes no lock file: several workers are its case
