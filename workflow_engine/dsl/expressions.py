"""`${{ expr }}` templates: find, compile (CEL) and render them deterministically."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import cel

from .errors import ExpressionError

TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
ROOT_NAMES = ("params", "tasks", "item", "index", "workflow", "error", "secrets")
MAX_EXPRESSION_CHARS = 2000
_BOUND = re.compile(r"\.\s*(?:map|filter|all|exists|exists_one)\s*\(\s*([A-Za-z_]\w*)\s*,")
_TASK_REF = re.compile(r"(?<![\w.])tasks\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")

Path = tuple[str | int, ...]


def iter_templates(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Yield (path, expression source) for every `${{ }}` inside nested strings."""
    if isinstance(value, str):
        for match in TEMPLATE.finditer(value):
            yield path, match.group(1).strip()
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_templates(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_templates(item, (*path, index))


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> cel.Program:
    """Compile one CEL expression, refusing empty and oversized sources."""
    if not source:
        raise ExpressionError("empty expression")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        return cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ExpressionError(f"invalid expression {source!r}: {exc}") from None


@lru_cache(maxsize=4096)
def _variables(source: str) -> tuple[str, ...]:
    return tuple(compile_expression(source).variables())


def root_names(source: str) -> list[str]:
    """Return the free variable names an expression reads, in sorted order."""
    return list(_free_names(source))


@lru_cache(maxsize=4096)
def _free_names(source: str) -> tuple[str, ...]:
    bound = set(_BOUND.findall(source))
    return tuple(name for name in _variables(source) if name not in bound)


def referenced_tasks(source: str) -> list[str]:
    """Return the task ids an expression reads through `tasks.<id>`."""
    return [dotted or quoted for dotted, quoted in _TASK_REF.findall(source)]


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one expression against a context; failures become `ExpressionError`."""
    program = compile_expression(source)
    # only the names the expression reads: converting the whole context per call is quadratic in fan-outs
    scope = {name: context[name] for name in _variables(source) if name in context}
    try:
        return program.execute(scope)
    except KeyError as exc:
        raise ExpressionError(f"{source!r}: no such key {exc}") from None
    except (TypeError, ValueError, RuntimeError, ArithmeticError, LookupError) as exc:
        raise ExpressionError(f"{source!r}: {exc}") from None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    except TypeError:  # a map whose keys are of mixed types cannot be sorted
        return json.dumps(value, separators=(",", ":"), default=str)


def _reads_deferred(source: str, defer: frozenset[str]) -> bool:
    return bool(defer) and any(name in defer for name in _free_names(source))


def render(value: Any, context: Mapping[str, Any], *, defer: frozenset[str] = frozenset()) -> Any:
    """Render templates in nested data: a lone expression keeps its type, others become text.

    Templates that read a root in `defer` (the workflow defers `secrets`) are left as written,
    to be rendered later where those values are available.
    """
    if isinstance(value, str):
        matches = list(TEMPLATE.finditer(value))
        if not matches:
            return value
        if len(matches) == 1 and matches[0].span() == (0, len(value)):
            source = matches[0].group(1).strip()
            return value if _reads_deferred(source, defer) else evaluate(source, context)

        def _substitute(match: re.Match[str]) -> str:
            source = match.group(1).strip()
            return match.group(0) if _reads_deferred(source, defer) else _as_text(evaluate(source, context))

        return TEMPLATE.sub(_substitute, value)
    if isinstance(value, Mapping):
        return {key: render(item, context, defer=defer) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context, defer=defer) for item in value]
    return value


def is_true(value: Any) -> bool:
    """Decide a `when` condition: only a boolean true runs the task."""
    return value is True
