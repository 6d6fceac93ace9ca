"""What a case expected against what the run did: one readable line per difference, named by its path."""

from __future__ import annotations

import json
from typing import Any

from workflow_engine.dsl.testcases import Expect


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:199] + "…"


def subset_diff(expected: Any, actual: Any, path: str) -> list[str]:
    """Differences of `actual` from `expected`: mappings need only the expected keys, lists match item by item."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object {_show(expected)}, got {_show(actual)}"]
        lines = []
        for key, value in expected.items():
            if key not in actual:
                lines.append(f"{path}.{key}: expected {_show(value)}, missing")
            else:
                lines.extend(subset_diff(value, actual[key], f"{path}.{key}"))
        return lines
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {_show(expected)}, got {_show(actual)}"]
        return [line for i, item in enumerate(expected) for line in subset_diff(item, actual[i], f"{path}[{i}]")]
    # 2 and 2.0 are equal, as in expressions; True and 1 are not
    same = expected == actual and isinstance(expected, bool) == isinstance(actual, bool)
    return [] if same else [f"{path}: expected {_show(expected)}, got {_show(actual)}"]


def _contains(expected: str, actual: Any, path: str) -> list[str]:
    if isinstance(actual, str) and expected in actual:
        return []
    return [f"{path}: expected an error containing {_show(expected)}, got {_show(actual)}"]


def mismatches(expect: Expect, detail: dict[str, Any]) -> list[str]:
    """Every way the run `detail` (as GET /executions/{id} answers it) differs from `expect`; empty: it passed."""
    lines: list[str] = []
    if expect.status is not None and detail.get("status") != expect.status:
        got = detail.get("status")
        lines.append(
            f"status: expected {expect.status}, got {got}" + (f" ({detail['error']})" if detail.get("error") else "")
        )
    tasks = {task["id"]: task for task in detail.get("tasks") or []}
    for task_id, want in expect.tasks.items():
        task = tasks.get(task_id, {})
        if want.status is not None and task.get("status") != want.status:
            error = f" ({task['error']})" if task.get("error") else ""
            lines.append(f"tasks.{task_id}.status: expected {want.status}, got {task.get('status')}{error}")
        if want.given("output"):
            lines.extend(subset_diff(want.output, task.get("output"), f"tasks.{task_id}.output"))
        if want.error is not None:
            lines.extend(_contains(want.error, task.get("error"), f"tasks.{task_id}.error"))
    if expect.given("output"):
        lines.extend(subset_diff(expect.output, detail.get("output"), "output"))
    if expect.error is not None:
        lines.extend(_contains(expect.error, detail.get("error"), "error"))
    return lines
