"""The YAML parser: a valid definition, and every refusal with its file, line, column and path."""

from __future__ import annotations

import re
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from workflow_engine.dsl import DslError, Issue, WorkflowDefinition, dependencies, parse_definition
from workflow_engine.dsl.model import ActivityTask
from workflow_engine.dsl.parser import MAX_ALIASES, MAX_BYTES, MAX_DEPTH

WORKFLOWS_DIR = Path(__file__).resolve().parents[2] / "workflows"

VALID = """\
name: order-processing
version: 1.0
description: Process an order
params:
  order_id: {type: string, required: true}
  amount: {type: number, minimum: 0, required: true}
  priority: {type: string, enum: [low, normal, high], default: normal}
timeout: 7d
max_parallel: 20
defaults:
  timeout: 1m
  retry_policy: {max_attempts: 3, initial_interval: 1s, backoff_coefficient: 2.0, maximum_interval: 1m}
tasks:
  - id: validate
    name: Validate order
    type: activity
    activity_type: python
    config:
      function: orders:validate
      kwargs: {order: "${{ params }}"}
    timeout: 10s
    retry_policy: {max_attempts: 5, non_retryable_errors: [ValidationError]}
  - id: announce
    activity_type: log
    config: {message: "validated ${{ params.order_id }}: ${{ tasks.validate.output }}"}
  - id: side
    activity_type: log
    depends_on: [validate]
    when: "${{ params.amount > 1000.0 }}"
    config: {message: side}
  - id: first
    activity_type: log
    depends_on: []
    timeouts: {start_to_close: 5s, schedule_to_close: 1m, heartbeat: 500ms}
    continue_on_error: true
output:
  validated: "${{ tasks.validate.output }}"
"""


def doc(text: str) -> str:
    """Dedent a YAML snippet written inside a test."""
    return textwrap.dedent(text).lstrip("\n")


def issues_of(text: str, file: str = "f.yaml") -> list[Issue]:
    """Parse `text`, require a `DslError`, and return its issues."""
    with pytest.raises(DslError) as caught:
        parse_definition(text, file=file)
    assert caught.value.issues, "a DslError must carry at least one issue"
    assert str(caught.value) == "\n".join(str(issue) for issue in caught.value.issues)
    return caught.value.issues


def only_issue(text: str, file: str = "f.yaml") -> Issue:
    """Parse `text` and return its single issue."""
    issues = issues_of(text, file)
    assert len(issues) == 1, [str(issue) for issue in issues]
    return issues[0]


def one_task(extra: str = "", *, activity_type: str = "log") -> str:
    """Return a definition with one task, `extra` being more lines of that task (4-space indented)."""
    return f"name: x\ntasks:\n  - id: a\n    activity_type: {activity_type}\n{extra}"


# --- a valid definition ---


def test_valid_definition_parses_with_every_field() -> None:
    definition = parse_definition(VALID, file="orders.yaml")
    assert isinstance(definition, WorkflowDefinition)
    assert definition.name == "order-processing"
    assert definition.version == "1.0"
    assert definition.description == "Process an order"
    assert definition.timeout == timedelta(days=7)
    assert definition.max_parallel == 20
    assert definition.defaults.timeout == timedelta(minutes=1)
    policy = definition.defaults.retry_policy
    assert policy is not None
    assert (policy.max_attempts, policy.initial_interval, policy.backoff_coefficient, policy.maximum_interval) == (
        3,
        timedelta(seconds=1),
        2.0,
        timedelta(minutes=1),
    )
    assert [task.id for task in definition.tasks] == ["validate", "announce", "side", "first"]
    validate = definition.task("validate")
    assert validate.display_name == "Validate order"
    assert definition.task("announce").display_name == "announce"
    assert validate.type == "activity"
    assert validate.config == {"function": "orders:validate", "kwargs": {"order": "${{ params }}"}}
    assert validate.timeout == timedelta(seconds=10)
    assert validate.retry_policy is not None and validate.retry_policy.non_retryable_errors == ["ValidationError"]
    assert definition.task("side").when == "${{ params.amount > 1000.0 }}"
    first = definition.task("first")
    assert isinstance(first, ActivityTask)
    assert first.continue_on_error is True
    assert first.timeouts is not None
    assert first.timeouts.start_to_close == timedelta(seconds=5)
    assert first.timeouts.heartbeat == timedelta(milliseconds=500)
    assert definition.params["amount"].type == "number" and definition.params["amount"].required
    assert definition.params["priority"].default == "normal"
    assert definition.output == {"validated": "${{ tasks.validate.output }}"}
    with pytest.raises(KeyError):
        definition.task("nope")


