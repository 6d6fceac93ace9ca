"""Which functions `python` tasks may call: a literal `module:function` of an allowed, never-refused module.

The allowed modules are data the caller computes (the API and CLI from settings and the workflows
directory, the worker from its own): this module stays pure. Modules that run programs, touch files,
open sockets, load code or reach our own infrastructure are refused whatever the settings say.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

SETTINGS_HINT = "WORKFLOWS_DIR, PLUGINS or PYTHON_MODULES"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Each entry refuses the module and its submodules. The C modules behind public ones (`_io`, `_pickle`,
# `posix`) are listed too: a re-exported function's `__module__` names them, not the public module.
REFUSED_MODULES = frozenset(
    {
        # processes, signals, threads, debuggers: run programs or take the worker over
        "os", "posix", "nt", "subprocess", "_posixsubprocess", "pty", "tty", "termios", "fcntl", "resource",
        "signal", "_signal", "multiprocessing", "_multiprocessing", "concurrent", "asyncio", "_asyncio",
        "threading", "_thread", "sched", "webbrowser", "faulthandler", "atexit", "pdb", "bdb", "cProfile",
        "profile", "trace", "timeit", "doctest", "unittest", "pwd", "grp", "spwd",
        # the interpreter itself: load, compile or run code, reach any object
        "builtins", "_sitebuiltins", "site", "sys", "sysconfig", "importlib", "_imp", "imp", "_frozen_importlib",
        "_frozen_importlib_external", "pkgutil", "zipimport", "runpy", "code", "codeop", "compileall",
        "py_compile", "pydoc", "inspect", "types", "ctypes", "_ctypes", "cffi", "gc", "marshal", "pickle",
        "_pickle", "copyreg", "shelve", "dill", "cloudpickle", "joblib", "yaml", "_yaml",
        # files
        "io", "_io", "_pyio", "pathlib", "shutil", "tempfile", "glob", "fileinput", "linecache", "tokenize",
        "codecs", "mmap", "dbm", "sqlite3", "_sqlite3", "tarfile", "zipfile", "gzip", "bz2", "lzma", "zipapp",
        "posixpath", "ntpath", "genericpath", "filecmp", "netrc", "mailbox", "logging",
        # network: egress goes through `http_request` and its policy
        "socket", "_socket", "ssl", "_ssl", "select", "selectors", "socketserver", "http", "urllib", "ftplib",
        "smtplib", "poplib", "imaplib", "nntplib", "telnetlib", "xmlrpc", "wsgiref", "asynchat", "asyncore",
        "smtpd", "requests", "httpx", "httpcore", "urllib3", "aiohttp", "grpc",
        # our own infrastructure and installers
        "workflow_engine", "temporalio", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "psycopg", "psycopg2",
        "uvicorn", "fastapi", "starlette", "pip", "setuptools", "distutils", "ensurepip", "venv",
    }
)  # fmt: skip


class RefusedReference(ValueError):
    """A `config.function` value that is not a callable reference this policy accepts."""


def refused_module(module: str) -> str | None:
    """Return the refused entry `module` falls under (itself or a parent package), or None."""
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if prefix in REFUSED_MODULES:
            return prefix
    return None


def is_allowed(module: str, allowed: Collection[str]) -> bool:
    """Whether `module` is one of `allowed` or a submodule of one."""
    return any(module == name or module.startswith(f"{name}.") for name in allowed)


def parse_reference(reference: object) -> tuple[str, str]:
    """Split a literal `module:function` into its parts, refusing private names and refused modules.

    Raises:
        RefusedReference: The reference is not a literal `module:function`, names something private
            (`_` prefix) or a module that is always refused.
    """
    if not isinstance(reference, str):
        raise RefusedReference("must be a string 'module:function' (e.g. orders:validate)")
    if "${{" in reference:
        raise RefusedReference(
            "must be a literal 'module:function', not an expression: which code a task runs is checked at registration"
        )
    module, sep, attr = reference.partition(":")
    parts = module.split(".")
    if not sep or ":" in attr or not all(_NAME.match(part) for part in (*parts, attr)):
        raise RefusedReference(f"{reference!r} is not 'module:function' with Python names (e.g. orders:validate)")
    private = next((part for part in (*parts, attr) if part.startswith("_")), None)
    if private is not None:
        raise RefusedReference(f"{private!r} starts with '_': private names cannot be called")
    refused = refused_module(module)
    if refused is not None:
        raise RefusedReference(refused_message(module, refused))
    return module, attr


def refused_message(module: str, refused: str) -> str:
    """Explain that `module` (under the refused entry `refused`) can never be called."""
    under = "" if module == refused else f" (part of {refused!r})"
    return (
        f"module {module!r}{under} is never allowed in python tasks, whatever PYTHON_MODULES says: it can run "
        "programs, touch files or the network, or load code; use a function of your own in WORKFLOWS_DIR"
    )


def not_allowed_message(module: str) -> str:
    """Explain that `module` is not in WORKFLOWS_DIR, PLUGINS or PYTHON_MODULES, and how to allow it."""
    root = module.split(".")[0]
    return (
        f"module {module!r} is not allowed: python tasks call functions of modules in {SETTINGS_HINT}; "
        f"put the module in WORKFLOWS_DIR or add {root!r} to PYTHON_MODULES"
    )


def reference_problem(reference: object, allowed: Collection[str] | None) -> str | None:
    """Return why `reference` may not be called, or None; `allowed=None` skips the allowlist (not the rest)."""
    try:
        module, _ = parse_reference(reference)
    except RefusedReference as exc:
        return str(exc)
    if allowed is not None and not is_allowed(module, allowed):
        return not_allowed_message(module)
    return None


def _python_tasks(data: dict[str, Any]) -> Iterator[tuple[Loc, dict[str, Any]]]:
    for section in ("tasks", "on_failure"):
        tasks = data.get(section)
        for i, task in enumerate(tasks if isinstance(tasks, list) else []):
            if (
                isinstance(task, dict)
                and task.get("type", "activity") == "activity"
                and task.get("activity_type") == "python"
            ):
                yield (section, i), task


def check_python_tasks(data: dict[str, Any], allowed: Collection[str] | None) -> list[Problem]:
    """Return a problem at `tasks[i].config.function` for every python task calling what it may not."""
    problems: list[Problem] = []
    for where, task in _python_tasks(data):
        config = task.get("config", {})
        if not isinstance(config, dict):
            continue  # the schema pass reports a config that is not a mapping
        if "function" not in config:
            problems.append(((*where, "config", "function"), "python tasks need config.function 'module:function'"))
            continue
        problem = reference_problem(config["function"], allowed)
        if problem is not None:
            problems.append(((*where, "config", "function"), problem))
    return problems
