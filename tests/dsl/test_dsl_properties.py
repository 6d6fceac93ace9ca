"""Property tests: whatever text comes in, the parser answers with a definition or a `DslError`, nothing else."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition, render
from workflow_engine.dsl.model import ActivityTask

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = """\
name: order-processing
version: 1.0
description: Process an order
params:
  order_id: {type: string, required: true, pattern: "^o-"}
  amount: {type: number, minimum: 0, maximum: 1000000, required: true}
  items: {type: array, default: []}
  priority: {type: string, enum: [low, normal, high], default: normal}
  due: {type: datetime, default: "2026-01-01T00:00:00Z"}
timeout: 7d
max_parallel: 20
defaults:
  timeout: 1m
  retry_policy: &retry {max_attempts: 3, initial_interval: 1s, backoff_coefficient: 2.0, maximum_interval: 1m}
tasks:
  - id: validate
    name: Validate order
    type: activity
    activity_type: python
    config:
      function: orders:validate
      kwargs: {order: "${{ params }}", doubled: "${{ params.items.map(x, x * 2) }}"}
    timeout: 10s
    retry_policy: {max_attempts: 5, non_retryable_errors: [ValidationError]}
  - id: announce
    activity_type: log
    config:
      message: |
        validated ${{ params.order_id }}
        for ${{ params.amount }}
  - id: side
    activity_type: log
    depends_on: [validate]
    when: "${{ params.amount > 1000.0 && tasks.validate.status == 'completed' }}"
    retry_policy: *retry
    config: {message: 'side ${{ tasks["validate"].output }}'}
  - id: last
    activity_type: log
    depends_on: [announce, side]
    timeouts: {start_to_close: 5s, schedule_to_close: PT1M, heartbeat: 500ms}
    continue_on_error: true
output:
  validated: "${{ tasks.validate.output }}"
  summary: "${{ tasks.announce.output }} / ${{ tasks.last.status }}"
