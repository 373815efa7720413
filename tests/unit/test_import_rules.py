"""The pure core never does I/O and never reads the clock (docs/architecture.md).

``sla``, ``classifier``, ``incidents`` and the routing side of ``alerting`` (routing, escalation,
messages) are plain synchronous functions on plain values: time comes in as an argument. That is
what lets ``ctiwatch simulate`` run days of virtual time in seconds and tests pin every instant.

The check reads the source (AST), so it sees imports inside functions and under
``TYPE_CHECKING`` too, and it follows the repository's own modules transitively: a pure module
importing a repository module that imports ``twilio`` breaks the rule as much as importing it
directly. Packages and files that do not exist yet are skipped, so the rule applies to each as it
appears.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ("sla", "classifier", "incidents")
PURE_FILES = ("alerting/routing.py", "alerting/escalation.py", "alerting/messages.py")
REPO_PACKAGES = ("sla", "classifier", "incidents", "alerting", "probes", "ctiwatch")

# Top-level modules the pure core must never reach: I/O libraries, the application shell
# (``ctiwatch``: config, storage, clock, web ...) and the wall clock.
FORBIDDEN = frozenset(
    {
        "aiohttp",
        "sqlmodel",
        "sqlalchemy",
        "alembic",
        "twilio",
        "aiomqtt",
        "paho",
        "asyncpg",
        "aiosqlite",
        "aiosmtplib",
        "aiosmtpd",
        "smtplib",
        "requests",
        "httpx",
        "urllib3",
        "socket",
        "subprocess",
        "asyncio",
        "tenacity",
        "ctiwatch",
        "time",
    }
)
FORBIDDEN_DOTTED = frozenset({"urllib.request", "http.client", "http.server"})

# Calls that read the wall clock: ``datetime.now()``, ``date.today()``, ``time.time()`` ...
CLOCK_READS = {
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "sleep"},
}


def pure_files() -> list[Path]:
    files: list[Path] = []
    for package in PURE_PACKAGES:
        if (ROOT / package).is_dir():
            files.extend(sorted((ROOT / package).rglob("*.py")))
    files.extend(ROOT / name for name in PURE_FILES if (ROOT / name).is_file())
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_file(name: str) -> Path | None:
    """The repository file of a module, or ``None`` when it is not one of the repository's."""
    if name.split(".")[0] not in REPO_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Import:
    """One imported name of an import statement: ``module``, and ``loads`` — every module
    executing it loads (parent packages, and ``pkg.sub`` for ``from pkg import sub``)."""

    module: str
    line: int
    loads: tuple[str, ...]


def imports_of(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)),
        key=lambda n: n.lineno,
    )
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, _with_parents(alias.name))
            continue
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, node.module] if node.module else anchor)
        else:
            base = node.module or ""
        # ``from pkg import sub``: ``sub`` may be a module of its own.
        subs = [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        yield Import(base, node.lineno, (*_with_parents(base), *subs))


def _with_parents(dotted: str) -> tuple[str, ...]:
    parts = dotted.split(".")
    return tuple(".".join(parts[:end]) for end in range(1, len(parts) + 1))


def is_forbidden(module: str) -> bool:
    return module.split(".")[0] in FORBIDDEN or any(
        module == dotted or module.startswith(dotted + ".") for dotted in FORBIDDEN_DOTTED
    )


def violations_of(path: Path) -> list[str]:
    """Forbidden modules reached from ``path`` (with the chain of repository modules).

    ``from datetime import time`` loads ``datetime`` (the class ``time``), not the module
    ``time``; ``import time`` / ``from time import monotonic`` load the module.
    """
    found: list[str] = []
    seen: set[Path] = {path}
    queue: list[tuple[Path, list[str]]] = [(path, [module_name(path)])]
    while queue:
        current, chain = queue.pop(0)
        for imported in imports_of(current):
            if is_forbidden(imported.module):
                via = f" (via {' -> '.join(chain)})" if len(chain) > 1 else ""
                where = f"{current.relative_to(ROOT)}:{imported.line}"
                found.append(f"{where} imports {imported.module}{via}")
                continue
            for loaded in imported.loads:
                target = module_file(loaded)
                if target is not None and target not in seen:
                    seen.add(target)
                    queue.append((target, [*chain, loaded]))
    return found


def clock_reads_of(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        owner_name = (
            owner.id
            if isinstance(owner, ast.Name)
            else owner.attr
            if isinstance(owner, ast.Attribute)
            else None
        )
        if owner_name in CLOCK_READS and node.func.attr in CLOCK_READS[owner_name]:
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.append(f"{where} calls {owner_name}.{node.func.attr}()")
    return found


FILES = pure_files()
IDS = [str(path.relative_to(ROOT)) for path in FILES]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_pure_module_reaches_no_io_library_and_no_application_shell(path: Path) -> None:
    assert violations_of(path) == []


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_pure_module_never_reads_the_clock(path: Path) -> None:
    assert clock_reads_of(path) == []


# --- the checker itself ----------------------------------------------------------------------


def write(tmp: Path, name: str, text: str) -> Path:
    target = tmp / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def test_checker_flags_direct_nested_and_type_checking_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    path = write(
        tmp_path,
        "sla/bad.py",
        "from typing import TYPE_CHECKING\n"
        "import aiohttp.web\n"
        "from datetime import time, datetime\n"
        "if TYPE_CHECKING:\n"
        "    from ctiwatch.config import SlaConfig\n"
        "def f():\n"
        "    import time\n"
        "    from sqlalchemy import select\n",
    )
    assert violations_of(path) == [
        "sla/bad.py:2 imports aiohttp.web",
        "sla/bad.py:5 imports ctiwatch.config",
        "sla/bad.py:7 imports time",
        "sla/bad.py:8 imports sqlalchemy",
    ]


def test_checker_follows_repository_modules_and_relative_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    write(tmp_path, "alerting/__init__.py", "")
    write(tmp_path, "alerting/channels/__init__.py", "")
    write(tmp_path, "alerting/channels/sms.py", "from twilio.rest import Client\n")
    write(tmp_path, "alerting/messages.py", "X = 1\n")
    routing = write(
        tmp_path, "alerting/routing.py", "from . import messages\nfrom .channels import sms\n"
    )
    assert violations_of(routing) == [
        "alerting/channels/sms.py:1 imports twilio.rest"
        " (via alerting.routing -> alerting.channels.sms)"
    ]


def test_checker_flags_clock_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    path = write(
        tmp_path,
        "incidents/bad.py",
        "import datetime as dt\n"
        "from datetime import UTC, date, datetime\n"
        "a = datetime.now(UTC)\n"
        "b = dt.datetime.utcnow()\n"
        "c = date.today()\n"
        "d = datetime.fromisoformat('2026-12-01T09:00:00+01:00')\n",
    )
    assert clock_reads_of(path) == [
        "incidents/bad.py:3 calls datetime.now()",
        "incidents/bad.py:4 calls datetime.utcnow()",
        "incidents/bad.py:5 calls date.today()",
    ]
