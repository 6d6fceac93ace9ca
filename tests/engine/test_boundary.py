"""The package boundaries, read from the source with `ast`: the sandboxed workflow code does no I/O and no API."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import workflow_engine.engine
from workflow_engine.worker import PASSTHROUGH_MODULES

PACKAGE_ROOT = Path(workflow_engine.engine.__file__).resolve().parents[1]  # .../workflow_engine
WORKFLOW = "workflow_engine.engine.workflow"

# Our code that does I/O or belongs to another process: the worker side, the API, the stores and the settings.
OURS_OFF_LIMITS = (
    "workflow_engine.engine.activities", "workflow_engine.engine.client", "workflow_engine.engine.signing",
    "workflow_engine.api", "workflow_engine.storage", "workflow_engine.payloads", "workflow_engine.audit",
    "workflow_engine.worker", "workflow_engine.settings", "workflow_engine.plugins", "workflow_engine.remote",
    "workflow_engine.cli", "workflow_engine.devserver", "workflow_engine.__main__",
)  # fmt: skip
# Modules that touch files, processes, the network, clocks or randomness: a workflow asks Temporal for those.
IO_MODULES = (
    "os", "io", "sys", "pathlib", "shutil", "tempfile", "glob", "fcntl", "mmap", "subprocess", "signal",
    "multiprocessing", "threading", "concurrent", "socket", "ssl", "select", "selectors", "http", "urllib",
    "requests", "httpx", "aiohttp", "sqlite3", "sqlalchemy", "asyncpg", "aiosqlite", "psycopg", "alembic",
    "time", "random", "secrets", "uuid", "importlib",
)  # fmt: skip
DYNAMIC = "<dynamic import>"


def imported_modules(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (line, module) for every module an import anywhere in `source` may bind, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            yield node.lineno, base
            # `from pkg import name` binds a submodule when `name` is one: check `pkg.name` too.
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            yield node.lineno, DYNAMIC


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module name of a `from ... import`, resolving `.`/`..` against the importing package."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    assert node.level <= len(parts), f"line {node.lineno}: a relative import beyond the top-level package"
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _is_dynamic_import(func: ast.expr) -> bool:
    """Whether a call is `__import__(...)` or `importlib.import_module(...)` (or an imported `import_module`)."""
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name in ("__import__", "import_module")


def violations(source: str, module: str, off_limits: Iterable[str], *, is_package: bool = False) -> list[str]:
    """The imports in `source` (of `module`) that are, or are under, one of `off_limits`; dynamic ones always are."""
    banned = tuple(off_limits)
    return [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(source, module, is_package=is_package)
        if name == DYNAMIC or any(name == b or name.startswith(f"{b}.") for b in banned)
    ]


def _modules(package: str) -> list[tuple[Path, str, bool]]:
    """(file, module name, is a package) for every Python file under `package` (a dotted name under ours)."""
    folder = PACKAGE_ROOT.joinpath(*package.split(".")[1:])
    found = []
    for path in sorted(folder.rglob("*.py")):
        parts = ("workflow_engine", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found.append((path, ".".join(parts[:-1] if is_package else parts), is_package))
    assert found, f"no Python files under {folder}"
    return found


def _package_violations(package: str, off_limits: Iterable[str]) -> list[str]:
    """Every off-limits import in the files of `package`."""
    banned = tuple(off_limits)
    return [
        problem
        for path, module, is_package in _modules(package)
        for problem in violations(path.read_text(), module, banned, is_package=is_package)
    ]


def test_the_sandboxed_workflow_code_imports_no_io_and_no_worker_api_or_storage_code() -> None:
    modules = {module for _, module, _ in _modules(WORKFLOW)}
    assert {f"{WORKFLOW}.interpreter", f"{WORKFLOW}.steps"} <= modules
    assert _package_violations(WORKFLOW, (*OURS_OFF_LIMITS, *IO_MODULES)) == []


def test_the_dsl_the_workflow_builds_on_stays_pure() -> None:
    assert _package_violations("workflow_engine.dsl", ("workflow_engine.engine", *OURS_OFF_LIMITS, *IO_MODULES)) == []


def test_the_api_imports_no_workflow_code() -> None:
    assert _package_violations("workflow_engine.api", (WORKFLOW,)) == []


def test_importing_the_api_and_the_cli_loads_no_workflow_code_even_indirectly() -> None:
    probe = (
        "import sys, workflow_engine.api, workflow_engine.cli\n"
        f"print(sorted(m for m in sys.modules if m == {WORKFLOW!r} or m.startswith({WORKFLOW + '.'!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=PACKAGE_ROOT.parent, capture_output=True, text=True, timeout=60
    )
    assert (loaded.returncode, loaded.stdout.strip()) == (0, "[]"), loaded.stderr[-3000:]


def test_the_sandbox_passes_through_every_engine_package_but_the_workflow_one() -> None:
    assert [m for m in PASSTHROUGH_MODULES if m == WORKFLOW or m.startswith(f"{WORKFLOW}.")] == []
    engine = {f"workflow_engine.engine.{m.name}" for m in pkgutil.iter_modules(workflow_engine.engine.__path__)}
    assert WORKFLOW in engine and len(engine) > 1
    uncovered = [
        m for m in sorted(engine - {WORKFLOW}) if not any(m == p or m.startswith(f"{p}.") for p in PASSTHROUGH_MODULES)
    ]
    assert uncovered == []


SYNTHETIC = """
import asyncio
from datetime import timedelta
from temporalio import workflow
from workflow_engine.dsl import render
from . import steps
from .options import activity_queue

with workflow.unsafe.imports_passed_through():
    from ..client import connect
    from ..types import RunInput

def helper():
    import os.path
    from .. import activities
    from workflow_engine import settings
    return __import__("socket")

class Nested:
    async def run(self):
        import time as clock
        from ...storage.repository import save
"""


def test_the_checker_finds_imports_in_with_blocks_functions_and_relative_forms() -> None:
    found = violations(SYNTHETIC, f"{WORKFLOW}.example", (*OURS_OFF_LIMITS, *IO_MODULES))
    assert [problem.split(" imports ")[1] for problem in found] == [
        "workflow_engine.engine.client", "workflow_engine.engine.client.connect", "os.path",
        "workflow_engine.engine.activities", "workflow_engine.settings", DYNAMIC, "time",
        "workflow_engine.storage.repository", "workflow_engine.storage.repository.save",
    ]  # fmt: skip
    assert found[0] == f"{WORKFLOW}.example:10 imports workflow_engine.engine.client"
    clean = "from . import steps\nfrom ..types import RunInput\nfrom temporalio import workflow\nimport asyncio\n"
    assert violations(clean, f"{WORKFLOW}.example", (*OURS_OFF_LIMITS, *IO_MODULES)) == []


def test_relative_imports_resolve_against_the_package_of_an_init_module() -> None:
    resolved = [
        name for _, name in imported_modules("from .interpreter import Interpreter\n", WORKFLOW, is_package=True)
    ]
    assert resolved == [f"{WORKFLOW}.interpreter", f"{WORKFLOW}.interpreter.Interpreter"]
    assert violations("from ..client import x\n", WORKFLOW, OURS_OFF_LIMITS, is_package=True) == [
        f"{WORKFLOW}:1 imports workflow_engine.engine.client", f"{WORKFLOW}:1 imports workflow_engine.engine.client.x"
    ]  # fmt: skip
