"""`concurrency:` on a workflow and on tasks: what parses, and each mistake as an issue at its file and line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition
from workflow_engine.dsl.concurrency import MAX_KEY_CHARS, key_text, lock_id

GOOD = """\
name: deploy
params:
  environment: {type: string, required: true}
concurrency: {key: "${{ params.environment }}", limit: 2, timeout: 10m}
tasks:
  - id: build
    activity_type: log
  - id: release
    type: sleep
    concurrency: {key: "release-${{ tasks.build.output }}", on_conflict: skip}
    config: {duration: 1s}
"""


def _issues(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(DslError) as caught:
        parse_definition(text, file="deploy.yaml")
    return [(issue.path, issue.line, issue.message) for issue in caught.value.issues]


def test_a_workflow_and_a_task_key_parse_with_their_defaults() -> None:
    definition = parse_definition(GOOD, file="deploy.yaml")
    assert definition.concurrency is not None
    assert (definition.concurrency.limit, definition.concurrency.on_conflict) == (2, "queue")
    assert definition.concurrency.timeout == timedelta(minutes=10)
    task = definition.tasks[1].concurrency
    assert task is not None and (task.limit, task.on_conflict, task.timeout) == (1, "skip", None)
    assert definition.tasks[0].concurrency is None
    # a stored definition loads again as the worker reads it
    assert WorkflowDefinition.from_stored(definition.model_dump(mode="json")) == definition


BAD = {
    "unknown on_conflict": (
        GOOD.replace("on_conflict: skip", "on_conflict: wait"),
        "tasks[1].concurrency.on_conflict",
        10,
        "Input should be 'queue', 'skip' or 'fail'",
    ),
    "limit 0": (GOOD.replace("limit: 2", "limit: 0"), "concurrency.limit", 4, "greater than or equal to 1"),
    "limit too large": (GOOD.replace("limit: 2", "limit: 1001"), "concurrency.limit", 4, "less than or equal to 1000"),
    "no key": (GOOD.replace('key: "${{ params.environment }}", ', ""), "concurrency.key", 4, "Field required"),
    "unknown field": (GOOD.replace("limit: 2", "limits: 2"), "concurrency.limits", 4, "unknown field"),
    "timeout without queue": (
        GOOD.replace("on_conflict: skip}", "on_conflict: skip, timeout: 1m}"),
        "tasks[1].concurrency",
        10,
        "timeout needs on_conflict: queue, not skip",
    ),
    "task key reads an unknown task": (
        GOOD.replace("tasks.build.output", "tasks.nope.output"),
        "tasks[1].concurrency.key",
        10,
        "task 'nope' is not upstream of this task",
    ),
    "task key reads a later task": (
        GOOD.replace(
            "    activity_type: log\n",
            '    activity_type: log\n    concurrency: {key: "${{ tasks.release.output }}"}\n',
        ),
        "tasks[0].concurrency.key",
        8,
        "task 'release' is not upstream of this task",
    ),
    "workflow key reads a task": (
        GOOD.replace('params.environment }}", limit', 'tasks.build.output }}", limit'),
        "concurrency.key",
        4,
        "task 'build' has not run yet",
    ),
    "workflow key reads item": (
        GOOD.replace('params.environment }}", limit', 'item }}", limit'),
        "concurrency.key",
        4,
        "'item' is available only inside the config of a for_each task",
    ),
    "task key reads secrets": (
        GOOD.replace("release-${{ tasks.build.output }}", "${{ secrets.TOKEN }}"),
        "tasks[1].concurrency.key",
        10,
        "'secrets' is available only in the config of activity tasks",
    ),
    "key syntax error": (GOOD.replace("params.environment }}", "params.environment + }}"), "concurrency.key", 4, ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_mistake_is_an_issue_at_its_line(case: str) -> None:
    text, path, line, message = BAD[case]
    issues = _issues(text)
    assert any(p == path and ln == line and message in m for p, ln, m in issues), issues


def test_lock_ids_keep_short_keys_and_hash_long_or_unprintable_ones() -> None:
    assert lock_id("prod", "workflow-engine") == "wfe-lock:workflow-engine:prod"
    assert lock_id("prod", "staging-queue") != lock_id("prod", "workflow-engine")  # deployments never share a lock
    long = lock_id("x" * (MAX_KEY_CHARS + 1), "q")
    assert long.startswith("wfe-lock:q:sha256:") and len(long) == len("wfe-lock:q:sha256:") + 64
    assert lock_id("a\nb", "q") != lock_id("a b", "q") and lock_id("a\nb", "q").startswith("wfe-lock:q:sha256:")
    assert lock_id("x" * (MAX_KEY_CHARS + 1), "q") == long  # stable: every process finds the same lock
    assert (key_text("prod"), key_text(3), key_text({"b": 1, "a": [2]})) == ("prod", "3", '{"a":[2],"b":1}')
