"""Plan a run without starting it: DAG levels, what `when` skips, rendered configs, fan-out sizes, worst-case time."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .concurrency import Concurrency, key_text, lock_id
from .defaults import (
    DEFAULT_BACKOFF_COEFFICIENT,
    DEFAULT_INITIAL_INTERVAL,
    MAXIMUM_INTERVAL_FACTOR,
    task_limits,
)
from .errors import ExpressionError
from .expressions import TEMPLATE, as_text, evaluate, is_true, render, root_names, tasks_read
from .graph import Graph, task_graph
from .model import ActivityTask, ApprovalTask, Defaults, SetTask, SleepTask, Task, WorkflowDefinition, WorkflowTask
from .params import resolve_params

# Plan time knows the workflow's name; its revision, execution id and start time exist only once a run starts.
_RUN_ONLY = ("revision", "execution_id", "started_at")
_INF = math.inf
Outcome = Literal["runs", "skipped", "depends", "fails"]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class WorstCase(_Result):
    """The longest something may take: seconds, or None when unbounded or unknown (`text` says which and why)."""

    seconds: float | None
    text: str


class Unrendered(_Result):
    """A template the plan cannot render, and why (`depends on X`, a secret, per item, known when the run starts)."""

    path: str
    template: str
    reason: str


class FanOut(_Result):
    """A `for_each`: its size when params decide it, and how many waves `max_parallel` makes of it."""

    size: int | None
    max_parallel: int | None
    waves: int | None
    reason: str | None = None  # why the size is unknown


class KeyPlan(_Result):
    """A `concurrency` key as the run (or task) would ask for it: rendered when the params decide it."""

    key: str  # rendered, or as written when it reads upstream outputs
    rendered: bool
    lock: str | None  # the key's lock workflow id (`wfe-lock:<key>`), when rendered
    limit: int
    on_conflict: str
    timeout: str | None  # how long a queued request waits at most (not counted in the worst case)


class TaskPlan(_Result):
    """One task as the run would take it."""

    id: str
    name: str
    type: str
    activity_type: str | None
    level: int
    depends_on: list[str]
    outcome: Outcome  # runs, skipped (its `when` is false), depends (on upstream outputs), fails (when cannot be read)
    reason: str | None  # of a skip, a dependency or a failure
    when_reads: list[str]  # the tasks whose outputs decide its `when`
    config: Any  # rendered where the params and the workflow's name suffice; other templates as written
    unrendered: list[Unrendered]
    for_each: FanOut | None
    worst_case: WorstCase  # of the task alone (every retry, every wave)
    concurrency: KeyPlan | None = None
    compensate: str | None = None  # the activity type that undoes the task if the run fails


class Plan(_Result):
    """What a run of a definition with these params would do, as far as the params decide it."""

    workflow: str
    revision: int | None
    params: dict[str, Any]
    levels: list[list[str]]
    tasks: list[TaskPlan]
    on_failure: list[str]
    critical_path: list[str]
    worst_case: WorstCase
    concurrency: KeyPlan | None = None


def _key_plan(
    concurrency: Concurrency | None, context: Mapping[str, Any], known: bool, task_queue: str | None
) -> KeyPlan | None:
    """The key a run or a task would ask for, rendered where the params suffice (its lock's id with the queue)."""
    if concurrency is None:
        return None
    try:
        key = key_text(render(concurrency.key, context)) if known else None
    except ExpressionError:  # it reads upstream outputs: known only when the task is about to start
        key = None
    timeout = format_seconds(concurrency.timeout.total_seconds()) if concurrency.timeout is not None else None
    return KeyPlan(
        key=concurrency.key if key is None else key, rendered=key is not None,
        lock=lock_id(key, task_queue) if key is not None and task_queue else None, limit=concurrency.limit,
        on_conflict=concurrency.on_conflict, timeout=timeout,
    )  # fmt: skip


def plan_run(
    definition: WorkflowDefinition,
    given: Mapping[str, Any],
    *,
    revision: int | None = None,
    children: Mapping[str, WorkflowDefinition] | None = None,
    task_queue: str | None = None,
) -> Plan:
    """Plan a run of `definition` with the `given` params (resolved as a start resolves them).

    `children` are the definitions `workflow` tasks would start (by name); a child not given has an unknown
    duration. `task_queue` (the deployment's) names the locks of concurrency keys.

    Raises:
        DslError: The params are invalid (the same issues a start reports).
    """
    params = resolve_params(definition, dict(given))
    return _Planner(definition, children or {}, frozenset(), task_queue).plan(params, revision)


def worst_case(seconds: float, note: str | None = None) -> WorstCase:
    """Describe a duration in seconds (infinite: unbounded or unknown, as `note` says)."""
    if math.isinf(seconds):
        return WorstCase(seconds=None, text=note or "unbounded")
    return WorstCase(seconds=seconds, text=format_seconds(seconds))


def format_seconds(seconds: float) -> str:
    """Write a duration as `1d 2h 3m 4.5s` (`0s`, `250ms`)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    parts, rest = [], seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if rest >= 0.001:
        parts.append(f"{rest:.3f}".rstrip("0").rstrip(".") + "s")
    return " ".join(parts)


def retry_worst_case(attempt_timeout: timedelta, attempts: int, initial: timedelta, coefficient: float,
                     maximum: timedelta) -> float:  # fmt: skip
    """Seconds of `attempts` attempts that each time out, with the backoff between them capped at `maximum`."""
    total = attempts * attempt_timeout.total_seconds()
    interval, cap = initial.total_seconds(), maximum.total_seconds()
    for retry in range(attempts - 1):
        if interval >= cap or coefficient == 1.0:  # every further wait is the same: count them at once
            return total + min(interval, cap) * (attempts - 1 - retry)
        total += interval
        interval *= coefficient
    return total


def activity_worst_case(task: ActivityTask, defaults: Defaults) -> tuple[float, str | None]:
    """Seconds one run of an activity task may take (the engine's options, as `engine/workflow/options.py` resolves).

    Each attempt may run to its start-to-close timeout, then waits out its backoff; a schedule-to-close timeout
    bounds the whole. Unlimited attempts without a schedule-to-close timeout are unbounded.
    """
    start_to_close, schedule_to_close, policy = task_limits(task, defaults)
    seconds: float = _INF
    note: str | None = "unbounded (retries without limit)"
    if start_to_close is not None and policy.max_attempts is not None:
        initial = policy.initial_interval or DEFAULT_INITIAL_INTERVAL
        maximum = policy.maximum_interval or initial * MAXIMUM_INTERVAL_FACTOR
        coefficient = policy.backoff_coefficient or DEFAULT_BACKOFF_COEFFICIENT
        seconds, note = retry_worst_case(start_to_close, policy.max_attempts, initial, coefficient, maximum), None
    if schedule_to_close is not None and schedule_to_close.total_seconds() < seconds:
        return schedule_to_close.total_seconds(), None
    return seconds, note


def _blocker(source: str) -> tuple[str, list[str]] | None:
    """Why a template cannot be rendered at plan time (and the tasks it waits for), or None when it can."""
    roots = set(root_names(source))
    if "tasks" in roots:
        read = tasks_read(source)
        ids = sorted(read) if read is not None else []
        return f"depends on {', '.join(ids) if ids else 'upstream tasks'}", ids
    if "secrets" in roots:
        return "reads secrets (resolved in the worker, never here)", []
    if roots & {"item", "index"}:
        return "per item of for_each", []
    if "error" in roots:
        return "reads the failure (on_failure only)", []
    return None


def _failure(source: str, exc: ExpressionError) -> str:
    if "workflow" in root_names(source) and any(name in source for name in _RUN_ONLY):
        return "known when the run starts (reads workflow." + next(n for n in _RUN_ONLY if n in source) + ")"
    return f"fails: {exc}"


class _Renderer:
    """Renders what the params decide and lists every template left as written."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context
        self.unrendered: list[Unrendered] = []

    def value(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, Mapping):
            return {key: self.value(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    def one(self, source: str, path: str) -> tuple[bool, Any]:
        """Evaluate one template: (True, value), or (False, None) once it is listed as unrendered."""
        try:
            blocked = _blocker(source)
            if blocked is None:
                return True, evaluate(source, self.context)
            reason = blocked[0]
        except ExpressionError as exc:
            reason = _failure(source, exc)
        self.unrendered.append(Unrendered(path=path, template=source, reason=reason))
        return False, None

    def text(self, value: str, path: str) -> Any:
        matches = list(TEMPLATE.finditer(value))
        if len(matches) == 1 and matches[0].span() == (0, len(value)):
            done, result = self.one(matches[0].group(1).strip(), path)
            return result if done else value
        pieces, at = [], 0
        for match in matches:
            done, result = self.one(match.group(1).strip(), path)
            pieces += [value[at : match.start()], as_text(result) if done else match.group(0)]
            at = match.end()
        return "".join(pieces) + value[at:]


class _Planner:
    """Plans one definition; `seen` holds the workflows above it (a child starting its parent is unknown)."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        children: Mapping[str, WorkflowDefinition],
        seen: frozenset[str],
        task_queue: str | None,
    ) -> None:
        self.definition, self.children, self.seen = definition, children, seen | {definition.name}
        self.task_queue = task_queue
        self.graph: Graph = task_graph(definition.tasks)

    def plan(self, params: dict[str, Any] | None, revision: int | None) -> Plan:
        """Plan every main task; None params (a child whose params are not known) decide no `when`."""
        context = {"params": params, "workflow": {"name": self.definition.name}}
        levels = self._levels()
        tasks = [self._task(task, levels[task.id], context, params is not None) for task in self.definition.tasks]
        path, seconds, note = self._critical_path(tasks)
        if self.definition.timeout is not None and self.definition.timeout.total_seconds() < seconds:
            limit = self.definition.timeout.total_seconds()
            total = WorstCase(seconds=limit, text=f"{format_seconds(limit)} (the workflow's timeout)")
        else:
            total = worst_case(seconds, note)
        grouped: dict[int, list[str]] = {}
        for task in self.definition.tasks:
            grouped.setdefault(levels[task.id], []).append(task.id)
        return Plan(
            workflow=self.definition.name, revision=revision, params=params or {},
            levels=[grouped[level] for level in sorted(grouped)], tasks=tasks,
            on_failure=[task.id for task in self.definition.on_failure], critical_path=path, worst_case=total,
            concurrency=_key_plan(self.definition.concurrency, context, params is not None, self.task_queue),
        )  # fmt: skip

    def _levels(self) -> dict[str, int]:
        levels: dict[str, int] = {}
        for task_id in self.graph:
            stack = [task_id]
            while stack:  # registered definitions are acyclic; an explicit stack keeps long chains off recursion
                node = stack[-1]
                missing = [dep for dep in self.graph[node] if dep not in levels]
                if missing:
                    stack.extend(missing)
                    continue
                levels[node] = 1 + max((levels[dep] for dep in self.graph[node]), default=-1)
                stack.pop()
        return levels

    def _task(self, task: Task, level: int, context: Mapping[str, Any], known: bool) -> TaskPlan:
        outcome, reason, reads = self._when(task, context, known)
        renderer = _Renderer(context)
        config = renderer.value(_config_of(task), "config") if known else _config_of(task)
        fan_out = self._fan_out(task, context, known)
        seconds, note = (0.0, None) if outcome in ("skipped", "fails") else self._seconds(task, context, known)
        if fan_out is not None and seconds:
            if fan_out.waves is None:
                seconds, note = _INF, note or f"unknown (for_each size {fan_out.reason})"
            else:
                seconds *= fan_out.waves
        return TaskPlan(
            id=task.id, name=task.display_name, type=task.type, activity_type=getattr(task, "activity_type", None),
            level=level, depends_on=list(self.graph[task.id]), outcome=outcome, reason=reason, when_reads=reads,
            config=config, unrendered=renderer.unrendered, for_each=fan_out, worst_case=worst_case(seconds, note),
            concurrency=_key_plan(task.concurrency, context, known, self.task_queue),
            compensate=compensation.activity_type if (compensation := getattr(task, "compensate", None)) else None,
        )  # fmt: skip

    def _when(self, task: Task, context: Mapping[str, Any], known: bool) -> tuple[Outcome, str | None, list[str]]:
        if task.when is None:
            return "runs", None, []
        if not known:
            return "depends", "depends on the child's params", []
        sources = [match.group(1).strip() for match in TEMPLATE.finditer(task.when)]
        try:
            blocked = [found for source in sources if (found := _blocker(source)) is not None]
            if blocked:
                reads = sorted({task_id for _, ids in blocked for task_id in ids})
                return "depends", "; ".join(dict.fromkeys(why for why, _ in blocked)), reads
            decided = is_true(render(task.when, context))
        except ExpressionError as exc:
            why = next((_failure(s, exc) for s in sources if "workflow" in root_names(s)), f"fails: {exc}")
            return ("depends" if why.startswith("known") else "fails"), why, []
        return ("runs", None, []) if decided else ("skipped", f"when is false: {task.when}", [])

    def _fan_out(self, task: Task, context: Mapping[str, Any], known: bool) -> FanOut | None:
        if not isinstance(task, ActivityTask | WorkflowTask) or task.for_each is None:
            return None
        items: Any = task.for_each
        reason = None
        if isinstance(items, str):
            renderer = _Renderer(context)
            items = renderer.value(items, "for_each") if known else None
            if renderer.unrendered:
                items, reason = None, renderer.unrendered[0].reason
            elif not known:
                reason = "depends on the child's params"
        if items is not None and not isinstance(items, list):
            items, reason = None, f"fails: for_each gives {type(items).__name__}, not a list"
        if items is None:
            return FanOut(size=None, max_parallel=task.max_parallel, waves=None, reason=reason)
        waves = math.ceil(len(items) / task.max_parallel) if task.max_parallel else min(len(items), 1)
        return FanOut(size=len(items), max_parallel=task.max_parallel, waves=waves)

    def _seconds(self, task: Task, context: Mapping[str, Any], known: bool) -> tuple[float, str | None]:
        if isinstance(task, ActivityTask):
            return activity_worst_case(task, self.definition.defaults)
        if isinstance(task, ApprovalTask):
            if task.config.timeout is None:
                return _INF, "unbounded (waits for approval)"
            return task.config.timeout.total_seconds(), None
        if isinstance(task, SleepTask):
            if task.config.duration is not None:
                return task.config.duration.total_seconds(), None
            return _INF, "unknown (sleeps until a moment; depends on when the run gets there)"
        if isinstance(task, WorkflowTask):
            return self._child(task, context, known)
        assert isinstance(task, SetTask)
        return 0.0, None

    def _child(self, task: WorkflowTask, context: Mapping[str, Any], known: bool) -> tuple[float, str | None]:
        name = task.config.workflow
        child = self.children.get(name)
        seconds, note = _INF, f"unknown (child workflow {name!r} not given)"
        if child is not None and name in self.seen:
            note = f"unknown (child workflow {name!r} starts itself again)"
        elif child is not None:
            renderer = _Renderer(context)
            given = renderer.value(task.config.params, "params") if known else {}
            params: dict[str, Any] | None = None
            if known and not renderer.unrendered:
                try:
                    params = resolve_params(child, given)
                except Exception:  # noqa: BLE001 - the run fails that task: its params cannot decide anything here
                    params = None
            planned = _Planner(child, self.children, self.seen, self.task_queue).plan(params, None).worst_case
            seconds = _INF if planned.seconds is None else planned.seconds
            note = planned.text
        limit = min(filter(None, (task.timeout, child.timeout if child else None)), default=None)
        if limit is not None and limit.total_seconds() < seconds:
            return limit.total_seconds(), None
        return seconds, note

    def _critical_path(self, tasks: list[TaskPlan]) -> tuple[list[str], float, str | None]:
        """The chain of tasks that ends last, how long it takes, and what leaves it unbounded."""
        by_id = {task.id: task for task in tasks}
        finish: dict[str, float] = {}
        before: dict[str, str | None] = {}
        for task in sorted(tasks, key=lambda t: t.level):
            deps = self.graph[task.id]
            last = max(deps, key=lambda dep: finish[dep], default=None)
            seconds = _INF if task.worst_case.seconds is None else task.worst_case.seconds
            finish[task.id] = (finish[last] if last else 0.0) + seconds
            before[task.id] = last
        end = max(finish, key=lambda task_id: finish[task_id])
        path: list[str] = []
        node: str | None = end
        while node is not None:
            path.append(node)
            node = before[node]
        path.reverse()
        note = next((f"{by_id[t].worst_case.text} at {t}" for t in path if by_id[t].worst_case.seconds is None), None)
        return path, finish[end], note


def _config_of(task: Task) -> Any:
    if isinstance(task, ApprovalTask):
        return task.config.model_dump(mode="json", exclude_defaults=True)
    if isinstance(task, SleepTask):
        return task.config.model_dump(mode="json", exclude_none=True)
    if isinstance(task, WorkflowTask):
        return task.config.model_dump(mode="json")
    return task.config


def plan_stored(
    text: str,
    *,
    given: Mapping[str, Any],
    revision: int | None,
    children: Mapping[str, dict[str, Any]],
    task_queue: str | None = None,
) -> Plan:
    """Plan a stored revision given as JSON text (what `api/registration.off_loop` sends to another process).

    Raises:
        DslError: The params are invalid.
    """
    definition = WorkflowDefinition.from_stored(json.loads(text))
    known = {name: WorkflowDefinition.from_stored(stored) for name, stored in children.items()}
    return plan_run(definition, given, revision=revision, children=known, task_queue=task_queue)
