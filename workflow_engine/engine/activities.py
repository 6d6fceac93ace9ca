"""The built-in activities (`log`, `python`): all I/O of a run happens here, in the worker."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .modules import import_user_module
from .types import ActivityInput, ActivityResult

logger = logging.getLogger("workflow_engine.tasks")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _fail(message: str, error_type: str, *, non_retryable: bool = False) -> ApplicationError:
    return ApplicationError(message, {"attempt": activity.info().attempt}, type=error_type, non_retryable=non_retryable)


class BuiltinActivities:
    """Holds worker settings the activities need; its bound methods are the activities."""

    def __init__(self, workflows_dir: Path) -> None:
        """Remember where user modules for `python` tasks live."""
        self.workflows_dir = workflows_dir.resolve()
        # `module:function` -> the function: a module is imported once per worker anyway, and resolving the path
        # (a realpath, a stat and a hash) on every call cost more than the call itself for no-op steps
        self._functions: dict[str, Callable[..., Any]] = {}

    @activity.defn(name="log")
    async def log(self, task: ActivityInput) -> ActivityResult:
        """Write the rendered message to the worker log and return it as the task output."""
        message = task.config.get("message", "")
        level = str(task.config.get("level", "info")).lower()
        if level not in _LEVELS:
            raise _fail(f"config.level must be one of {', '.join(_LEVELS)}", "ConfigError", non_retryable=True)
        text = message if isinstance(message, str) else json.dumps(message, default=str)
        logger.log(_LEVELS[level], "[%s/%s] %s", activity.info().workflow_id, task.task_id, text)
        return ActivityResult(output=text, attempt=activity.info().attempt)

    @activity.defn(name="python")
    async def python(self, task: ActivityInput) -> ActivityResult:
        """Call `module:function` with args/kwargs; sync functions run in a worker thread."""
        function = self._resolve(task.config.get("function"))
        args = task.config.get("args", [])
        kwargs = task.config.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _fail("config.args must be a list and config.kwargs a mapping", "ConfigError", non_retryable=True)
        try:
            if inspect.iscoroutinefunction(function):
                result = await function(*args, **kwargs)
            else:
                result = await asyncio.to_thread(function, *args, **kwargs)
        except ApplicationError:
            raise
        except Exception as exc:
            raise _fail(f"{type(exc).__name__}: {exc}", type(exc).__name__) from exc
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise _fail(f"return value is not JSON-serialisable: {exc}", "TypeError", non_retryable=True) from None
        return ActivityResult(output=result, attempt=activity.info().attempt)

    def _resolve(self, reference: Any) -> Callable[..., Any]:
        if isinstance(reference, str) and (cached := self._functions.get(reference)) is not None:
            return cached
        if not isinstance(reference, str) or reference.count(":") != 1:
            raise _fail("config.function must be 'module:function'", "ConfigError", non_retryable=True)
        module_name, _, attr = reference.partition(":")
        try:
            module = self._import(module_name)
        except Exception as exc:  # a user module may fail to import in any way
            raise _fail(f"cannot import {module_name!r}: {exc}", "ImportError", non_retryable=True) from None
        function = getattr(module, attr, None)
        if not callable(function):
            raise _fail(f"{module_name!r} has no function {attr!r}", "ConfigError", non_retryable=True)
        self._functions[reference] = function
        return function  # type: ignore[no-any-return]

    def _import(self, module_name: str) -> ModuleType:
        """Import from the workflows directory first, then from installed packages."""
        return import_user_module(self.workflows_dir, module_name)