"""

YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")

TOKENS = [
    *"abcxyz019:-[]{},&*!|>'\"#%@`?.$<=()\\\n\n\n \t",
    "  ",
    "    ",
    "- ",
    ": ",
    "name",
    "tasks",
    "id",
    "activity_type",
    "log",
    "python",
    "depends_on",
    "params",
    "type",
    "default",
    "enum",
    "timeout",
    "retry_policy",
    "max_attempts",
    "config",
    "output",
    "when",
    "${{",
    "}}",
    "${{ tasks.a.output }}",
    "<<",
    "&a",
    "*a",
    "!!int",
    "!!binary",
    "!!timestamp",
    "!!python/object:os.system",
    "---",
    "...",
    "%YAML 1.1",
    "2001-13-45",
    "30s",
    "PT30S",
    "1e999",
    "99999999999999999999999d",
    ".inf",
    ".nan",
    "~",
    "null",
    "true",
    "\x00",
    "\ufeff",
    "\u2028",
    "é",
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["log", "python", "shell", "1s", "0s", "PT5M", "${{ params.x }}", "${{ 1 + }}", "[", "a", "A"]),
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "name",
            "version",
            "tasks",
            "params",
            "id",
            "activity_type",
            "depends_on",
            "config",
            "when",
            "timeout",
            "timeouts",
            "retry_policy",
            "max_attempts",
            "type",
            "default",
            "enum",
            "minimum",
            "maximum",
            "pattern",
            "required",
            "output",
            "defaults",
            "max_parallel",
            "bogus",
        ]
    ),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=15,
)


def check_outcome(text: str) -> WorkflowDefinition | None:
    """Parse `text`; allow only a definition or a `DslError` whose issues are well formed."""
    try:
        return parse_definition(text, file="f.yaml")
    except DslError as exc:
        assert exc.issues
        last_line = len(YAML_LINE_BREAK.findall(text)) + 2  # YAML also breaks lines at \x85, \u2028, \u2029
        for issue in exc.issues:
            assert issue.message
            assert issue.file == "f.yaml"
            assert issue.line is None or 1 <= issue.line <= last_line, (issue, last_line)
            assert (issue.line is None) == (issue.column is None)
            assert issue.column is None or issue.column >= 1
            assert str(issue).endswith(")")
        return None


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """Return the valid document after a few random character and line edits."""
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["delete", "insert", "replace", "swap", "duplicate", "drop_line", "indent"]))
        lines = text.split("\n")
        if operation in ("delete", "insert", "replace") and text:
            at = draw(st.integers(0, len(text) - 1))
            size = draw(st.integers(1, 8))
            piece = draw(st.one_of(st.sampled_from(TOKENS), st.text(min_size=1, max_size=3)))
            if operation == "delete":
                text = text[:at] + text[at + size :]
            elif operation == "insert":
                text = text[:at] + piece + text[at:]
            else:
                text = text[:at] + piece + text[at + size :]
            continue
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        if operation == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif operation == "duplicate":
            lines.insert(j, lines[i])
        elif operation == "drop_line":
            del lines[i]
        elif operation == "indent":
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t"])) + lines[i].lstrip(" ")
        text = "\n".join(lines)
    return text


def test_the_base_document_is_valid() -> None:
    definition = parse_definition(VALID)
    assert [task.id for task in definition.tasks] == ["validate", "announce", "side", "last"]


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=120).map("".join))
def test_yaml_like_token_soup_only_raises_dsl_errors(text: str) -> None:
    check_outcome(text)


@PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_only_raises_dsl_errors(text: str) -> None:
    check_outcome(text)


@PROPERTY_SETTINGS
@given(mutated())
def test_mutations_of_a_valid_document_only_raise_dsl_errors(text: str) -> None:
    check_outcome(text)


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join), st.integers(0, len(VALID)))
def test_insertions_into_a_valid_document_only_raise_dsl_errors(piece: str, at: int) -> None:
    check_outcome(VALID[:at] + piece + VALID[at:])


def replace_at(data: Any, path: list[int], value: Any) -> Any:
    """Return `data` with the node reached by following `path` (indices modulo sizes) replaced by `value`."""
    if not path or not isinstance(data, dict | list) or not data:
        return value
    if isinstance(data, dict):
        key = sorted(data)[path[0] % len(data)]
        return {**data, key: replace_at(data[key], path[1:], value)}
    index = path[0] % len(data)
    return [*data[:index], replace_at(data[index], path[1:], value), *data[index + 1 :]]


@PROPERTY_SETTINGS
@given(st.lists(st.integers(0, 50), max_size=6), VALUES)
def test_structurally_mutated_definitions_only_raise_dsl_errors(path: list[int], value: Any) -> None:
    data = replace_at(yaml.safe_load(VALID), path, value)
    check_outcome(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@PROPERTY_SETTINGS
@given(VALUES)
def test_random_data_only_raises_dsl_errors(value: Any) -> None:
    check_outcome(yaml.safe_dump(value, allow_unicode=True))


@PROPERTY_SETTINGS
@given(mutated())
def test_parsing_is_deterministic(text: str) -> None:
    def outcome() -> str:
        """Return the parsed definition or the error, as text."""
        try:
            return repr(parse_definition(text, file="f.yaml"))
        except DslError as exc:
            return str(exc)

    assert outcome() == outcome()


@PROPERTY_SETTINGS
@given(st.integers(1, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_short_durations(amount: int, unit: str) -> None:
    seconds = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    text = f"name: x\ntasks: [{{id: a, activity_type: log, timeout: {amount}{unit}}}]\n"
    task = parse_definition(text).tasks[0]
    assert isinstance(task, ActivityTask)
    assert task.timeout == timedelta(seconds=amount * seconds)


@PROPERTY_SETTINGS
@given(st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none()))
def test_interpolation_of_scalars(value: str | int | bool | None) -> None:
    if value is None:
        expected = ""
    elif isinstance(value, bool):
        expected = "true" if value else "false"
    else:
        expected = str(value)
    assert render("<${{ params.v }}>", {"params": {"v": value}}) == f"<{expected}>"
    assert render("${{ params.v }}", {"params": {"v": value}}) == value
