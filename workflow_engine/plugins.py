"""Plugins: activity types users add with `@plugin`, in modules listed in PLUGINS or via entry points.

A plugin is a function that takes the task's rendered `config` (a dict) and returns a
JSON-serialisable output; sync functions run on the worker's own thread pool (a thread for every
slot), async ones are awaited, and the activity heartbeats while either runs (`engine/calls.py`):

    from workflow_engine.plugins import plugin

    @plugin("slugify")
    def slugify(config: dict) -> str:
        return config["text"].lower().replace(" ", "-")

List the module in `PLUGINS=my_plugins` (looked up in WORKFLOWS_DIR first, then installed packages)
or expose it as an entry point in the `workflow_engine.plugins` group. The worker registers every
plugin as an activity and the DSL accepts its name as an `activity_type`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflow_engine.dsl import BUILTIN_ACTIVITY_TYPES
from workflow_engine.engine.activities.calls import FunctionRunner
from workflow_engine.engine.activities.modules import import_user_module
from workflow_engine.engine.types import ActivityInput, ActivityResult
from workflow_engine.settings import Settings

PLUGIN_ATTR = "__workflow_engine_plugin__"
ENTRY_POINT_GROUP = "workflow_engine.plugins"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
F = TypeVar("F", bound=Callable[..., Any])


def plugin(name: str | None = None) -> Callable[[F], F]:
    """Mark a function as the activity type `name` (default: the function's name)."""

    def mark(function: F) -> F:
        setattr(function, PLUGIN_ATTR, name or function.__name__)
        return function

    return mark


@dataclass(frozen=True)
class Plugin:
    """A discovered plugin: its activity type name, function and where it came from."""

    name: str
    function: Callable[..., Any]
    origin: str


class PluginError(Exception):
    """A plugin module that cannot be loaded or declares an invalid plugin."""


def _collect(module: ModuleType, origin: str) -> list[Plugin]:
    found = []
    for value in vars(module).values():
        name = getattr(value, PLUGIN_ATTR, None)
        if callable(value) and isinstance(name, str):
            found.append(Plugin(name, value, origin))
    return found


def discover(settings: Settings) -> list[Plugin]:
    """Load every plugin from PLUGINS modules and entry points; refuse bad or clashing names."""
    plugins: list[Plugin] = []
    for module_name in settings.plugin_modules:
        try:
            module = import_user_module(settings.workflows_dir, module_name)
        except Exception as exc:  # any import failure of user code is a configuration error
            raise PluginError(f"PLUGINS: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
        plugins.extend(_collect(module, module_name))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if isinstance(loaded, ModuleType):
            plugins.extend(_collect(loaded, f"entry point {entry.name}"))
        elif callable(loaded):
            plugins.append(Plugin(getattr(loaded, PLUGIN_ATTR, entry.name), loaded, f"entry point {entry.name}"))
    seen: dict[str, str] = {}
    for item in plugins:
        if not _NAME.match(item.name):
            raise PluginError(f"plugin {item.name!r} from {item.origin}: names are lower-case like my_plugin")
        if item.name in BUILTIN_ACTIVITY_TYPES:
            raise PluginError(f"plugin {item.name!r} from {item.origin} would replace a built-in activity type")
        if item.name in seen:
            raise PluginError(f"plugin {item.name!r} is declared by both {seen[item.name]} and {item.origin}")
        seen[item.name] = item.origin
    return plugins


def activity_types(settings: Settings) -> tuple[str, ...]:
    """Return every activity type a definition may use: the built-ins and the plugins."""
    return (*BUILTIN_ACTIVITY_TYPES, *sorted(p.name for p in discover(settings)))


def as_activity(item: Plugin, runner: FunctionRunner) -> Callable[..., Any]:
    """Wrap a plugin function as a Temporal activity named after the plugin, run (and heartbeating) by `runner`."""

    async def run(task: ActivityInput) -> ActivityResult:
        attempt = activity.info().attempt
        try:
            output = await runner.call(item.function, task.config)
        except ApplicationError:
            raise
        except Exception as exc:
            raise ApplicationError(
                f"{type(exc).__name__}: {exc}", {"attempt": attempt}, type=type(exc).__name__
            ) from exc
        try:
            json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise ApplicationError(
                f"plugin {item.name!r} returned a value that is not JSON-serialisable: {exc}",
                {"attempt": attempt}, type="TypeError", non_retryable=True,
            ) from None  # fmt: skip
        return ActivityResult(output=output, attempt=attempt)

    run.__name__ = run.__qualname__ = f"plugin_{item.name}"
    return activity.defn(name=item.name)(run)
