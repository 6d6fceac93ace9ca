"""Cross-field checks a schema cannot express, run on the raw document so they report with schema errors.

Ids, dependencies, cycles, activity types, expressions (syntax, root names, upstream references,
`item`/`index`/`error` scope) and schedule params. Each check reads the raw YAML data defensively,
so a file with schema errors still gets every semantic problem reported in the same pass.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterator
from typing import Any

from pydantic import ValidationError

from .compensation_checks import check_compensations
from .expressions import ROOT_NAMES, iter_templates
from .graph import Graph, UpstreamSets, dependencies_of, find_cycle
from .model import ParamSpec
from .params import check_value
from .python_policy import check_python_tasks
from .scope_checks import check_expression

BUILTIN_ACTIVITY_TYPES = ("http_request", "log", "python", "shell")

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

_FAN_OUT_NAMES = ("item", "index")
_SCOPE_RULES = {
    "item": "only inside the config of a for_each task",
    "index": "only inside the config of a for_each task",
    "error": "only in on_failure tasks",
    "secrets": "only in the config of activity tasks and in notify webhooks, where the worker resolves it",
}


def _tasks(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    raw = data.get(section)
    if not isinstance(raw, list):
        return []
    return [(i, task) for i, task in enumerate(raw) if isinstance(task, dict)]


def _task_id(task: dict[str, Any]) -> str | None:
    value = task.get("id")
    return value if isinstance(value, str) else None


def _graph(tasks: list[tuple[int, dict[str, Any]]]) -> Graph:
    """The dependencies of raw tasks (`dependencies_of`), read leniently: tasks without an id are left out."""
    return dependencies_of((task_id, _depends_on(task)) for _, task in tasks if (task_id := _task_id(task)) is not None)


def _depends_on(task: dict[str, Any]) -> list[str] | None:
    deps = task.get("depends_on")
    if deps is None:
        return None
    return [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []


def check_semantics(
    data: dict[str, Any],
    *,
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
    python_modules: Collection[str] | None = None,
) -> list[Problem]:
    """Return every cross-field problem of a raw definition as (location, message).

    `python_modules` are the modules `python` tasks may call (and their submodules); None checks only
    what is refused whatever the settings (`python_policy.py`).
    """
    problems: list[Problem] = check_python_tasks(data, python_modules)
    main = _tasks(data, "tasks")
    handlers = _tasks(data, "on_failure")
    main_ids = [tid for _, t in main if (tid := _task_id(t))]
    known = set(main_ids) | {tid for _, t in handlers if (tid := _task_id(t))}
    seen: set[str] = set()
    for section, tasks in (("tasks", main), ("on_failure", handlers)):
        section_ids = {tid for _, t in tasks if (tid := _task_id(t))}
        for i, task in tasks:
            task_id = _task_id(task)
            if task_id is not None:
                if task_id in seen:
                    problems.append(((section, i, "id"), f"duplicate task id {task_id!r}"))
                seen.add(task_id)
            kind = task.get("type", "activity")
            activity_type = task.get("activity_type")
            if kind == "activity" and isinstance(activity_type, str) and activity_type not in activity_types:
                problems.append(
                    ((section, i, "activity_type"),
                     f"unknown activity_type {activity_type!r}; known: {', '.join(activity_types)}")
                )  # fmt: skip
            deps = task.get("depends_on")
            for j, dep in enumerate(deps if isinstance(deps, list) else []):
                if not isinstance(dep, str):
                    continue
                if dep == task_id:
                    problems.append(((section, i, "depends_on", j), "a task cannot depend on itself"))
                elif dep not in section_ids:
                    where = " in on_failure" if section == "on_failure" else ""
                    problems.append(((section, i, "depends_on", j), f"unknown task {dep!r}{where}"))
    problems.extend(_check_graph(main, "tasks", problems))
    problems.extend(_check_graph(handlers, "on_failure", problems))
    problems.extend(_check_params(data))
    graph_ok = not any(loc[0] == "tasks" and ("depends_on" in loc or loc[-1] == "id") for loc, _ in problems)
    # a graph with problems is never read for scopes; else it has known targets and no cycle
    scopes = UpstreamSets(_graph(main)) if graph_ok else None
    for i, task in main:
        problems.extend(_check_task_expressions(("tasks", i), task, scopes, known, in_handler=False))
    for i, task in handlers:
        # on_failure runs after the run failed: any main task may be read, in any state.
        problems.extend(_check_task_expressions(("on_failure", i), task, None, known, in_handler=True))
    problems.extend(
        check_compensations(data, scopes, known, activity_types=activity_types, python_modules=python_modules)
    )
    for sub, source in iter_templates(data.get("output")):
        problems.extend(_check_expression(("output", *sub), source, frozenset(main_ids), None, {"secrets"}))
    for sub, source in iter_templates(data.get("concurrency")):  # rendered before any task runs: no task in scope
        found = _check_expression(("concurrency", *sub), source, (), None, {*_FAN_OUT_NAMES, "error", "secrets"})
        problems.extend((loc, msg.replace("does not exist", "has not run yet")) for loc, msg in found)
    for sub, source in iter_templates(data.get("notify")):
        # rendered as an approval starts waiting or as the run fails: any task may be read, in any state
        forbidden = {*_FAN_OUT_NAMES, "error", *(() if sub[:1] == ("webhook",) else ("secrets",))}
        problems.extend(_check_expression(("notify", *sub), source, known, None, forbidden))
    return problems


def _check_graph(tasks: list[tuple[int, dict[str, Any]]], section: str, found: list[Problem]) -> list[Problem]:
    if any(loc[0] == section and ("depends_on" in loc or loc[-1] == "id") for loc, _ in found):
        return []  # duplicate ids or unknown targets make any cycle report misleading
    cycle = find_cycle(_graph(tasks))
    if not cycle:
        return []
    index = next(i for i, t in tasks if _task_id(t) == cycle[0])
    return [((section, index, "depends_on"), "dependency cycle: " + " -> ".join(cycle))]


def _task_templates(task: dict[str, Any]) -> Iterator[tuple[Loc, str, bool, bool]]:
    """Yield (location, expression, per_item, may_read_secrets) for every template of a task."""
    in_activity = task.get("type", "activity") == "activity"
    for field in ("config", "when"):
        for sub, source in iter_templates(task.get(field)):
            yield (field, *sub), source, field == "config", in_activity and field == "config"
    for sub, source in iter_templates(task.get("for_each")):
        yield ("for_each", *sub), source, False, False
    for sub, source in iter_templates(task.get("concurrency")):  # rendered once, before the task's items
        yield ("concurrency", *sub), source, False, False
    if task.get("type") == "approval":  # elsewhere `notify` is an unknown field, reported by the schema pass
        for sub, source in iter_templates(task.get("notify")):
            yield ("notify", *sub), source, False, sub[:1] == ("webhook",)


def _check_task_expressions(
    prefix: Loc, task: dict[str, Any], scopes: UpstreamSets | None, known: set[str], *, in_handler: bool
) -> list[Problem]:
    templates = list(_task_templates(task))
    if not templates:
        return []
    task_id = _task_id(task)
    scope: Container[str]
    if in_handler or scopes is None or task_id is None:
        scope = known
    else:
        scope = scopes.of(task_id)
    fan_out = task.get("for_each") is not None
    problems: list[Problem] = []
    for sub, source, per_item, secrets_ok in templates:
        forbidden: set[str] = set()
        if not (fan_out and per_item):
            forbidden.update(_FAN_OUT_NAMES)
        if not in_handler:
            forbidden.add("error")
        if not secrets_ok:
            forbidden.add("secrets")
        where = (*prefix, *sub)
        problems.extend(_check_expression(where, source, scope, None if in_handler else task_id, forbidden))
    return problems


def _check_expression(
    where: Loc, source: str, scope: Container[str], task_id: str | None, forbidden: set[str]
) -> list[Problem]:
    outside = "is not upstream of this task" if task_id else "does not exist"
    return check_expression(where, source, scope, forbidden, names=ROOT_NAMES, rules=_SCOPE_RULES, outside=outside)


def _specs(data: dict[str, Any]) -> dict[str, ParamSpec]:
    raw = data.get("params")
    specs: dict[str, ParamSpec] = {}
    for name, spec in raw.items() if isinstance(raw, dict) else []:
        try:
            specs[name] = ParamSpec.model_validate(spec)
        except ValidationError:
            continue  # the schema pass reports it
    return specs


def _check_params(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    specs = _specs(data)
    for name, spec in specs.items():
        where: Loc = ("params", name)
        if spec.enum is not None:
            for k, choice in enumerate(spec.enum):
                problems.extend(((*where, "enum", k), msg) for msg in check_value(choice, spec, check_enum=False))
        if spec.default is not None:
            problems.extend(((*where, "default"), msg) for msg in check_value(spec.default, spec))
        if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
            problems.append(((*where, "minimum"), "minimum is greater than maximum"))
    schedules = data.get("schedules")
    problems.extend(_schedule_ids(schedules if isinstance(schedules, list) else []))
    for i, schedule in enumerate(schedules if isinstance(schedules, list) else []):
        params = schedule.get("params", {}) if isinstance(schedule, dict) else {}
        if not isinstance(params, dict):
            continue
        for name, value in params.items():
            if name not in specs:
                problems.append((("schedules", i, "params", name), f"unknown parameter {name!r}"))
            else:
                problems.extend((("schedules", i, "params", name), msg) for msg in check_value(value, specs[name]))
        for name, spec in specs.items():
            if spec.required and spec.default is None and name not in params:
                problems.append((("schedules", i, "params"), f"required parameter {name!r} is missing"))
    return problems


def _schedule_ids(schedules: list[Any]) -> list[Problem]:
    """Schedule ids (an entry's `id`, else its index) must be unique in the file."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, schedule in enumerate(schedules):
        given = schedule.get("id") if isinstance(schedule, dict) else None
        key = given if isinstance(given, str) else str(i)
        if key in seen:
            where: Loc = ("schedules", i, "id") if isinstance(given, str) else ("schedules", i)
            problems.append((where, f"duplicate schedule id {key!r} (also schedules[{seen[key]}])"))
        else:
            seen[key] = i
    return problems
