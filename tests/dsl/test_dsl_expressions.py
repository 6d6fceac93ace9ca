"""`${{ }}` expressions: checks at registration, rendering with types, and evaluation errors."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from workflow_engine.dsl import DslError, ExpressionError, Issue, evaluate, is_true, parse_definition, render
from workflow_engine.dsl.expressions import (
    MAX_EXPRESSION_CHARS,
    compile_expression,
    iter_templates,
    referenced_tasks,
    root_names,
)


def doc(text: str) -> str:
    """Dedent a YAML snippet written inside a test."""
    return textwrap.dedent(text).lstrip("\n")


def issues_of(text: str) -> list[Issue]:
    """Parse `text` as `f.yaml`, require a `DslError`, and return its issues."""
    with pytest.raises(DslError) as caught:
        parse_definition(text, file="f.yaml")
    return caught.value.issues


def with_message(expression: str) -> str:
    """Return a one-task definition whose log message (line 5) is `expression`."""
    return f"name: x\ntasks:\n  - id: a\n    activity_type: log\n    config: {{message: {expression!r}}}\n"


CHAIN = """\
name: x
tasks:
  - id: a
    activity_type: log
  - id: b
    activity_type: log
    depends_on: []
  - id: c
    activity_type: log
  - id: d
    activity_type: log
    config: {{message: "{d}"}}
  - id: e
    activity_type: log
    depends_on: [a]
    config: {{message: "{e}"}}
