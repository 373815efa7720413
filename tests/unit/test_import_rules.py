"""The import rules of docs/architecture.md hold: the import-linter contracts in pyproject.toml
(``[tool.importlinter]``) are kept, they cover every package of the repository, and a contract
that names a module that does not exist fails instead of being skipped.

The pure core also never reads the wall clock (``datetime.now()`` ...): time comes in as an
argument. That is not an import, so it is checked here on the source.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SETTINGS = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
# Top-level folders holding Python that are not part of the product's import graph.
NOT_PRODUCT = {"tests", "bench", "scripts", "docs", "config", "docker"}

CLOCK_READS = {
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "sleep"},
}


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(PYPROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    kept = len(SETTINGS["contracts"])
    assert f"Contracts: {kept} kept, 0 broken." in result.stdout


def test_the_contracts_cover_every_package_of_the_repository() -> None:
    packages = sorted(
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_PRODUCT
    )
    assert sorted(SETTINGS["root_packages"]) == packages


def test_a_contract_naming_a_missing_module_fails(tmp_path: Path) -> None:
    text = PYPROJECT.read_text(encoding="utf-8")
    marker = '  "alerting.model",\n'
    assert marker in text
    config = tmp_path / "pyproject.toml"
    config.write_text(text.replace(marker, marker + '  "alerting.gone",\n', 1), encoding="utf-8")
    result = lint_imports(config)
    assert result.returncode == 1
    assert "Module 'alerting.gone' does not exist." in result.stdout + result.stderr


def _pure_files() -> list[Path]:
    pure = next(c for c in SETTINGS["contracts"] if c["id"] == "pure-core")
    files: list[Path] = []
    for module in pure["source_modules"]:
        base = ROOT.joinpath(*module.split("."))
        if base.is_dir():
            files.extend(sorted(base.rglob("*.py")))
        else:
            assert base.with_suffix(".py").is_file(), f"{module} is listed but does not exist"
            files.append(base.with_suffix(".py"))
    return files


def clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = (
            owner.id
            if isinstance(owner, ast.Name)
            else owner.attr
            if isinstance(owner, ast.Attribute)
            else None
        )
        if name in CLOCK_READS and node.func.attr in CLOCK_READS[name]:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {name}.{node.func.attr}()")
    return found


def test_the_pure_core_never_reads_the_clock() -> None:
    files = _pure_files()
    assert len(files) > 20
    assert [read for path in files for read in clock_reads(path)] == []
