"""Import of user modules (the workflows directory first, then installed packages) and of `python` task functions.

A `python` task may call a function of a module in WORKFLOWS_DIR, of a PLUGINS module or of a module
named in PYTHON_MODULES, never of a module `dsl/python_policy.py` refuses. Registration checks the
names; `resolve_function` checks again in the worker, where the function is actually looked up.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from workflow_engine.dsl.python_policy import (
    RefusedReference,
    is_allowed,
    not_allowed_message,
    parse_reference,
    refused_message,
    refused_module,
)
from workflow_engine.settings import Settings

# How many wrapped or bound objects of one callable are looked at (a chain of decorators is short).
_MAX_ORIGINS = 32


class FunctionRefused(Exception):
    """A `python` task function the policy refuses (the message names the setting to change)."""


class FunctionNotFound(LookupError):
    """An allowed module without the callable a `python` task names."""


def workflows_modules(workflows_dir: Path) -> tuple[str, ...]:
    """Return the top-level modules of `workflows_dir`: `*.py` files and packages (folders with `__init__.py`)."""
    if not workflows_dir.is_dir():
        return ()
    names = []
    for entry in workflows_dir.iterdir():
        name = entry.stem if entry.suffix == ".py" and entry.is_file() else entry.name
        if not name.isidentifier() or name.startswith("_"):
            continue
        if (entry.suffix == ".py" and entry.is_file()) or (entry / "__init__.py").is_file():
            names.append(name)
    return tuple(sorted(set(names)))


def configured_modules(settings: Settings) -> tuple[str, ...]:
    """Return the installed modules `python` tasks may call: PLUGINS and PYTHON_MODULES."""
    return (*settings.plugin_modules, *settings.python_module_names)


def allowed_modules(settings: Settings) -> tuple[str, ...]:
    """Return every module `python` tasks may call under `settings` (registration passes these to the DSL)."""
    return (*workflows_modules(settings.workflows_dir), *configured_modules(settings))


def _package(workflows_dir: Path) -> str:
    """Return the name of a package whose path is `workflows_dir`, creating it once.

    User modules import as its submodules, so packages and relative imports work, and two directories
    with a module of the same name never collide.
    """
    directory = workflows_dir.resolve()
    key = f"_workflow_engine_user_{hashlib.sha256(str(directory).encode()).hexdigest()[:12]}"
    if key not in sys.modules:
        spec = importlib.machinery.ModuleSpec(key, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        sys.modules[key] = importlib.util.module_from_spec(spec)
    return key


def _import_from_directory(workflows_dir: Path, module_name: str) -> ModuleType:
    name = f"{_package(workflows_dir)}.{module_name}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name and not name.startswith(f"{exc.name}."):
            raise  # the user module itself imports something missing
        # a file added since the directory was last listed: the import system caches listings
        importlib.invalidate_caches()
        return importlib.import_module(name)


def import_user_module(workflows_dir: Path, module_name: str) -> ModuleType:
    """Import `module_name` from `workflows_dir` when it is one of its modules, else from installed packages."""
    if module_name.split(".")[0] in workflows_modules(workflows_dir):
        return _import_from_directory(workflows_dir, module_name)
    return importlib.import_module(module_name)


def _origins(function: Any) -> Iterator[str]:
    """Yield the module of `function` and of whatever it wraps or is bound to."""
    seen: set[int] = set()
    pending = [function]
    while pending and len(seen) < _MAX_ORIGINS:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, functools.partial):
            pending.append(item.func)
            continue
        module = item.__name__ if isinstance(item, ModuleType) else getattr(item, "__module__", None)
        # builtin methods have no module of their own, and objects (a bound method's, one with __call__) may not
        yield module if isinstance(module, str) else type(item).__module__
        inners = (getattr(item, attr, None) for attr in ("__self__", "__func__", "__wrapped__"))
        pending.extend(inner for inner in inners if inner is not None)


def check_origin(reference: str, function: Any) -> None:
    """Refuse a function that comes from a refused module, e.g. `mymod:system` after `from os import system`.

    Raises:
        FunctionRefused: The function, or what it wraps or is bound to, comes from a refused module.
    """
    for module in _origins(function):
        refused = refused_module(module)
        if refused is not None:
            raise FunctionRefused(f"{reference!r} is a function of {module!r}: {refused_message(module, refused)}")


def resolve_function(workflows_dir: Path, reference: object, configured: Sequence[str]) -> Callable[..., Any]:
    """Look up the function of a `python` task, applying the policy the DSL applied at registration.

    Raises:
        FunctionRefused: The reference or its module is refused, or the module is in neither `workflows_dir`
            nor `configured` (PLUGINS and PYTHON_MODULES).
        FunctionNotFound: The module has no such callable.
        Exception: Whatever importing the user module raises.
    """
    try:
        module_name, attr = parse_reference(reference)
    except RefusedReference as exc:
        raise FunctionRefused(f"config.function {exc}") from None
    in_directory = module_name.split(".")[0] in workflows_modules(workflows_dir)
    if not in_directory and not is_allowed(module_name, configured):
        raise FunctionRefused(not_allowed_message(module_name))
    module = (
        _import_from_directory(workflows_dir, module_name) if in_directory else importlib.import_module(module_name)
    )
    function: object = getattr(module, attr, None)
    if not callable(function):
        raise FunctionNotFound(f"{module_name!r} has no function {attr!r}")
    check_origin(str(reference), function)
    return function