"""


def chain(d: str = "", e: str = "") -> str:
    """Return a definition with `a`; `b` (no deps) -> `c` -> `d`; and `e` after `a`, with messages for d and e."""
    return CHAIN.format(d=d, e=e)


# --- registration checks ---


@pytest.mark.parametrize("source", ["1 +", "params.", "(", "a ? b", "params.x ==", "'unterminated", "@", "1 2"])
def test_syntax_error_is_a_registration_error_with_its_line(source: str) -> None:
    [issue] = issues_of(with_message("${{ " + source + " }}"))
    assert (issue.path, issue.file, issue.line, issue.column) == ("tasks[0].config.message", "f.yaml", 5, 14)
    assert issue.message.startswith(f"invalid expression {source!r}")


def test_empty_expression_is_refused() -> None:
    [issue] = issues_of(with_message("${{  }}"))
    assert issue.message == "empty expression"
    assert issue.line == 5


def test_errors_in_when_and_output_have_their_lines() -> None:
    text = doc(
        """
        name: x
        tasks:
          - id: a
            activity_type: log
            when: "${{ params.x > }}"
            config:
              nested:
                - ok
                - "${{ tasks.a.output }}"
        output:
          list: ["${{ 1 + 1 }}", "${{ ghost.x }}"]
          missing: "${{ tasks.ghost.output }}"
        """
    )
    assert sorted((issue.line, issue.path) for issue in issues_of(text)) == [
        (5, "tasks[0].when"),
        (9, "tasks[0].config.nested[1]"),
        (11, "output.list[1]"),
        (12, "output.missing"),
    ]


def test_unknown_root_name() -> None:
    [issue] = issues_of(with_message("${{ parameters.x }}"))
    assert issue.message == (
        "unknown name 'parameters' in 'parameters.x'; use one of params, tasks, item, index, workflow, error, secrets"
    )
    assert str(issue).endswith("(f.yaml:5:14)")


def test_every_unknown_name_is_reported() -> None:
    issues = issues_of(with_message("${{ foo + bar }} and ${{ params.ok }}"))
    assert sorted(issue.message.split(" in ")[0] for issue in issues) == ["unknown name 'bar'", "unknown name 'foo'"]


@pytest.mark.parametrize("root", ["params", "workflow", "secrets"])
def test_every_documented_root_name_is_accepted(root: str) -> None:
    parse_definition(with_message("${{ " + root + " }}"))


def test_item_and_index_are_in_scope_only_in_the_config_of_a_for_each_task() -> None:
    fan_out = (
        "name: x\ntasks:\n  - id: a\n    activity_type: log\n    for_each: [1, 2]\n"
        "    config: {message: '${{ item }} ${{ index }}'}\n"
    )
    parse_definition(fan_out)
    for root in ("item", "index"):
        [issue] = issues_of(with_message("${{ " + root + " }}"))
        assert issue.message == f"'{root}' is available only inside the config of a for_each task (in '{root}')"


def test_error_is_in_scope_only_in_on_failure_tasks() -> None:
    handler = (
        "name: x\ntasks:\n  - id: a\n    activity_type: log\n"
        "on_failure:\n  - id: alert\n    activity_type: log\n    config: {message: '${{ error.message }}'}\n"
    )
    parse_definition(handler)
    [issue] = issues_of(with_message("${{ error }}"))
    assert issue.message == "'error' is available only in on_failure tasks (in 'error')"


def test_expression_in_a_string_with_other_text_is_checked() -> None:
    [issue] = issues_of(with_message("Hello ${{ params.who }} and ${{ nope }}!"))
    assert "unknown name 'nope'" in issue.message


def test_reference_to_a_task_that_is_not_upstream() -> None:
    [issue] = issues_of(chain(d="${{ tasks.a.output }}"))
    assert issue.path == "tasks[3].config.message"
    assert issue.message == "task 'a' is not upstream of this task (in 'tasks.a.output')"
    assert issue.line == 12


@pytest.mark.parametrize(
    "source",
    [
        "${{ tasks.c.output }}",  # direct (implicit) dependency
        "${{ tasks.b.output }}",  # transitive: d -> c -> b
        "${{ tasks.b.status == 'completed' && tasks.c.error == null }}",
        "${{ tasks['c'].output }}",
    ],
)
def test_upstream_references_are_accepted(source: str) -> None:
    definition = parse_definition(chain(d=source))
    assert definition.task("d").config == {"message": source}


def test_explicit_depends_on_makes_a_task_upstream() -> None:
    parse_definition(chain(e="${{ tasks.a.output }}"))
    [issue] = issues_of(chain(e="${{ tasks.c.output }}"))
    assert (issue.path, issue.line) == ("tasks[4].config.message", 16)
    assert "task 'c' is not upstream" in issue.message


@pytest.mark.parametrize(
    "source",
    ["${{ tasks.a.output }}", "${{ tasks.e.output }}", "${{ tasks['e'].output }}", "x ${{ tasks.zzz.output }}"],
)
def test_a_task_cannot_read_itself_a_later_task_or_an_unknown_one(source: str) -> None:
    text = f"name: x\ntasks:\n  - id: a\n    activity_type: log\n    config: {{message: {json.dumps(source)}}}\n"
    text += "  - id: e\n    activity_type: log\n"
    [issue] = issues_of(text)
    assert "is not upstream of this task" in issue.message


def test_when_is_checked_against_upstream_tasks_too() -> None:
    text = chain() + "    when: ${{ tasks.b.output }}\n"
    [issue] = issues_of(text)
    assert (issue.path, issue.line) == ("tasks[4].when", 17)


def test_output_may_read_any_existing_task_but_not_a_missing_one() -> None:
    parse_definition(chain() + "output: {all: ['${{ tasks.a.output }}', '${{ tasks.d.output }}']}\n")
    [issue] = issues_of(chain() + "output: {x: '${{ tasks.ghost.output }}'}\n")
    assert issue.message == "task 'ghost' does not exist (in 'tasks.ghost.output')"
    assert (issue.path, issue.line) == ("output.x", 17)


def test_a_field_named_tasks_is_not_a_task_reference() -> None:
    parse_definition(chain(d="${{ tasks.c.output.tasks.e }}"))
    parse_definition(with_message("${{ params.tasks.zzz }}"))
    assert referenced_tasks("tasks.c.output.tasks.e + params.tasks.f") == ["c"]
    assert referenced_tasks("[tasks.a, tasks['b-c'], tasks[\"d\"]]") == ["a", "b-c", "d"]


@pytest.mark.parametrize(
    "source",
    [
        "params.items.map(x, x * 2)",
        "params.items.filter(it, it > 1)",
        "params.items.all(v, v > 0)",
        "params.items.exists(v, v == 3)",
        "params.items.exists_one(v, v == 3)",
        "params.items.map(x, params.items.filter(y, y > x))",
    ],
)
def test_comprehension_variables_are_not_unknown_names(source: str) -> None:
    parse_definition(with_message("${{ " + source + " }}"))
    assert root_names(source) == ["params"]


def test_templates_are_found_in_nested_values_with_their_paths() -> None:
    value = {"a": ["x", "${{ params.a }} and ${{ params.b }}"], "b": {"c": "${{\n  1 + 1\n}}"}, "d": 3}
    assert list(iter_templates(value)) == [
        (("a", 1), "params.a"),
        (("a", 1), "params.b"),
        (("b", "c"), "1 + 1"),
    ]


def test_oversized_expression_is_refused() -> None:
    long_source = "1" + " + 1" * (MAX_EXPRESSION_CHARS // 4)
    assert len(long_source) > MAX_EXPRESSION_CHARS
    with pytest.raises(ExpressionError, match="longer than 2000 characters"):
        compile_expression(long_source)
    with pytest.raises(ExpressionError, match="longer than 2000 characters"):
        evaluate(long_source, {})
    [issue] = issues_of(with_message("${{ " + long_source + " }}"))
    assert issue.message == f"expression longer than {MAX_EXPRESSION_CHARS} characters"
    fits = "1" + " + 1" * ((MAX_EXPRESSION_CHARS - 1) // 4)
    assert len(fits) <= MAX_EXPRESSION_CHARS
    assert evaluate(fits, {}) == 1 + (MAX_EXPRESSION_CHARS - 1) // 4


# --- render ---

CONTEXT: dict[str, Any] = {
    "params": {
        "who": "Ada",
        "count": 3,
        "amount": 500,
        "ratio": 0.25,
        "items": [1, 2, 3],
        "tags": ["a", "b"],
        "order": {"id": "o-1", "lines": [{"sku": "x", "qty": 2}]},
        "flag": True,
        "off": False,
        "nothing": None,
    },
    "tasks": {"greet": {"output": "Hello, Ada!", "status": "completed", "error": None}},
    "workflow": {"name": "hello", "execution_id": "e-1"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ params.items }}", [1, 2, 3]),
        ("${{ params.count }}", 3),
        ("${{ params.ratio }}", 0.25),
        ("${{ params.order }}", {"id": "o-1", "lines": [{"sku": "x", "qty": 2}]}),
        ("${{ params.flag }}", True),
        ("${{ params.off }}", False),
        ("${{ params.nothing }}", None),
        ("${{ params.who }}", "Ada"),
        ("${{params.count}}", 3),
        ("${{ params.count + 1 }}", 4),
        ("${{ params.items.map(x, x * 2) }}", [2, 4, 6]),
        ("${{ size(params.items) }}", 3),
        ("${{ {'k': params.count} }}", {"k": 3}),
        ("${{ tasks.greet.output }}", "Hello, Ada!"),
    ],
)
def test_a_lone_expression_keeps_its_type(template: str, expected: Any) -> None:
    result = render(template, CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello, ${{ params.who }}!", "Hello, Ada!"),
        ("n=${{ params.count }}", "n=3"),
        ("r=${{ params.ratio }}", "r=0.25"),
        ("${{ params.flag }}/${{ params.off }}", "true/false"),
        ("[${{ params.nothing }}]", "[]"),
        ("items: ${{ params.items }}", "items: [1,2,3]"),
        ("tags: ${{ params.tags }}", 'tags: ["a","b"]'),
        ("order: ${{ params.order }}", 'order: {"id":"o-1","lines":[{"qty":2,"sku":"x"}]}'),
        (" ${{ params.count }}", " 3"),
        ("${{ params.count }}${{ params.count }}", "33"),
        ("no templates here", "no templates here"),
        ("${ not one }", "${ not one }"),
    ],
)
def test_interpolation_in_a_longer_string_turns_values_into_text(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_walks_nested_data_and_leaves_other_values_alone() -> None:
    value = {"a": ["${{ params.count }}", "x${{ params.count }}", 7, None, True], "b": {"c": "${{ params.items }}"}}
    assert render(value, CONTEXT) == {"a": [3, "x3", 7, None, True], "b": {"c": [1, 2, 3]}}


def test_interpolating_a_map_with_mixed_key_types() -> None:
    assert render("m=${{ {1: 'a', 'b': 2} }}", {}) in ('m={"1":"a","b":2}', 'm={"b":2,"1":"a"}')


@pytest.mark.parametrize(
    "source",
    ["500 > 100.0", "100.0 < 500", "params.amount > 100.0", "params.amount == 500.0", "params.ratio < 1", "2 >= 2.0"],
)
def test_comparisons_across_int_and_float(source: str) -> None:
    assert evaluate(source, CONTEXT) is True


def test_evaluate_uses_only_the_given_context() -> None:
    assert evaluate("params.who + '!'", CONTEXT) == "Ada!"
    assert evaluate("workflow.name", CONTEXT) == "hello"


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ("params.missing", CONTEXT),
        ("params.order.nope", CONTEXT),
        ("tasks.ghost.output", CONTEXT),
        ("params.who + 1", CONTEXT),
        ("params.count + 0.5", CONTEXT),
        ("params.flag > 1", CONTEXT),
        ("params.items[10]", CONTEXT),
        ("params.count / 0", CONTEXT),
        ("params.count % 0", CONTEXT),
        ("9223372036854775807 + 1", {}),
        ("int('abc')", {}),
        ("params.x", {}),
        ("unknown_thing", {}),
        ("params.x", {"params": {"x": object()}}),
    ],
)
def test_evaluation_errors_raise_expression_error(source: str, context: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, context)


def test_render_raises_expression_error_for_a_missing_key_inside_text() -> None:
    with pytest.raises(ExpressionError, match="params.missing"):
        render("value: ${{ params.missing }}", CONTEXT)
    with pytest.raises(ExpressionError):
        render({"deep": ["${{ params.who * 2 }}"]}, CONTEXT)


def test_compile_errors_raise_expression_error() -> None:
    with pytest.raises(ExpressionError, match="invalid expression"):
        compile_expression("1 +")
    with pytest.raises(ExpressionError, match="empty expression"):
        compile_expression("")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, False), ("true", False), ("True", False), ([True], False), (None, False)],
)
def test_is_true_only_for_boolean_true(value: Any, expected: bool) -> None:
    assert is_true(value) is expected


def test_a_when_condition_renders_to_a_boolean() -> None:
    assert is_true(render("${{ params.amount > 1000.0 }}", CONTEXT)) is False
    assert is_true(render("${{ params.amount > 100.0 }}", CONTEXT)) is True
    assert is_true(render("x ${{ params.amount > 100.0 }}", CONTEXT)) is False  # text, not a boolean