def test_depends_on_omitted_means_previous_task_and_empty_list_means_none() -> None:
    definition = parse_definition(VALID)
    assert dependencies(definition) == {
        "validate": (),
        "announce": ("validate",),
        "side": ("validate",),
        "first": (),
    }
    assert definition.task("announce").depends_on is None
    assert definition.task("first").depends_on == []


def test_defaults_apply_when_fields_are_omitted() -> None:
    definition = parse_definition(one_task())
    assert definition.version is None
    assert definition.max_parallel == 50
    assert definition.params == {}
    assert definition.timeout is None
    task = definition.tasks[0]
    assert (task.type, task.config, task.depends_on, task.when, task.continue_on_error) == (
        "activity",
        {},
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("written", "label"),
    [("1.0", "1.0"), ("2", "2"), ('"1.0"', "1.0"), ("v3-beta", "v3-beta"), ("1.10", "1.1")],
)
def test_version_number_becomes_text(written: str, label: str) -> None:
    assert parse_definition(f"name: x\nversion: {written}\ntasks: [{{id: a, activity_type: log}}]\n").version == label


def test_version_must_not_be_a_boolean_or_a_list() -> None:
    for written in ("true", "[1]"):
        issue = only_issue(f"name: x\nversion: {written}\ntasks: [{{id: a, activity_type: log}}]\n")
        assert (issue.path, issue.line) == ("version", 2)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("1.5s", timedelta(seconds=1.5)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("PT30S", timedelta(seconds=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT1M30S", timedelta(seconds=90)),
    ],
)
def test_durations(written: str, expected: timedelta) -> None:
    task = parse_definition(one_task(f"    timeout: {written}\n")).tasks[0]
    assert isinstance(task, ActivityTask)
    assert task.timeout == expected


@pytest.mark.parametrize("written", ["10", "10q", "ten seconds", "1.5", "true", "[1s]", "s", "-5s", "-PT1S"])
def test_bad_durations_are_refused_at_their_line(written: str) -> None:
    issue = only_issue(one_task(f"    timeout: {written}\n"))
    assert (issue.path, issue.file, issue.line, issue.column) == ("tasks[0].timeout", "f.yaml", 5, 5)


@pytest.mark.parametrize("written", ["0s", "0ms", "PT0S"])
def test_zero_durations_are_refused(written: str) -> None:
    issue = only_issue(one_task(f"    retry_policy: {{initial_interval: {written}}}\n"))
    assert issue.path == "tasks[0].retry_policy.initial_interval"
    assert "greater than zero" in issue.message


def test_absurdly_long_duration_is_a_dsl_error() -> None:
    issue = only_issue(one_task("    timeout: 999999999999999999999d\n"))
    assert issue.path == "tasks[0].timeout"
    assert "too large" in issue.message


# --- the form of an error ---


def test_error_carries_file_line_column_and_path_in_the_documented_form() -> None:
    text = doc(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            retry_policy:
              max_attempts: 0
        """
    )
    issue = only_issue(text)
    assert issue.path == "tasks[0].retry_policy.max_attempts"
    assert (issue.file, issue.line, issue.column) == ("f.yaml", 6, 7)
    assert re.fullmatch(r"tasks\[0\]\.retry_policy\.max_attempts: .+ \(f\.yaml:6:7\)", str(issue))
    assert "greater than or equal to 1" in issue.message
    assert issue.as_dict() == {
        "path": "tasks[0].retry_policy.max_attempts",
        "message": issue.message,
        "file": "f.yaml",
        "line": 6,
        "column": 7,
    }


def test_default_file_name_is_string_placeholder() -> None:
    with pytest.raises(DslError) as caught:
        parse_definition("name: x\n")
    assert str(caught.value) == "tasks: Field required (<string>:1:1)"


@pytest.mark.parametrize(
    ("text", "path", "line", "column"),
    [
        ("name: x\nbogus: 1\ntasks: [{id: a, activity_type: log}]\n", "bogus", 2, 1),
        (one_task("    bogus: 1\n"), "tasks[0].bogus", 5, 5),
        (
            one_task("    retry_policy:\n      max_attempts: 2\n      jitter: 0.5\n"),
            "tasks[0].retry_policy.jitter",
            7,
            7,
        ),
        (one_task("    timeouts: {start_to_close: 1s, idle: 2s}\n"), "tasks[0].timeouts.idle", 5, 36),
        (
            "name: x\nparams:\n  p: {type: string, secret: true}\n" + "tasks: [{id: a, activity_type: log}]\n",
            "params.p.secret",
            3,
            21,
        ),
        ("name: x\ndefaults:\n  retries: 3\ntasks: [{id: a, activity_type: log}]\n", "defaults.retries", 3, 3),
    ],
)
def test_unknown_field_anywhere_is_reported_at_its_line(text: str, path: str, line: int, column: int) -> None:
    issue = only_issue(text)
    assert (issue.path, issue.message, issue.line, issue.column) == (path, "unknown field", line, column)
    assert str(issue) == f"{path}: unknown field (f.yaml:{line}:{column})"


def test_missing_required_fields_are_reported() -> None:
    issues = issues_of("description: nothing\n")
    assert {(issue.path, issue.message) for issue in issues} == {
        ("name", "Field required"),
        ("tasks", "Field required"),
    }
    assert only_issue(one_task().replace("    activity_type: log\n", "")).path == "tasks[0].activity_type"


def test_empty_task_list_is_refused() -> None:
    issue = only_issue("name: x\ntasks: []\n")
    assert (issue.path, issue.line) == ("tasks", 2)


def test_several_problems_in_one_file_are_reported_together_in_document_order() -> None:
    text = doc(
        """
        name: Bad Name
        max_parallel: 0
        tasks:
          - id: a
            activity_type: log
            bogus: true
          - id: B
            activity_type: log
            timeout: soon
        """
    )
    issues = issues_of(text)
    assert [(issue.path, issue.line) for issue in issues] == [
        ("name", 1),
        ("max_parallel", 2),
        ("tasks[0].bogus", 6),
        ("tasks[1].id", 7),
        ("tasks[1].timeout", 9),
    ]


def test_semantic_problems_are_reported_together() -> None:
    text = doc(
        """
        name: x
        params:
          n: {type: integer, default: nope}
        tasks:
          - id: a
            activity_type: bash
          - id: b
            activity_type: log
            depends_on: [zzz]
            config: {message: "${{ nope.x }}"}
        """
    )
    issues = issues_of(text)
    assert [(issue.path, issue.line) for issue in issues] == [  # in file order
        ("params.n.default", 3),
        ("tasks[0].activity_type", 6),
        ("tasks[1].depends_on[0]", 9),
        ("tasks[1].config.message", 10),
    ]


# --- YAML-level refusals ---


def test_duplicate_keys_are_refused_at_the_second_one() -> None:
    issue = only_issue("name: x\ntasks: [{id: a, activity_type: log}]\nname: y\n")
    assert (issue.line, issue.column) == (3, 1)
    assert "duplicate key 'name'" in issue.message
    nested = only_issue(one_task("    config: {message: hi}\n    config: {message: ho}\n"))
    assert (nested.line, nested.column) == (6, 5)
    assert "tasks[0].config: duplicate key 'config'" in str(nested)


@pytest.mark.parametrize("key", ["1", "true", "null", "[a]", "{a: 1}", "1.5"])
def test_non_string_keys_are_refused(key: str) -> None:
    issue = only_issue(f"name: x\ntasks: [{{id: a, activity_type: log}}]\noutput:\n  {key}: v\n")
    assert "keys must be strings" in issue.message
    assert issue.line == 4


def test_quoted_number_key_is_a_string() -> None:
    definition = parse_definition('name: x\ntasks: [{id: a, activity_type: log}]\noutput:\n  "1": v\n')
    assert definition.output == {"1": "v"}


def test_merge_keys_are_refused() -> None:
    text = doc(
        """
        name: x
        output:
          base: &base {a: 1}
          more:
            <<: *base
            b: 2
        tasks: [{id: a, activity_type: log}]
        """
    )
    issue = only_issue(text)
    assert "merge keys" in issue.message
    assert (issue.line, issue.column) == (5, 5)


def test_a_few_aliases_are_fine() -> None:
    text = doc(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            retry_policy: &retry {max_attempts: 2}
          - id: b
            activity_type: log
            retry_policy: *retry
        """
    )
    first, second = parse_definition(text).tasks
    assert isinstance(first, ActivityTask) and isinstance(second, ActivityTask)
    assert first.retry_policy == second.retry_policy
    assert second.retry_policy is not None and second.retry_policy.max_attempts == 2


def test_more_than_the_maximum_number_of_aliases_is_refused() -> None:
    ok = ", ".join(["*v"] * MAX_ALIASES)
    parse_definition(f"name: x\ntasks: [{{id: a, activity_type: log}}]\noutput:\n  v: &v 1\n  l: [{ok}]\n")
    refs = ", ".join(["*v"] * (MAX_ALIASES + 1))
    issue = only_issue(f"name: x\ntasks: [{{id: a, activity_type: log}}]\noutput:\n  v: &v 1\n  l: [{refs}]\n")
    assert issue.message == f"more than {MAX_ALIASES} YAML aliases"
    assert issue.line == 5


def test_billion_laughs_within_the_alias_count_is_refused_quickly() -> None:
    # 25 levels of two aliases each: 50 aliases, but 2**25 nodes once expanded.
    lines = ["name: x", "tasks: [{id: a, activity_type: log}]", "output:", "  l0: &l0 [lol]"]
    lines += [f"  l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 26)]
    started = time.monotonic()
    issue = only_issue("\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert "aliases expand to more than" in issue.message


def test_recursive_alias_is_refused() -> None:
    issue = only_issue("name: x\ntasks: [{id: a, activity_type: log}]\noutput: &o {again: *o}\n")
    assert issue.message == f"nesting deeper than {MAX_DEPTH} levels"


def test_undefined_alias_is_invalid_yaml() -> None:
    issue = only_issue("name: x\ntasks: [{id: a, activity_type: log}]\noutput: *nowhere\n")
    assert issue.message.startswith("invalid YAML") and "undefined alias" in issue.message
    assert issue.line == 3


def test_nesting_limit() -> None:
    def nested(depth: int) -> str:
        """Return a definition whose output nests `depth` lists."""
        return f"name: x\ntasks: [{{id: a, activity_type: log}}]\noutput: {'[' * depth}1{']' * depth}\n"

    parse_definition(nested(MAX_DEPTH - 1))  # `output` itself is one level
    issue = only_issue(nested(MAX_DEPTH + 1))
    assert issue.message == f"nesting deeper than {MAX_DEPTH} levels"
    assert issue.line == 3
    very_deep = only_issue(nested(5000))
    assert "nesting deeper than" in very_deep.message


def test_file_larger_than_one_mebibyte_is_refused() -> None:
    filler = "# " + "x" * 98 + "\n"
    text = one_task() + filler * (MAX_BYTES // len(filler) + 1)
    assert len(text.encode()) > MAX_BYTES
    issue = only_issue(text)
    assert issue.message == "file is larger than 1024 KiB"
    assert str(issue) == "file is larger than 1024 KiB (f.yaml)"
    # multi-byte characters count as bytes, not characters
    wide = one_task("    config: {message: '" + "é" * (MAX_BYTES // 2) + "'}\n")
    assert len(wide) < MAX_BYTES < len(wide.encode())
    assert only_issue(wide).message == "file is larger than 1024 KiB"


def test_file_just_under_the_limit_is_read() -> None:
    filler = "# " + "x" * 98 + "\n"
    text = one_task() + filler * ((MAX_BYTES - 200) // len(filler))
    assert len(text.encode()) <= MAX_BYTES
    assert parse_definition(text).name == "x"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n"])
def test_empty_document(text: str) -> None:
    issue = only_issue(text)
    assert issue.message == "the document is empty"
    assert (issue.line, issue.column) == (1, 1)


@pytest.mark.parametrize(
    "text", ["- id: a\n  activity_type: log\n", "just a string\n", "42\n", "null\n", "~\n", "---\n"]
)
def test_top_level_must_be_a_mapping(text: str) -> None:
    issue = only_issue(text)
    assert issue.message == "a workflow must be a mapping with name and tasks"
    assert (issue.path, issue.line, issue.column) == ("", 1, 1)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: x\ntasks: [\n", 2),  # found at the end of the stream: reported on the last line
        ("name: x\ntasks:\n  - id: a\n   activity_type: log\n", 4),
        ("name: 'unterminated\ntasks: []\n", 2),
        ("name: x\n\ttasks: []\n", 2),
        ("name: x\n---\nname: y\n", 2),
    ],
)
def test_invalid_yaml_reports_its_line(text: str, line: int) -> None:
    issue = only_issue(text)
    assert issue.message.startswith("invalid YAML: ")
    assert issue.line == line
    assert issue.column is not None


@pytest.mark.parametrize(
    "value",
    ["2001-13-45", "!!int x", "!!float abc", "!!timestamp x", "!!bool maybe", "!!int ''", "!!binary 'x'"],
)
def test_values_the_yaml_constructors_reject_are_dsl_errors(value: str) -> None:
    issue = only_issue(f"name: x\ntasks: [{{id: a, activity_type: log}}]\noutput: {value}\n")
    assert issue.line == 3


@pytest.mark.parametrize("char", ["\x00", "\x07", "\ud800", "\ufffe"])
def test_unprintable_characters_are_dsl_errors(char: str) -> None:
    issue = only_issue(f"name: x\ntasks: [{{id: a, activity_type: log}}]\noutput: '{char}'\n")
    assert issue.message.startswith("invalid YAML")


def test_python_tags_are_not_constructed() -> None:
    issue = only_issue("name: x\ntasks: [{id: a, activity_type: log}]\noutput: !!python/name:os.getcwd ''\n")
    assert "could not determine a constructor" in issue.message
    assert issue.line == 3


def test_byte_order_mark_is_ignored() -> None:
    assert parse_definition("\ufeff" + one_task()).name == "x"


# --- semantic refusals ---


def test_duplicate_task_ids() -> None:
    text = doc(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
          - id: b
            activity_type: log
          - id: a
            activity_type: log
        """
    )
    issue = only_issue(text)  # and no bogus cycle caused by the ambiguous graph
    assert str(issue) == "tasks[2].id: duplicate task id 'a' (f.yaml:7:5)"


def test_duplicate_adjacent_task_ids_do_not_invent_a_cycle() -> None:
    issue = only_issue("name: x\ntasks:\n  - {id: a, activity_type: log}\n  - {id: a, activity_type: log}\n")
    assert issue.message == "duplicate task id 'a'"


def test_unknown_depends_on() -> None:
    text = one_task() + "  - id: b\n    activity_type: log\n    depends_on: [a, ghost]\n"
    issue = only_issue(text)
    assert str(issue) == "tasks[1].depends_on[1]: unknown task 'ghost' (f.yaml:7:21)"


def test_self_dependency() -> None:
    issue = only_issue(one_task("    depends_on: [a]\n"))
    assert str(issue) == "tasks[0].depends_on[0]: a task cannot depend on itself (f.yaml:5:18)"


def test_cycle_names_the_cycle() -> None:
    text = doc(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            depends_on: [b]
          - id: b
            activity_type: log
        """
    )
    issue = only_issue(text)
    assert issue.message == "dependency cycle: a -> b -> a"
    assert str(issue) == "tasks[0].depends_on: dependency cycle: a -> b -> a (f.yaml:5:5)"


def test_longer_cycle_with_explicit_edges() -> None:
    text = doc(
        """
        name: x
        tasks:
          - {id: start, activity_type: log, depends_on: []}
          - {id: a, activity_type: log, depends_on: [start, c]}
          - {id: b, activity_type: log, depends_on: [a]}
          - {id: c, activity_type: log, depends_on: [b]}
        """
    )
    assert only_issue(text).message == "dependency cycle: a -> c -> b -> a"


def test_duplicate_dependencies_are_harmless() -> None:
    definition = parse_definition(one_task() + "  - {id: b, activity_type: log, depends_on: [a, a]}\n")
    assert dependencies(definition)["b"] == ("a",)


def test_long_dependency_chains_do_not_hit_the_recursion_limit() -> None:
    count = 1000  # the most tasks a definition may have; a recursive depth-first search would go 1000 deep
    lines = ["name: x", "tasks:"]
    lines += [f"  - {{id: t{i}, activity_type: log, depends_on: [t{i + 1}]}}" for i in range(count - 1)]
    lines.append(f"  - {{id: t{count - 1}, activity_type: log, depends_on: []}}")
    definition = parse_definition("\n".join(lines) + "\n")
    assert len(definition.tasks) == count
    lines[-1] = f"  - {{id: t{count - 1}, activity_type: log, depends_on: [t0]}}"
    issue = only_issue("\n".join(lines) + "\n")
    assert issue.message.startswith("dependency cycle: t0 -> t1 -> t2 -> ")
    assert issue.message.endswith(f" -> t{count - 1} -> t0")


@pytest.mark.parametrize("activity_type", ["bash", "http", "Log", ""])
def test_unknown_activity_type(activity_type: str) -> None:
    issue = only_issue(one_task(activity_type=repr(activity_type)))
    assert issue.path == "tasks[0].activity_type"
    assert issue.message == f"unknown activity_type {activity_type!r}; known: http_request, log, python, shell"
    assert (issue.line, issue.column) == (4, 5)


def test_more_than_the_task_cap_is_refused() -> None:
    lines = ["name: x", "tasks:"] + [f"  - {{id: t{i}, activity_type: log}}" for i in range(1001)]
    issue = only_issue("\n".join(lines) + "\n")
    assert issue.path == "tasks" and "at most 1000" in issue.message


def test_unknown_task_type_names_the_known_ones() -> None:
    issue = only_issue(one_task("    type: lambda\n"))
    assert (issue.path, issue.line) == ("tasks[0].type", 5)
    assert issue.message == "unknown task type 'lambda'; use one of activity, approval, sleep, workflow, set"


@pytest.mark.parametrize("name", ["Hello", "-x", "_x", "a b", "x" * 64, "", "héllo", "a.b"])
def test_invalid_workflow_name(name: str) -> None:
    issue = only_issue(f"name: {name!r}\ntasks: [{{id: a, activity_type: log}}]\n")
    assert (issue.path, issue.line) == ("name", 1)
    assert "pattern" in issue.message


@pytest.mark.parametrize("name", ["x", "0", "order-processing", "a_b-c", "x" * 63])
def test_valid_workflow_names(name: str) -> None:
    assert parse_definition(f"name: {name!r}\ntasks: [{{id: a, activity_type: log}}]\n").name == name


@pytest.mark.parametrize("task_id", ["A", "1a", "_a", "a-b", "a b"])
def test_invalid_task_id(task_id: str) -> None:
    issue = only_issue(f"name: x\ntasks:\n  - id: {task_id!r}\n    activity_type: log\n")
    assert (issue.path, issue.line, issue.column) == ("tasks[0].id", 3, 5)


def test_param_default_of_wrong_type() -> None:
    text = doc(
        """
        name: x
        params:
          count: {type: integer, default: "3"}
          flag: {type: boolean, default: 1}
          ratio: {type: integer, default: true}
          when: {type: datetime, default: tomorrow}
        tasks: [{id: a, activity_type: log}]
        """
    )
    issues = issues_of(text)
    assert [str(issue) for issue in issues] == [
        "params.count.default: expected integer, got string (f.yaml:3:26)",
        "params.flag.default: expected boolean, got integer (f.yaml:4:25)",
        "params.ratio.default: expected integer, got boolean (f.yaml:5:26)",
        "params.when.default: 'tomorrow' is not an ISO 8601 datetime (f.yaml:6:26)",
    ]


def test_enum_default_not_in_enum_and_enum_values_of_wrong_type() -> None:
    text = doc(
        """
        name: x
        params:
          priority: {type: string, enum: [low, high], default: normal}
          level: {type: integer, enum: [1, two]}
        tasks: [{id: a, activity_type: log}]
        """
    )
    issues = issues_of(text)
    assert [(issue.path, issue.message, issue.line) for issue in issues] == [
        ("params.priority.default", "'normal' is not one of ['low', 'high']", 3),
        ("params.level.enum[1]", "expected integer, got string", 4),
    ]


def test_minimum_greater_than_maximum() -> None:
    issue = only_issue(
        "name: x\nparams:\n  n: {type: number, minimum: 5, maximum: 1}\ntasks: [{id: a, activity_type: log}]\n"
    )
    assert str(issue) == "params.n.minimum: minimum is greater than maximum (f.yaml:3:21)"


def test_default_outside_bounds_and_pattern() -> None:
    text = doc(
        """
        name: x
        params:
          n: {type: integer, minimum: 1, maximum: 10, default: 11}
          code: {type: string, pattern: "^[A-Z]{3}$", default: abc}
        tasks: [{id: a, activity_type: log}]
        """
    )
    assert [(issue.path, issue.message) for issue in issues_of(text)] == [
        ("params.n.default", "11 is greater than the maximum 10"),
        ("params.code.default", "'abc' does not match the pattern '^[A-Z]{3}$'"),
    ]


def test_invalid_param_pattern_is_refused() -> None:
    issue = only_issue("name: x\nparams:\n  p: {type: string, pattern: '['}\ntasks: [{id: a, activity_type: log}]\n")
    assert issue.path == "params.p.pattern"
    assert issue.message.startswith("invalid regular expression")
    assert issue.line == 3


def test_unknown_param_type() -> None:
    issue = only_issue("name: x\nparams:\n  p: {type: text}\ntasks: [{id: a, activity_type: log}]\n")
    assert (issue.path, issue.line, issue.column) == ("params.p.type", 3, 7)


def test_valid_param_specs() -> None:
    text = doc(
        """
        name: x
        params:
          s: {type: string, pattern: "^a", default: abc, description: text}
          i: {type: integer, minimum: 0, maximum: 5, default: 5}
          n: {type: number, minimum: 0.5, default: 1}
          b: {type: boolean, default: false}
          l: {type: array, default: []}
          o: {type: object, default: {k: v}}
          d: {type: datetime, default: "2026-01-01T00:00:00Z"}
          e: {type: string, enum: [x, y]}
          bare: {}
        tasks: [{id: a, activity_type: log}]
        """
    )
    params = parse_definition(text).params
    assert {name: spec.type for name, spec in params.items()} == {
        "s": "string",
        "i": "integer",
        "n": "number",
        "b": "boolean",
        "l": "array",
        "o": "object",
        "d": "datetime",
        "e": "string",
        "bare": "string",
    }
    assert params["b"].default is False
    assert params["o"].default == {"k": "v"}


# --- the shipped workflows ---


def test_workflows_directory_has_definitions() -> None:
    assert sorted(WORKFLOWS_DIR.glob("*.yaml")), f"no workflow in {WORKFLOWS_DIR}"


@pytest.mark.parametrize("path", sorted(WORKFLOWS_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_workflow_parses(path: Path) -> None:
    definition = parse_definition(path.read_text(encoding="utf-8"), file=path.name)
    assert definition.name == path.stem
