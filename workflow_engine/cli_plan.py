"""`plan FILE` for the CLI: the child definitions next to the file, and the plan drawn as a rich table."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition
from workflow_engine.dsl.model import WorkflowTask
from workflow_engine.dsl.plan import Plan, TaskPlan

_OUTCOME_STYLES = {"runs": "green", "skipped": "dim", "depends": "yellow", "fails": "red"}
CONFIG_CHARS = 300  # a longer rendered config is cut in the table (`--json` has it whole)


def sibling_children(
    definition: WorkflowDefinition, folder: Path, *, activity_types: tuple[str, ...],
    python_modules: Collection[str] | None,
) -> dict[str, WorkflowDefinition]:  # fmt: skip
    """The definitions in `folder` that `workflow` tasks start (transitively), by name; invalid files are skipped."""
    wanted = _child_names(definition)
    if not wanted:
        return {}
    found: dict[str, WorkflowDefinition] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            text = path.read_text(encoding="utf-8")
            found_one = parse_definition(text, file=str(path), activity_types=activity_types,
                                         python_modules=python_modules)  # fmt: skip
        except (OSError, DslError):
            continue
        found.setdefault(found_one.name, found_one)
    children: dict[str, WorkflowDefinition] = {}
    while wanted:
        name = wanted.pop()
        if name in found and name not in children:
            children[name] = found[name]
            wanted |= _child_names(found[name])
    return children


def _child_names(definition: WorkflowDefinition) -> set[str]:
    return {t.config.workflow for t in (*definition.tasks, *definition.on_failure) if isinstance(t, WorkflowTask)}


def _when(task: TaskPlan) -> Text:
    label = task.outcome if task.outcome in ("runs", "skipped") else task.reason or task.outcome
    return Text(label, style=_OUTCOME_STYLES[task.outcome])


def _fan_out(task: TaskPlan) -> str:
    if task.for_each is None:
        return ""
    if task.for_each.size is None:
        return f"? ({task.for_each.reason})"
    waves = f", {task.for_each.waves} wave(s) of ≤{task.for_each.max_parallel}" if task.for_each.max_parallel else ""
    return f"{task.for_each.size} item(s){waves}"


def _config(task: TaskPlan) -> str:
    text = json.dumps(task.config, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= CONFIG_CHARS else text[: CONFIG_CHARS - 1] + "…"


def plan_view(plan: Plan) -> Group:
    """Draw a plan: a row per task by level (when, fan-out, worst case, rendered config), then the whole run."""
    table = Table(show_lines=False, pad_edge=False)
    for name in ("level", "task", "type", "when", "for_each", "worst case", "config"):
        table.add_column(name, overflow="fold")
    for task in sorted(plan.tasks, key=lambda t: t.level):
        kind = task.activity_type or task.type
        table.add_row(
            str(task.level + 1), Text(task.id, style="cyan"), Text(kind, style="dim"), _when(task), _fan_out(task),
            task.worst_case.text, _config(task),
        )  # fmt: skip
    revision = f" (revision {plan.revision})" if plan.revision else ""
    path = f"  (critical path: {' → '.join(plan.critical_path)})"
    lines: list[RenderableType] = [
        Text.assemble("plan of ", (plan.workflow, "bold"), revision),
        table,
        Text.assemble(("worst case: ", "bold"), plan.worst_case.text, path),
    ]
    keys = [("the run", plan.concurrency)] + [(task.id, task.concurrency) for task in plan.tasks]
    for holder, key in keys:
        if key is not None:
            wait = {"queue": f"waits in line{f' up to {key.timeout}' if key.timeout else ''} (not in the worst case)",
                    "skip": "skips", "fail": "fails"}[key.on_conflict]  # fmt: skip
            shown = key.key if key.rendered else f"{key.key} (rendered when it starts)"
            lines.append(
                Text(f"concurrency of {holder}: key {shown}, at most {key.limit} at once; when taken it {wait}")
            )
    undo = [f"{task.id} ({task.compensate})" for task in plan.tasks if task.compensate]
    if undo:
        lines.append(Text(f"compensate (if the run fails, latest completed first): {', '.join(undo)}", style="dim"))
    if plan.on_failure:
        lines.append(Text(f"on_failure (runs only if the run fails): {', '.join(plan.on_failure)}", style="dim"))
    unrendered = [f"  {task.id}.{item.path}: {item.reason}" for task in plan.tasks for item in task.unrendered]
    if unrendered:
        lines.append(Text("left as written:\n" + "\n".join(dict.fromkeys(unrendered)), style="dim"))
    return Group(*lines)
