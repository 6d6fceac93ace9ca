"""The built-in activities (`log`, `python`): all I/O of a run happens here, in the worker."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..types import ActivityInput, ActivityResult
from . import tasklogs
from .calls import FunctionRunner
from .modules import FunctionNotFound, FunctionRefused, resolve_function

logger = logging.getLogger("workflow_engine.tasks")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _fail(message: str, error_type: str, *, non_retryable: bool = False) -> ApplicationError:
    return ApplicationError(message, {"attempt": activity.info().attempt}, type=error_type, non_retryable=non_retryable)


class BuiltinActivities:
    """Holds worker settings the activities need; its bound methods are the activities."""

    def __init__(self, workflows_dir: Path, *, runner: FunctionRunner, python_modules: Sequence[str] = ()) -> None:
        """Remember where user modules live, which installed modules `python` tasks may call, and the runner.

        Args:
            workflows_dir: WORKFLOWS_DIR; its modules may always be called.
            runner: Runs the functions (sync ones on the worker's own thread pool) and heartbeats.
            python_modules: Installed modules (and their submodules) that may be called too: PLUGINS and
                PYTHON_MODULES.
        """
        self.workflows_dir = workflows_dir.resolve()
        self.python_modules = tuple(python_modules)
        self.runner = runner
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
        tasklogs.line("log", f"{level.upper()} {text}")
        return ActivityResult(output=text, attempt=activity.info().attempt)

    @activity.defn(name="python")
    async def python(self, task: ActivityInput) -> ActivityResult:
        """Call an allowed `module:function` with args/kwargs (sync functions on the worker's pool), heartbeating."""
        function = self._resolve(task.config.get("function"))
        args = task.config.get("args", [])
        kwargs = task.config.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _fail("config.args must be a list and config.kwargs a mapping", "ConfigError", non_retryable=True)
        try:
            result = await self.runner.call(function, *args, **kwargs)
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
        try:
            function = resolve_function(self.workflows_dir, reference, self.python_modules)
        except FunctionRefused as exc:
            raise _fail(str(exc), "FunctionRefused", non_retryable=True) from None
        except FunctionNotFound as exc:
            raise _fail(str(exc), "ConfigError", non_retryable=True) from None
        except Exception as exc:  # a user module may fail to import in any way
            module = str(reference).partition(":")[0]
            raise _fail(f"cannot import {module!r}: {exc}", "ImportError", non_retryable=True) from None
        self._functions[str(reference)] = function
        return function
