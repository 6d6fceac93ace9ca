"""Secrets stay out of history: templates reading `secrets` are resolved inside the activity, then masked.

The interpreter leaves `${{ ... secrets.NAME ... }}` templates unrendered in the activity input, and names the
strings that hold them (`ActivityInput.deferred`). This activity interceptor renders those strings, and only
those, just before the activity runs, with only the secrets they need: a param or a response that reads
`${{ secrets.X }}` stays text. It replaces every secret value in the activity's result and error messages with
`***` before they go back to Temporal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from workflow_engine.dsl import ExpressionError, render
from workflow_engine.dsl.expressions import iter_templates, render_deferred
from workflow_engine.settings import Settings

from ..types import ActivityInput, ActivityResult
from . import tasklogs

MASK = tasklogs.MASK
_SECRET_NAME = re.compile(r"\bsecrets\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def _mentions_secrets(value: Any) -> bool:
    if isinstance(value, str):
        return "secrets" in value
    if isinstance(value, Mapping):
        return any(_mentions_secrets(item) for item in value.values())
    if isinstance(value, list):
        return any(_mentions_secrets(item) for item in value)
    return False


def referenced_secrets(config: Any, deferred: list[list[str | int]] | None = None) -> list[str]:
    """Return the secret names read by the templates of a config, in first-use order.

    With `deferred` (the paths `render_keeping` returned), only the templates of those strings count; None reads
    every template (an input scheduled before the interpreter sent paths).
    """
    if deferred is not None:
        return _names(_at(config, path) for path in deferred)
    if not _mentions_secrets(config):  # the common case, checked without parsing templates
        return []
    return _names([config])


def _names(values: Any) -> list[str]:
    names: dict[str, None] = {}
    for value in values:
        for _, source in iter_templates(value):
            names.update(dict.fromkeys(_SECRET_NAME.findall(source)))
    return list(names)


def _at(config: Any, path: list[str | int]) -> Any:
    """The value at `path`, or None where the config has none (render_deferred reports it)."""
    node = config
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def mask(value: Any, secrets: list[str]) -> Any:
    """Replace every occurrence of a secret value in nested data with `***`."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {mask(k, secrets): mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(item, secrets) for item in value]
    return value


def resolve(config: Any, settings: Settings, deferred: list[list[str | int]] | None = None) -> tuple[Any, list[str]]:
    """Render a config's `secrets.NAME` templates (at `deferred` only); return it and the values to mask.

    The values to mask come longest first.

    Raises:
        ApplicationError: A secret is not set (`SecretMissing`) or a template fails (`ExpressionError`, masked);
            neither is retryable.
    """
    values: dict[str, str] = {}
    for name in referenced_secrets(config, deferred):
        value = settings.read_secret(name)
        if value is None:
            raise ApplicationError(
                f"secret {name!r} is not set (environment variable {settings.secrets_env_prefix}{name} "
                "or the secrets file)",
                type="SecretMissing",
                non_retryable=True,
            )
        values[name] = value
    if not values and deferred is None:
        return config, []
    hidden = sorted((v for v in values.values() if v), key=len, reverse=True)
    tasklogs.hide(hidden)
    try:
        if deferred is None:
            return render(config, {"secrets": values}), hidden
        return render_deferred(config, deferred, {"secrets": values}), hidden
    except ExpressionError as exc:
        raise ApplicationError(mask(str(exc), hidden), type="ExpressionError", non_retryable=True) from None


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next_interceptor: ActivityInboundInterceptor, settings: Settings) -> None:
        super().__init__(next_interceptor)
        self.settings = settings

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:  # noqa: A002 - SDK signature
        arg = input.args[0] if input.args else None
        if not isinstance(arg, ActivityInput):
            return await super().execute_activity(input)
        if not arg.deferred and not (arg.deferred is None and referenced_secrets(arg.config)):
            return await super().execute_activity(input)
        config, hidden = resolve(arg.config, self.settings, arg.deferred)
        input.args = [ActivityInput(task_id=arg.task_id, config=config), *input.args[1:]]
        try:
            result = await super().execute_activity(input)
        except ApplicationError as exc:
            raise ApplicationError(
                mask(exc.message, hidden), *mask(list(exc.details), hidden), type=exc.type,
                non_retryable=exc.non_retryable,
            ) from None  # fmt: skip
        except Exception as exc:
            raise ApplicationError(mask(f"{type(exc).__name__}: {exc}", hidden), type=type(exc).__name__) from None
        if isinstance(result, ActivityResult):
            return ActivityResult(output=mask(result.output, hidden), attempt=result.attempt)
        return mask(result, hidden)


class SecretsInterceptor(Interceptor):
    """Worker interceptor resolving `secrets.NAME` inside activities and masking their values."""

    def __init__(self, settings: Settings) -> None:
        """Keep the settings that say where secrets come from."""
        self.settings = settings

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:  # noqa: A002
        """Wrap every activity."""
        return _Inbound(next, self.settings)
