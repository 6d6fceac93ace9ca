"""`compensate:` on tasks: the model, a stored round trip, located errors and the scope of its expressions."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition
from workflow_engine.dsl.model import ActivityTask, WorkflowTask

VALID = """\
name: booking
params:
  rooms: {type: array, default: [a, b]}
tasks:
  - id: hold
    activity_type: http_request
    config: {method: POST, url: "https://hotel.example.com/holds"}
    compensate:
      activity_type: http_request
      config:
        method: DELETE
        url: "https://hotel.example.com/holds/${{ output.body.id }}"
        headers: {Authorization: "Bearer ${{ secrets.HOTEL_TOKEN }}"}
      timeout: 10s
      retry_policy: {max_attempts: 5, initial_interval: 1s}
  - id: rooms
    for_each: "${{ params.rooms }}"
    activity_type: log
    config: {message: "book ${{ item }}"}
    compensate:
      activity_type: log
      config: {message: "release ${{ item }} (${{ index }}): ${{ task.output }} after ${{ tasks.hold.output.body.id }}"}
  - id: invoice
    type: workflow
    config: {workflow: invoicing}
    compensate:
      activity_type: log
      config: {message: "void ${{ output }} of ${{ workflow.execution_id }} for ${{ params.rooms }}"}
"""


def issues(text: str) -> list[str]:
    """Parse `text` as `f.yaml`, require a `DslError`, and return its issues as text."""
    with pytest.raises(DslError) as caught:
        parse_definition(textwrap.dedent(text).lstrip("\n"), file="f.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_compensations_parse_on_activity_and_workflow_tasks_and_survive_a_stored_round_trip() -> None:
    definition = parse_definition(VALID, file="f.yaml")
    hold, rooms, invoice = definition.tasks
    assert isinstance(hold, ActivityTask) and hold.compensate is not None
    assert hold.compensate.activity_type == "http_request" and hold.compensate.timeout == timedelta(seconds=10)
    assert hold.compensate.retry_policy is not None and hold.compensate.retry_policy.max_attempts == 5
    assert isinstance(rooms, ActivityTask) and rooms.compensate is not None
    assert isinstance(invoice, WorkflowTask) and invoice.compensate is not None
    assert WorkflowDefinition.from_stored(definition.model_dump(mode="json")) == definition


def test_a_task_without_compensate_has_none_and_dumps_it_as_null() -> None:
    definition = parse_definition("name: x\ntasks:\n  - {id: a, activity_type: log, config: {message: hi}}\n")
    assert definition.tasks[0].compensate is None  # type: ignore[union-attr]


def test_unknown_and_misplaced_fields_are_located() -> None:
    found = issues(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            config: {message: hi}
            compensate:
              activity_type: log
              retries: 3
          - id: b
            type: set
            config: {n: 1}
            compensate: {activity_type: log}
          - id: c
            activity_type: log
            compensate: {config: {message: no type}}
          - id: d
            activity_type: log
            compensate: {activity_type: log, timeout: 1s, timeouts: {start_to_close: 2s}}
        """
    )
    assert any(i.startswith("tasks[0].compensate.retries: unknown field") and "(f.yaml:8:" in i for i in found), found
    assert any(i.startswith("tasks[1].compensate: unknown field") and "(f.yaml:12:" in i for i in found), found
    assert any(i.startswith("tasks[2].compensate.activity_type: ") and "(f.yaml:15:" in i for i in found), found
    assert any(i.startswith("tasks[3].compensate: ") and "not both" in i and "(f.yaml:18:" in i for i in found), found


def test_the_compensation_activity_type_and_python_function_are_checked() -> None:
    found = issues(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            config: {message: hi}
            compensate: {activity_type: teleport}
          - id: b
            activity_type: log
            config: {message: hi}
            compensate: {activity_type: python, config: {function: "os:system", args: [ls]}}
          - id: c
            activity_type: log
            config: {message: hi}
            compensate: {activity_type: python, config: {}}
        """
    )
    assert any(i.startswith("tasks[0].compensate.activity_type: unknown activity_type 'teleport'") and
               "(f.yaml:6:" in i for i in found), found  # fmt: skip
    assert any(i.startswith("tasks[1].compensate.config.function: ") and "never allowed" in i and "(f.yaml:10:" in i
               for i in found), found  # fmt: skip
    assert any(i.startswith("tasks[2].compensate.config.function: python tasks need config.function") for i in found)


def test_expressions_see_output_task_and_upstream_tasks_only() -> None:
    found = issues(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            config: {message: hi}
          - id: b
            depends_on: []
            activity_type: log
            config: {message: hi}
            compensate:
              activity_type: log
              config:
                message: "${{ tasks.a.output }}"
                other: "${{ item }} ${{ error.message }}"
                more: "${{ nonsense.x }}"
                secret: "${{ secrets.T + output }}"
                syntax: "${{ output. }}"
        """
    )
    assert any(i.startswith("tasks[1].compensate.config.message: task 'a' is neither this task nor upstream") and
               "(f.yaml:13:" in i for i in found), found  # fmt: skip
    assert any("compensate.config.other: 'item' is available only in the compensation of a for_each task" in i
               for i in found), found  # fmt: skip
    assert any("compensate.config.other: 'error' is available only in on_failure tasks" in i for i in found), found
    assert any("compensate.config.more: unknown name 'nonsense'" in i and "output, task" in i for i in found), found
    assert any("compensate.config.secret: an expression reading secrets may read nothing else" in i for i in found)
    assert any(i.startswith("tasks[1].compensate.config.syntax: ") and "(f.yaml:17:" in i for i in found), found


def test_output_and_task_stay_unknown_outside_compensations() -> None:
    found = issues(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            config: {message: "${{ output }} ${{ task.id }}"}
        """
    )
    assert any("unknown name 'output'" in i for i in found) and any("unknown name 'task'" in i for i in found)


def test_on_failure_tasks_cannot_compensate() -> None:
    found = issues(
        """
        name: x
        tasks:
          - {id: a, activity_type: log, config: {message: hi}}
        on_failure:
          - id: alert
            activity_type: log
            config: {message: hi}
            compensate: {activity_type: log, config: {message: undo}}
        """
    )
    assert found == ["on_failure[0].compensate: on_failure tasks cannot compensate: they run after the compensations "
                     "(f.yaml:8:5)"]  # fmt: skip
