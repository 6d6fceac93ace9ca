"""`${{ expr }}` templates: find, compile (CEL) and render them deterministically."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import cel

from .cel_syntax import CelSyntaxError, NestingError, Node, parse
from .errors import ExpressionError
from .expression_cost import Estimate, estimate, plain_path, sized_path, task_reads

TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
ROOT_NAMES = ("params", "tasks", "item", "index", "workflow", "error", "secrets")
MAX_EXPRESSION_CHARS = 2000
# Limits of one evaluation (docs/dsl.md, "Expression limits"). Constants, not settings: the workflow must
# decide the same way on every worker and on replay. A unit is about 100 ns of the library's time.
COST_BUDGET = 1_000_000  # ~100 ms: a `render` of one value (all its templates) shares it
MAX_BUILT_BYTES = 1024 * 1024  # the largest list, map or string an expression may build
MAX_COMPREHENSION_DEPTH = 3  # `map`/`filter`/`all`/`exists`/`exists_one` inside each other's bodies
_UNITS_PER_MS = 10_000
_PLAIN_VALUE_UNITS = 3  # a plain read copies a value in ~150-300 ns (cold)
_PLAIN_KEY_UNITS = 4  # and a map entry's key and slot in ~300 ns
_I64 = 2**63
_HINTS = (
    ("map(", "`map` and `filter` cost grows with the square of the list length"),
    ("filter(", "`map` and `filter` cost grows with the square of the list length"),
    ("matches(", "`matches` compiles its pattern on every call"),
)
_SURROGATE = re.compile("[\ud800-\udfff]")
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


@lru_cache(maxsize=4096)
def _tree(source: str) -> Node:
    compile_expression(source)  # the library's verdict on syntax comes first
    try:
        return parse(source)
    except NestingError as exc:
        raise ExpressionError(f"{source!r}: {exc}") from None
    except CelSyntaxError as exc:
        raise ExpressionError(f"{source!r}: syntax the cost estimator cannot read ({exc})") from None


@lru_cache(maxsize=4096)
def _task_reads(source: str) -> frozenset[str] | None:
    return task_reads(_tree(source))


def _limit_problem(source: str, found: Estimate, budget: int, *, static: bool) -> str | None:
    if found.depth > MAX_COMPREHENSION_DEPTH:
        return f"{source!r}: comprehensions nested {found.depth} deep; at most {MAX_COMPREHENSION_DEPTH} may nest"
    assumed = " even if every list and map it reads had one element" if static else ""
    if found.read_cost > budget:
        return (
            f"{source!r}: reads too much data: converting it for the library costs an estimated "
            f"{found.read_cost:,} units (~{found.read_cost // _UNITS_PER_MS:,} ms), over the budget of {budget:,}; "
            "a plain path such as `tasks.x.output` is copied without that cost (docs/dsl.md, expression limits)"
        )
    if found.cost > budget:
        shared = " left by the other templates of this value" if budget < COST_BUDGET else ""
        hints = dict.fromkeys(hint for word, hint in _HINTS if word in source)
        return (
            f"{source!r}: too costly: estimated {found.cost:,} units (~{found.cost // _UNITS_PER_MS:,} ms){assumed}, "
            f"over the budget of {budget:,}{shared}"
            + "".join(f"; {hint}" for hint in hints)
            + " (docs/dsl.md, expression limits)"
        )
    if found.peak_bytes > MAX_BUILT_BYTES:
        return (
            f"{source!r}: may build a value of {found.peak_bytes / 2**20:,.1f} MiB{assumed}, over the "
            f"{MAX_BUILT_BYTES / 2**20:g} MiB limit on what an expression builds"
        )
    return None


@lru_cache(maxsize=4096)
def static_limit_problem(source: str) -> str | None:
    """Return why an expression would exceed its limits on any data, or None (for registration checks)."""
    return _limit_problem(source, estimate(_tree(source), None), COST_BUDGET, static=True)


class _Budget:
    """Cost units left for the templates of one rendered value."""

    def __init__(self) -> None:
        self.left = COST_BUDGET


def _scope(source: str, context: Mapping[str, Any]) -> dict[str, Any]:
    # only the names the expression reads: converting the whole context per call is quadratic in fan-outs
    scope = {name: context[name] for name in _variables(source) if name in context}
    tasks, wanted = scope.get("tasks"), _task_reads(source)
    if isinstance(tasks, Mapping) and wanted is not None:  # and of `tasks`, only the entries it names
        scope["tasks"] = {task_id: tasks[task_id] for task_id in wanted if task_id in tasks}
    return scope


@lru_cache(maxsize=4096)
def _plain_path(source: str) -> tuple[str, tuple[str | int, ...]] | None:
    return plain_path(_tree(source))


class _NotPlain(Exception):
    """The value needs the library after all (a missing key, a type JSON does not have)."""


def _read_plain(source: str, context: Mapping[str, Any], budget: _Budget) -> Any:
    """Read a plain path (`params.items`, `tasks.a.output`) in Python, counting what the copy costs.

    The library would convert the data in and out at ~1-2 us a value; this copies it at ~0.2 us. Only plain
    JSON values, whose round trip through the library is exact, qualify; the copy keeps the data's key order
    (the library's maps keep none).
    """
    value = _walk(_plain_path(source), context)
    left = [budget.left]
    try:
        copied = _plain_copy(value, left, 0)
    except _OverBudget:
        raise ExpressionError(
            f"{source!r}: reads too much data: copying it costs more than the {budget.left:,} units of the "
            f"budget{' left by the other templates of this value' if budget.left < COST_BUDGET else ''} "
            "(docs/dsl.md, expression limits)"
        ) from None
    budget.left = left[0]
    return copied


def _walk(path: tuple[str, tuple[str | int, ...]] | None, context: Mapping[str, Any]) -> Any:
    """Follow a plain path through JSON values; anything else is the library's to answer."""
    if path is None or path[0] not in context:
        raise _NotPlain
    value = context[path[0]]
    for step in path[1]:
        if type(value) is dict and type(step) is str and step in value:
            value = value[step]
        elif type(value) is list and type(step) is int and 0 <= step < len(value):
            value = value[step]
        else:
            raise _NotPlain
    return value


@lru_cache(maxsize=4096)
def _sized_path(source: str) -> tuple[str, tuple[str | int, ...]] | None:
    return sized_path(_tree(source))


def _read_size(source: str, context: Mapping[str, Any], budget: _Budget) -> int:
    """Answer `size(path)` in Python: the library would convert the whole value only to count it."""
    value = _walk(_sized_path(source), context)
    if type(value) not in (list, dict, str):
        raise _NotPlain
    budget.left -= _PLAIN_VALUE_UNITS
    return len(value)  # a string's size in CEL counts code points, as len does


class _OverBudget(Exception):
    """A plain read that would copy more values than the budget allows."""


def _plain_copy(value: Any, left: list[int], depth: int) -> Any:
    left[0] -= _PLAIN_VALUE_UNITS
    if left[0] < 0:
        raise _OverBudget
    kind = type(value)
    if kind is str:
        if not value.isascii() and _SURROGATE.search(value):
            raise _NotPlain
        return value
    if kind is int:
        if -_I64 <= value < _I64:
            return value
        raise _NotPlain
    if kind is float or kind is bool or value is None:
        return value
    if depth > 64:
        raise _NotPlain
    if kind is list:
        return [_plain_copy(item, left, depth + 1) for item in value]
    if kind is dict:
        copied = {}
        for key, item in value.items():
            left[0] -= _PLAIN_KEY_UNITS
            if type(key) is not str:
                raise _NotPlain
            copied[key] = _plain_copy(item, left, depth + 1)
        return copied
    raise _NotPlain


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one expression against a context; failures and exceeded limits become `ExpressionError`."""
    return _evaluate(source, context, _Budget())


def _evaluate(source: str, context: Mapping[str, Any], budget: _Budget) -> Any:
    program = compile_expression(source)
    for plain in (_read_plain, _read_size):
        try:
            return plain(source, context, budget)
        except _NotPlain:
            pass
    scope = _scope(source, context)
    found = estimate(_tree(source), scope, budget.left)  # before running it: the library cannot be interrupted
    problem = _limit_problem(source, found, budget.left, static=False)
    if problem is not None:
        raise ExpressionError(problem)
    budget.left -= found.cost
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
    to be rendered later where those values are available. All templates of `value` share one
    `COST_BUDGET`.
    """
    return _render(value, context, defer, _Budget())


def _render(value: Any, context: Mapping[str, Any], defer: frozenset[str], budget: _Budget) -> Any:
    if isinstance(value, str):
        matches = list(TEMPLATE.finditer(value))
        if not matches:
            return value
        if len(matches) == 1 and matches[0].span() == (0, len(value)):
            source = matches[0].group(1).strip()
            return value if _reads_deferred(source, defer) else _evaluate(source, context, budget)

        def _substitute(match: re.Match[str]) -> str:
            source = match.group(1).strip()
            if _reads_deferred(source, defer):
                return match.group(0)
            return _as_text(_evaluate(source, context, budget))

        return TEMPLATE.sub(_substitute, value)
    if isinstance(value, Mapping):
        return {key: _render(item, context, defer, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, context, defer, budget) for item in value]
    return value


# In a string that keeps a deferred template, `$` and `{` of text substituted from another expression are held as
# these private-use characters, so a value from a run (a param, a response) can never form a template, alone or
# with the text around it, where the deferred ones render (`render_deferred` puts them back).
_HELD = str.maketrans({"$": "\ue000", "{": "\ue001"})
_RELEASED = str.maketrans({"\ue000": "$", "\ue001": "{"})


def render_keeping(
    value: Any, context: Mapping[str, Any], *, defer: frozenset[str]
) -> tuple[Any, list[list[str | int]]]:
    """Render like `render` and return the paths of the strings that still hold deferred templates.

    Only those strings, which came from the definition, may be rendered later (`render_deferred`); in them, the
    `$` and `{` of substituted text are held as private-use characters, and everything outside them is plain data.
    """
    paths: list[list[str | int]] = []
    return _keeping(value, context, defer, _Budget(), (), paths), paths


def _keeping(
    value: Any, context: Mapping[str, Any], defer: frozenset[str], budget: _Budget, path: Path,
    paths: list[list[str | int]],
) -> Any:  # fmt: skip
    if isinstance(value, str):
        matches = list(TEMPLATE.finditer(value))
        if not matches:
            return value
        deferred = [match for match in matches if _reads_deferred(match.group(1).strip(), defer)]
        if not deferred:
            return _render(value, context, defer, budget)
        paths.append(list(path))
        if len(matches) == 1:
            return value

        def _substitute(match: re.Match[str]) -> str:
            source = match.group(1).strip()
            if _reads_deferred(source, defer):
                return match.group(0)
            return _as_text(_evaluate(source, context, budget)).translate(_HELD)

        return TEMPLATE.sub(_substitute, value)
    if isinstance(value, Mapping):
        return {key: _keeping(item, context, defer, budget, (*path, key), paths) for key, item in value.items()}
    if isinstance(value, list):
        return [_keeping(item, context, defer, budget, (*path, index), paths) for index, item in enumerate(value)]
    return value


def render_deferred(value: Any, paths: list[list[str | int]], context: Mapping[str, Any]) -> Any:
    """Render the deferred templates at `paths` (from `render_keeping`) with `context`; nothing else is read.

    Raises:
        ExpressionError: A path does not lead to a string of `value`, or a template fails.
    """
    result = copy.deepcopy(value) if paths else value
    for path in paths:
        parent, key = _parent(result, path)
        text = parent[key] if parent is not None else result
        if not isinstance(text, str):
            raise ExpressionError(f"no deferred template at {'/'.join(map(str, path)) or 'the root'}")
        rendered = render(text, context)
        rendered = rendered.translate(_RELEASED) if isinstance(rendered, str) else rendered
        if parent is None:
            result = rendered
        else:
            parent[key] = rendered
    return result


def _parent(value: Any, path: list[str | int]) -> tuple[Any, Any]:
    """The container holding `path`'s last step, and that step (None, None for the root)."""
    if not path:
        return None, None
    node = value
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(f"no deferred template at {'/'.join(map(str, path))}") from None
    if not isinstance(node, (dict, list)):
        raise ExpressionError(f"no deferred template at {'/'.join(map(str, path))}")
    return node, path[-1]


def is_true(value: Any) -> bool:
    """Decide a `when` condition: only a boolean true runs the task."""
    return value is True


def tasks_read(source: str) -> frozenset[str] | None:
    """Return the task ids an expression reads (`tasks.<id>`), or None when it reads `tasks` as a whole."""
    return _task_reads(source)


def as_text(value: Any) -> str:
    """Return a value as a template embedded in text shows it (`render` of `"a ${{ x }}"`)."""
    return _as_text(value)
