"""Semantic checks a schema cannot express: ids, dependencies, cycles, expressions, params."""

from __future__ import annotations

from typing import Any

from .errors import ExpressionError
from .expressions import ROOT_NAMES, iter_templates, referenced_tasks, root_names
from .graph import dependencies, find_cycle, upstream
from .model import ParamSpec, WorkflowDefinition
from .params import check_value

BUILTIN_ACTIVITY_TYPES = ("log", "python")

Problem = tuple[tuple[str | int, ...], str]


def check_semantics(
    definition: WorkflowDefinition, *, activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES
) -> list[Problem]:
    """Return every semantic problem as (location, message), in document order."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    all_ids = frozenset(t.id for t in definition.tasks)
    for i, task in enumerate(definition.tasks):
        if task.id in seen:
            problems.append((("tasks", i, "id"), f"duplicate task id {task.id!r}"))
        seen.setdefault(task.id, i)
        if task.activity_type not in activity_types:
            known = ", ".join(activity_types)
            problems.append(
                (("tasks", i, "activity_type"), f"unknown activity_type {task.activity_type!r}; known: {known}")
            )
        for j, dep in enumerate(task.depends_on or []):
            if dep not in all_ids:
                problems.append((("tasks", i, "depends_on", j), f"unknown task {dep!r}"))
            elif dep == task.id:
                problems.append((("tasks", i, "depends_on", j), "a task cannot depend on itself"))
    # with duplicate ids the graph is ambiguous: checking it would only report bogus cycles
    graph_ok = len(seen) == len(definition.tasks) and not any("depends_on" in loc for loc, _ in problems)
    deps = dependencies(definition)
    cycle = find_cycle(deps) if graph_ok else None
    if cycle:
        index = next(i for i, t in enumerate(definition.tasks) if t.id == cycle[0])
        problems.append((("tasks", index, "depends_on"), "dependency cycle: " + " -> ".join(cycle)))
        graph_ok = False
    for name, spec in definition.params.items():
        problems.extend(_check_param_spec(name, spec))
    for i, task in enumerate(definition.tasks):
        fields: list[tuple[tuple[str | int, ...], Any]] = [(("config",), task.config)]
        if task.when is not None:
            fields.append((("when",), task.when))
        templates = [
            (("tasks", i, *prefix, *sub), source) for prefix, value in fields for sub, source in iter_templates(value)
        ]
        if not templates:
            continue  # computing upstream sets for every task would make long chains quadratic
        scope = upstream(deps, task.id) if graph_ok else all_ids
        for where, source in templates:
            problems.extend(_check_expression(where, source, scope, task_id=task.id))
    for sub, source in iter_templates(definition.output):
        problems.extend(_check_expression(("output", *sub), source, all_ids, task_id=None))
    return problems


def _check_expression(
    where: tuple[str | int, ...], source: str, scope: frozenset[str], *, task_id: str | None
) -> list[Problem]:
    try:
        names = root_names(source)
    except ExpressionError as exc:
        return [(where, str(exc))]
    problems: list[Problem] = []
    for name in names:
        if name not in ROOT_NAMES:
            problems.append((where, f"unknown name {name!r} in {source!r}; use one of {', '.join(ROOT_NAMES)}"))
    for ref in referenced_tasks(source):
        if ref not in scope:
            why = "is not upstream of this task" if task_id else "does not exist"
            problems.append((where, f"task {ref!r} {why} (in {source!r})"))
    return problems


def _check_param_spec(name: str, spec: ParamSpec) -> list[Problem]:
    where: tuple[str | int, ...] = ("params", name)
    problems: list[Problem] = []
    if spec.enum is not None:
        for k, choice in enumerate(spec.enum):
            problems.extend(((*where, "enum", k), msg) for msg in check_value(choice, spec, check_enum=False))
    if spec.default is not None:
        problems.extend(((*where, "default"), msg) for msg in check_value(spec.default, spec))
    if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
        problems.append(((*where, "minimum"), "minimum is greater than maximum"))
    return problems
