"""Rich renderings of API answers for the CLI: task tables, the live watch view, approvals and the task DAG."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from workflow_engine.engine.types import RunStatus

Json = dict[str, Any]
STATUS_STYLES = {
    "pending": "dim",
    "running": "cyan",
    "waiting_approval": "yellow",
    "completed": "green",
    "failed": "red",
    "rejected": "red",
    "skipped": "dim",
    "cancelled": "magenta",
    "compensated": "blue",
    "compensation_failed": "red",
    "unknown": "dim",
    "terminated": "magenta",
    "timed_out": "magenta",
}
# What `run --watch` exits with for each closed run status.
EXIT_CODES = {RunStatus.COMPLETED: 0, RunStatus.FAILED: 1}
ITEM_BAR_WIDTH = 20


@dataclass(frozen=True)
class FanOut:
    """What the CLI knows of a `for_each` task while it runs: items finished so far (from the run's history)."""

    done: int = 0


def exit_code(status: str) -> int:
    """Return 0 for a completed run, 1 for a failed (or rejected) one, 2 for cancelled, terminated or timed out."""
    return EXIT_CODES.get(RunStatus(status), 2)


def styled_status(status: str) -> Text:
    """Return a status word in its colour."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(task: Mapping[str, Any], now: datetime | None = None) -> str:
    """Return how long a task ran (or has been running), e.g. `1.2s` or `3m04s`; empty before it starts."""
    started = _instant(task.get("started_at"))
    if started is None:
        return ""
    ended = _instant(task.get("finished_at")) or now or datetime.now(UTC)
    seconds = max((ended - started).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def fan_out_ids(source_yaml: str) -> set[str]:
    """Return the ids of the tasks with a `for_each` in a workflow's YAML source."""
    try:
        document = yaml.safe_load(source_yaml)
    except yaml.YAMLError:
        return set()
    tasks = document.get("tasks") if isinstance(document, dict) else None
    return {t["id"] for t in tasks or [] if isinstance(t, dict) and "for_each" in t and isinstance(t.get("id"), str)}


def items_done(history: Iterable[Mapping[str, Any]], task_ids: Iterable[str]) -> dict[str, FanOut]:
    """Count the completed activities of each given task in a run's history timeline (one per item)."""
    counts = dict.fromkeys(task_ids, 0)
    for event in history:
        if event.get("type") == "ActivityTaskCompleted" and event.get("task_id") in counts:
            counts[event["task_id"]] += 1
    return {task_id: FanOut(done) for task_id, done in counts.items()}


def _progress(task: Mapping[str, Any], fan_out: FanOut | None) -> RenderableType:
    """The items cell: a full bar with done/total once a fan-out finished, a pulsing bar and a count while it runs."""
    if fan_out is None:
        return ""
    output = task.get("output")
    row = Table.grid(padding=(0, 1))
    total, done = task.get("items_total"), task.get("items_done")
    if isinstance(total, int) and isinstance(done, int):  # the run reports its items (in-workflow fan-outs)
        row.add_row(ProgressBar(total=max(total, 1), completed=done, width=ITEM_BAR_WIDTH),
                    Text(f"{done}/{total} items"))  # fmt: skip
    elif task.get("status") == "completed" and isinstance(output, list):
        row.add_row(ProgressBar(total=max(len(output), 1), completed=len(output), width=ITEM_BAR_WIDTH),
                    Text(f"{len(output)}/{len(output)} items"))  # fmt: skip
    elif task.get("status") == "running":  # fan-outs in batch children report no total until the task ends
        row.add_row(ProgressBar(total=None, width=ITEM_BAR_WIDTH), Spinner("dots", text=f"{fan_out.done} done/?"))
    elif fan_out.done:
        row.add_row(Text(f"{fan_out.done} item(s) done"))
    return row


def task_table(
    detail: Mapping[str, Any], fan_outs: Mapping[str, FanOut] | None = None, now: datetime | None = None
) -> Table:
    """Return a table of a run's tasks: id, type, status, attempts, duration, items and a note (error, approval)."""
    fan_outs = fan_outs or {}
    table = Table(title=f"{detail['workflow_id']} · {detail['execution_id']}", title_justify="left")
    for column in ("task", "type", "status", "attempts", "duration", "items", "note"):
        table.add_column(column, overflow="fold")
    for task in detail.get("tasks", []):
        status = task.get("status", "unknown")
        running = status == "running" and task["id"] not in fan_outs
        status_cell: RenderableType = Spinner("dots", text=styled_status(status)) if running else styled_status(status)
        note = task.get("error") or task.get("message") or ""
        if task.get("reused_from"):
            note = f"kept from {task['reused_from']}" + (f"; {note}" if note else "")
        if task.get("waiting_for"):
            note = f"waiting for concurrency key {task['waiting_for']}"
        table.add_row(
            task["id"], task.get("type", ""), status_cell, str(task.get("attempts", 0)), duration(task, now),
            _progress(task, fan_outs.get(task["id"])), Text(str(note), style="red" if task.get("error") else ""),
        )  # fmt: skip
    return table


def approval_hints(detail: Mapping[str, Any]) -> list[str]:
    """Return one line per task waiting for approval, with the commands that decide it."""
    lines = []
    for task in detail.get("tasks", []):
        if task.get("status") != "waiting_approval":
            continue
        command = f"python -m workflow_engine approve {detail['execution_id']} {task['id']}"
        decided = len(task.get("approvals") or [])
        needed = task.get("required_approvals") or 1
        lines.append(f"{task['id']} waits for approval ({decided}/{needed}): {command}  (or add --reject)")
    return lines


def watch_view(detail: Mapping[str, Any], fan_outs: Mapping[str, FanOut] | None = None) -> Group:
    """Return the live view of a run: its status line, the task table and the approvals it waits for."""
    header = Text.assemble("run ", (detail["execution_id"], "bold"), ": ", styled_status(detail["status"]))
    hints = [Text(line, style="yellow") for line in approval_hints(detail)]
    return Group(header, task_table(detail, fan_outs), *hints)


def status_lines(previous: Mapping[str, str], detail: Mapping[str, Any]) -> list[str]:
    """Return a plain line for each task whose status changed since `previous` (the non-terminal watch)."""
    lines = []
    for task in detail.get("tasks", []):
        status = task.get("status", "unknown")
        if previous.get(task["id"]) == status:
            continue
        extra = [f"attempt(s) {task['attempts']}"] if task.get("attempts") else []
        extra += [duration(task)] if task.get("finished_at") else []
        extra += [str(task["error"])] if task.get("error") else []
        lines.append(f"{task['id']}: {status}" + (f" ({', '.join(extra)})" if extra else ""))
    lines += approval_hints(detail) if any(line.endswith(": waiting_approval") for line in lines) else []
    return lines


def runs_table(items: Sequence[Mapping[str, Any]]) -> Table:
    """Return a table of runs (GET /executions): id, workflow, revision, status, started, finished."""
    table = Table()
    for column in ("execution", "workflow", "rev", "status", "started", "finished"):
        table.add_column(column, overflow="fold")
    for run in items:
        table.add_row(
            run["execution_id"], run["workflow_id"], str(run.get("revision") or ""), styled_status(run["status"]),
            run.get("started_at") or "", run.get("finished_at") or "",
        )  # fmt: skip
    return table


def approvals_table(items: Sequence[Mapping[str, Any]]) -> Table:
    """Return a table of the approval inbox (GET /approvals) with the command deciding each."""
    table = Table()
    for column in ("execution", "task", "approvals", "message", "deadline", "decide with"):
        table.add_column(column, overflow="fold")
    for item in items:
        decided = f"{len(item.get('approvals') or [])}/{item.get('required_approvals') or 1}"
        command = f"python -m workflow_engine approve {item['execution_id']} {item['task_id']} [--reject]"
        table.add_row(
            item["execution_id"], item["task_id"], decided, item.get("message") or "", item.get("deadline") or "",
            command,
        )  # fmt: skip
    return table


def levels(tasks: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Group tasks by depth in the DAG: level 0 has no dependencies, each other task sits below its deepest one."""
    by_id = {task["id"]: task for task in tasks}
    depth: dict[str, int] = {}

    def depth_of(task_id: str) -> int:  # registered definitions have no cycles
        if task_id not in depth:
            parents = [p for p in by_id[task_id].get("depends_on", []) if p in by_id]
            depth[task_id] = 1 + max((depth_of(p) for p in parents), default=-1)
        return depth[task_id]

    grouped: list[list[Mapping[str, Any]]] = []
    for task in tasks:
        level = depth_of(task["id"])
        grouped.extend([] for _ in range(level + 1 - len(grouped)))
        grouped[level].append(task)
    return grouped


def graph_view(workflow: Mapping[str, Any], fan_outs: set[str] | None = None) -> Group:
    """Return the DAG of a workflow (GET /workflows/{id}) drawn as levels, each task with arrows from its parents."""
    fan_outs = fan_outs or set()
    table = Table(box=None, show_header=False, pad_edge=False)
    for _ in range(4):
        table.add_column()
    for number, level in enumerate(levels(workflow.get("tasks", [])), start=1):
        for index, task in enumerate(level):
            parents = ", ".join(task.get("depends_on", []))
            kind = task.get("activity_type") or task.get("type", "")
            kind += " · for_each" if task["id"] in fan_outs else ""
            table.add_row(
                Text(str(number) if index == 0 else "", style="bold"), Text(task["id"], style="cyan"),
                Text(f"◀── {parents}" if parents else ""), Text(f"[{kind}]", style="dim"),
            )  # fmt: skip
    title = Text.assemble((str(workflow["workflow_id"]), "bold"), f" revision {workflow.get('revision')}")
    return Group(title, table)
