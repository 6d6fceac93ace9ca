"""Registration checks of `compensate:` blocks: where they may be, their activity, their expressions' scope."""

from __future__ import annotations

from collections.abc import Collection, Container
from typing import Any

from .expressions import ROOT_NAMES, iter_templates
from .graph import UpstreamSets
from .python_policy import reference_problem
from .scope_checks import check_expression

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

# What a compensation's config reads besides the usual names: the compensated task's output, and the task itself.
COMPENSATION_NAMES = ("output", "task")
_NAMES = (*ROOT_NAMES, *COMPENSATION_NAMES)


def check_compensations(
    data: dict[str, Any], scopes: UpstreamSets | None, known: Collection[str], *,
    activity_types: tuple[str, ...], python_modules: Collection[str] | None,
) -> list[Problem]:  # fmt: skip
    """Return the problems of every `compensate` block: where it may be, its activity, its expressions' scope.

    Its config may read `output` and `task`, params, the workflow, secrets (alone, as any activity config), the
    task itself and its upstream tasks (`scopes`, None when the graph has problems: then any known task), and
    `item`/`index` when the task has `for_each`.
    """
    problems: list[Problem] = []
    for section in ("tasks", "on_failure"):
        raw = data.get(section)
        for i, task in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(task, dict) or not isinstance(task.get("compensate"), dict):
                continue  # a compensate that is not a mapping is reported by the schema pass
            where: Loc = (section, i, "compensate")
            if section == "on_failure":
                problems.append((where, "on_failure tasks cannot compensate: they run after the compensations"))
                continue
            problems.extend(_check_one(where, task, scopes, known, activity_types, python_modules))
    return problems


def _check_one(
    where: Loc, task: dict[str, Any], scopes: UpstreamSets | None, known: Collection[str],
    activity_types: tuple[str, ...], python_modules: Collection[str] | None,
) -> list[Problem]:  # fmt: skip
    spec: dict[str, Any] = task["compensate"]
    problems: list[Problem] = []
    activity_type = spec.get("activity_type")
    if isinstance(activity_type, str) and activity_type not in activity_types:
        problems.append(((*where, "activity_type"),
                         f"unknown activity_type {activity_type!r}; known: {', '.join(activity_types)}"))  # fmt: skip
    config = spec.get("config")
    if activity_type == "python" and isinstance(config, dict):
        if "function" not in config:
            problems.append(((*where, "config", "function"), "python tasks need config.function 'module:function'"))
        elif (refused := reference_problem(config["function"], python_modules)) is not None:
            problems.append(((*where, "config", "function"), refused))
    task_id = task.get("id") if isinstance(task.get("id"), str) else None
    upstream = scopes.of(task_id) if scopes is not None and task_id is not None else None
    scope: Container[str] = known if upstream is None else _WithSelf(upstream, task_id)
    forbidden = {"error"} | (set() if task.get("for_each") is not None else {"item", "index"})
    for sub, source in iter_templates(config):
        problems.extend(_check_expression((*where, "config", *sub), source, scope, forbidden))
    return problems


class _WithSelf:
    """A task's upstream tasks and the task itself, answering `in`."""

    def __init__(self, upstream: Container[str], task_id: str | None) -> None:
        self.upstream, self.task_id = upstream, task_id

    def __contains__(self, task_id: object) -> bool:
        return task_id == self.task_id or task_id in self.upstream


_RULES = {
    "error": "only in on_failure tasks (a compensation reads `output` and `task`)",
    "item": "only in the compensation of a for_each task",
    "index": "only in the compensation of a for_each task",
}


def _check_expression(where: Loc, source: str, scope: Container[str], forbidden: set[str]) -> list[Problem]:
    return check_expression(where, source, scope, forbidden, names=_NAMES, rules=_RULES,
                            outside="is neither this task nor upstream of it")  # fmt: skip
