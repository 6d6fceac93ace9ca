"""`${{ }}` expressions: checks at registration, rendering with types, and evaluation errors."""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_engine.dsl import DslError, ExpressionError, Issue, evaluate, is_true, parse_definition, render
from workflow_engine.dsl.cel_syntax import parse
from workflow_engine.dsl.expression_cost import REGEX_BASE, REGEX_UNKNOWN, estimate, regex_cost
from workflow_engine.dsl.expressions import (
    COST_BUDGET,
    MAX_COMPREHENSION_DEPTH,
    MAX_EXPRESSION_CHARS,
    _scope,
    compile_expression,
    iter_templates,
    referenced_tasks,
    render_deferred,
    render_keeping,
    root_names,
    static_limit_problem,
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


# --- limits: nesting, cost and size (finding 3 of issue 12) ---

DIGITS = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
# six nested maps over ten-element literals: 10^6 results; it held a worker for 17 s and grew it by ~470 MiB
SIX_NESTED = (
    f"{DIGITS}.map(a, {DIGITS}.map(b, {DIGITS}.map(c, {DIGITS}.map(d, {DIGITS}.map(e, {DIGITS}.map(f, "
    "a + b + c + d + e + f))))))"
)
ITEMS = [{"sku": f"sku-{i}", "price": i * 1.5, "qty": i % 7} for i in range(1000)]


def with_set(expression: str) -> str:
    """Return a definition whose `set` task computes `expression` (line 6)."""
    return f"name: x\ntasks:\n  - id: compute\n    type: set\n    config:\n      value: {json.dumps(expression)}\n"


def test_deeply_nested_comprehensions_are_refused_at_registration_with_their_line() -> None:
    [issue] = issues_of(with_set("${{ " + SIX_NESTED + " }}"))
    assert (issue.path, issue.file, issue.line) == ("tasks[0].config.value", "f.yaml", 6)
    assert issue.message.endswith(f"comprehensions nested 6 deep; at most {MAX_COMPREHENSION_DEPTH} may nest")


def test_deeply_nested_comprehensions_are_refused_at_run_time_too() -> None:
    """A definition registered before the limit existed still cannot run it."""
    started = time.perf_counter()
    with pytest.raises(ExpressionError, match="nested 6 deep"):
        evaluate(SIX_NESTED, {})
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        # three levels over 100-element literals: 10^6 iterations, each map copying its result per element
        (f"{list(range(100))}.map(a, {list(range(100))}.map(b, {list(range(100))}))", "too costly"),
        # a ten-character string repeated eight times per step, six steps: 2.6 MB of text
        ("['0123456789']" + "".join(f".map({v}, {'+'.join(v * 8)})" for v in "abcdef"), "may build a value"),
        ("'abc'.matches('\\\\w{1000}')", "`matches` compiles its pattern on every call"),
    ],
)
def test_an_expression_too_costly_for_any_data_is_refused_at_registration(source: str, fragment: str) -> None:
    [issue] = issues_of(with_set("${{ " + source + " }}"))
    assert issue.line == 6
    assert fragment in issue.message
    if "too costly" in issue.message:
        assert "even if every list and map it reads had one element" in issue.message
        assert f"over the budget of {COST_BUDGET:,}" in issue.message


@pytest.mark.parametrize(
    "source",
    [
        "params.items.map(a, params.items.map(b, a))",  # cheap for small data: refused at run time if it is not
        "params.items.map(i, i.price)",
        "params.items.filter(i, i.qty > 2).map(i, {'sku': i.sku, 'total': i.price * double(i.qty)})",
        "params.rows.map(r, r.cells.map(c, c.cells.map(x, x)))",  # three levels: the limit
        "params.sku.matches('^[A-Z]{2}-[0-9]+$') && params.note.contains('x')",
        "tasks.a.output.body.exists(x, x.id == params.id)",
    ],
)
def test_ordinary_expressions_pass_the_registration_limits(source: str) -> None:
    parse_definition(chain(e="${{ " + source + " }}"))
    assert static_limit_problem(source) is None


def test_params_driven_bomb_is_refused_before_it_runs() -> None:
    """`params.items.map(a, params.items.map(b, a))` over 1,000 items took 105 s; now it is never started."""
    context = {"params": {"items": list(range(1000))}}
    started = time.perf_counter()
    with pytest.raises(ExpressionError, match=r"too costly: estimated [\d,]+ units .* over the budget") as caught:
        evaluate("params.items.map(a, params.items.map(b, a))", context)
    assert time.perf_counter() - started < 0.5
    assert "`map` and `filter` cost grows with the square of the list length" in str(caught.value)
    # the same expression over a few items is an ordinary one
    assert evaluate("params.items.map(a, params.items.map(b, a))", {"params": {"items": [1, 2]}}) == [[1, 1], [2, 2]]


def test_a_map_over_1000_items_is_fine() -> None:
    context = {"params": {"items": ITEMS}}
    assert evaluate("params.items.map(i, i.price)", context) == [item["price"] for item in ITEMS]
    assert evaluate("params.items.exists(i, i.sku == 'sku-999')", context) is True
    assert evaluate("params.items.exists_one(i, i.sku == 'sku-7')", context) is True
    assert evaluate("params.items.all(i, i.qty < 7 && i.sku.startsWith('sku-'))", context) is True
    # the library's filter copies its result once per element: over objects, the bound assumes all of them pass
    with pytest.raises(ExpressionError, match="too costly"):
        evaluate("params.items.filter(i, i.qty == 0)", context)
    assert len(evaluate("params.items.filter(i, i.qty == 0)", {"params": {"items": ITEMS[:200]}})) == 29


def test_a_for_each_over_1000_items_renders_its_list_and_every_item_config() -> None:
    items = render("${{ params.items }}", {"params": {"items": ITEMS}})
    assert items == ITEMS and items is not ITEMS  # a copy: nothing downstream can change the params
    config = {
        "sku": "${{ item.sku }}",
        "line": "${{ index }}: ${{ item.qty * 2 }}",
        "cheap": "${{ item.price < 10.0 }}",
    }
    rendered = [render(config, {"params": {"items": ITEMS}, "item": item, "index": i}) for i, item in enumerate(items)]
    assert rendered[999] == {"sku": "sku-999", "line": "999: 10", "cheap": False}
    assert [r["sku"] for r in rendered] == [item["sku"] for item in ITEMS]


def test_the_templates_of_one_value_share_one_budget() -> None:
    source = "params.l.map(x, x)"
    context = {"params": {"l": list(range(850))}}
    cost = estimate(parse(source), _scope(source, context)).cost
    assert 2 * cost < COST_BUDGET < 3 * cost  # two fit, the third does not
    assert evaluate(source, context) == list(range(850))
    value = {"a": "${{ " + source + " }}", "b": "${{ " + source + " }}"}
    assert render(value, context) == {"a": list(range(850)), "b": list(range(850))}
    with pytest.raises(ExpressionError, match="left by the other templates of this value"):
        render({**value, "c": "${{ " + source + " }}"}, context)


@pytest.mark.parametrize(
    ("doublings", "admitted"),
    [(3, True), (4, False)],  # 100 KB doubled 3 times is 800 KB; 4 times, 1.6 MB: over MAX_BUILT_BYTES
)
def test_string_growth_by_repeated_concatenation_is_bounded(doublings: int, admitted: bool) -> None:
    source = "[params.s]" + "".join(f".map({v}, {v} + {v})" for v in "abcd"[:doublings]) + "[0]"
    context = {"params": {"s": "x" * 100_000}}
    if admitted:
        assert evaluate(source, context) == "x" * (100_000 << doublings)
    else:
        with pytest.raises(ExpressionError, match="may build a value of 1.5 MiB, over the 1 MiB limit"):
            evaluate(source, context)


def test_list_growth_is_bounded() -> None:
    small, big = {"params": {"l": list(range(1000))}}, {"params": {"l": list(range(20_000))}}
    assert len(evaluate("params.l + params.l", small)) == 2000
    with pytest.raises(ExpressionError, match="may build a value"):
        evaluate("params.l + params.l", big)
    assert len(evaluate("params.l", big)) == 20_000  # reading is not building


def test_reading_too_much_data_through_the_library_is_refused_but_a_plain_path_is_not() -> None:
    rows = [{"id": i, "label": f"row {i:06d}", "tags": ["a", "b"]} for i in range(30_000)]
    context = {"tasks": {"table": {"output": rows, "status": "completed", "error": None}}}
    assert evaluate("tasks.table.output", context) == rows  # copied in Python, key order kept
    with pytest.raises(ExpressionError, match="reads too much data: copying it costs more than"):
        evaluate("tasks.table.output", {"tasks": {"table": {"output": rows * 2}}})  # a plain read has a budget too
    with pytest.raises(ExpressionError, match="reads too much data"):
        evaluate("size(tasks.table.output) + 0", context)  # the library converts the whole list to count it
    # `size(path)` and `path.size()` are answered in Python, without converting the data
    assert evaluate("size(tasks.table.output)", context) == 30_000
    assert evaluate("tasks.table.output[1].label.size()", context) == 10
    assert evaluate("size(tasks.table.output) + 0", {"tasks": {"table": {"output": rows[:5000]}}}) == 5000


@pytest.mark.parametrize(
    ("pattern", "admitted"),
    [("^sku-[0-9]+$", True), ("^\\w+-\\d+$", False)],  # Unicode classes compile ~3000x slower than a literal
)
def test_a_pattern_read_from_data_is_costed_by_what_it_compiles(pattern: str, admitted: bool) -> None:
    source = "params.items.all(i, i.sku.matches(params.pattern))"
    context = {"params": {"items": ITEMS, "pattern": pattern}}
    if admitted:
        assert evaluate(source, context) is True
    else:
        with pytest.raises(ExpressionError, match="`matches` compiles its pattern on every call"):
            evaluate(source, context)


def test_regex_cost_orders_patterns_by_what_the_library_compiles() -> None:
    costs = [regex_cost(p) for p in ("a", "[a-z]+", ".", "\\d", "\\w", "(?i)\\w")]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)
    assert regex_cost("a{100}") - REGEX_BASE == 100 * (regex_cost("a") - REGEX_BASE)
    assert regex_cost("(\\w{10}){10}") == REGEX_BASE + 100 * (regex_cost("\\w") - REGEX_BASE)
    # hostile patterns read from data are costed without recursing or parsing huge numbers
    assert regex_cost("(" * 5000 + "a" + ")" * 5000) >= REGEX_UNKNOWN
    assert regex_cost("a{99999999999999999999}") > COST_BUDGET
    assert regex_cost("[" * 3000) > 0


def test_data_nested_too_deeply_is_refused_instead_of_crashing_the_library() -> None:
    deep: list[Any] = []
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(ExpressionError, match="nested more than 256 levels deep"):
        evaluate("size(params.d) + 1", {"params": {"d": deep}})


def test_brackets_nested_too_deeply_are_a_registration_error() -> None:
    source = "(" * 40 + "1" + ")" * 40  # the library accepts up to 99
    compile_expression(source)
    [issue] = issues_of(with_set("${{ " + source + " }}"))
    assert issue.line == 6
    assert issue.message.endswith("brackets and conditionals nested more than 32 deep")
    assert evaluate("(" * 30 + "1" + ")" * 30, {}) == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1" + " + 1" * 499, 500),  # long chains are walked in loops, not by recursion
        ("!" * 999 + "true", False),
        ("-" * 998 + "7", 7),
        ("[1]" + ".map(x, x + 1)" * 130, [131]),
        ("params" + ".a" * 600, 1),
    ],
)
def test_long_chains_do_not_exhaust_the_stack(source: str, expected: Any) -> None:
    nested: Any = 1
    for _ in range(600):
        nested = {"a": nested}
    assert evaluate(source, {"params": nested}) == expected
    assert static_limit_problem(source) is None


def test_a_plain_path_reads_like_the_library_but_keeps_key_order() -> None:
    data = {"z": 1, "a": [1.5, "x", None, True, {"y": []}], "m": {}}
    context = {"params": {"data": data}, "tasks": {"t": {"output": data}}}
    for source in ("params.data", "tasks.t.output", "tasks['t'].output", "params.data.a[4]"):
        assert evaluate(source, context) == cel.compile(source).execute(context)
    assert list(evaluate("params.data", context)) == ["z", "a", "m"]
    # what the library would refuse or convert differently still goes through it
    with pytest.raises(ExpressionError):
        evaluate("params.data.a[9]", context)
    assert evaluate("params.t", {"params": {"t": (1, 2)}}) == [1, 2]
    assert evaluate("params.big", {"params": {"big": 2**64}}) == cel.evaluate("v", {"v": 2**64})


def test_only_the_tasks_an_expression_names_are_converted() -> None:
    tasks = {"a": {"output": 1}, "b": {"output": list(range(200_000))}}
    assert _scope("tasks.a.output + 1", {"tasks": tasks}) == {"tasks": {"a": {"output": 1}}}
    assert evaluate("tasks.a.output + 1", {"tasks": tasks}) == 2  # b's output would be too much to read
    assert _scope("size(tasks) > 1", {"tasks": tasks}) == {"tasks": tasks}  # read whole: passed whole


# --- the cost estimator's parser and bounds, against the library ---

_ATOMS = st.sampled_from(
    ["1", "2u", "0x1F", "1.5", ".5e1", "'a'", '"bc"', "r'\\d'", "b'x'", "'''t'''", "true", "null", "x", "params.l",
     "params.m", "params.s", "params.m.k", "params.m['j']", "[]", "{}"]
)  # fmt: skip


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        two = st.tuples(inner, inner)
        ops = st.sampled_from(["+", "-", "*", "==", "!=", "<", ">=", "&&", "||", "in"])
        macro = st.sampled_from(["map", "filter", "all", "exists", "exists_one"])
        return st.one_of(
            st.tuples(inner, ops, inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda a: f"!{a}"),
            inner.map(lambda a: f"-{a}"),
            inner.map(lambda a: f"({a})"),
            two.map(lambda t: f"[{t[0]}, {t[1]},]"),
            two.map(lambda t: f"{{'k': {t[0]}, 'j': {t[1]}}}"),
            st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
            inner.map(lambda a: f"{a}.k"),
            two.map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, macro, inner).map(lambda t: f"{t[0]}.{t[1]}(x, {t[2]})"),
            two.map(lambda t: f"{t[0]}.map(x, x, {t[1]})"),
            inner.map(lambda a: f"size({a})"),
            inner.map(lambda a: f"string({a})"),
            two.map(lambda t: f"{t[0]}.matches({t[1]})"),
        )

    return st.recursive(_ATOMS, extend, max_leaves=10).filter(lambda source: len(source) <= 400)


_DATA = {"params": {"l": [1, 2, 3], "m": {"k": [[1, "ab"], []], "j": "xyz"}, "s": "text"}}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_the_estimator_reads_every_expression_the_library_accepts(source: str) -> None:
    try:
        cel.compile(source)
    except ValueError:
        return
    assert parse(source) is not None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_the_estimated_result_bounds_what_the_library_builds(source: str) -> None:
    try:
        result = cel.compile(source).execute(_DATA)
    except (ValueError, RuntimeError, TypeError, KeyError, ArithmeticError, LookupError):
        return
    found = estimate(parse(source), _DATA)
    nodes, chars = estimate(parse("v"), {"v": result}).result_nodes, estimate(parse("v"), {"v": result}).result_chars
    assert nodes <= found.result_nodes and chars <= found.result_chars
    assert found.cost >= found.read_cost


SECRETS_ONLY = frozenset({"secrets"})


def test_render_keeping_names_only_the_definitions_deferred_strings() -> None:
    config = {
        "url": "https://x/?k=${{ secrets.K }}&p=$${{ params.p }}",
        "body": "${{ params.p }}",
        "headers": {"A": "Bearer ${{ secrets.T }}"},
        "lone": "${{ secrets.K }}",
        "list": ["${{ params.q }}", "x ${{ secrets.T }} ${{ params.q }}"],
    }
    context = {"params": {"p": "{{ secrets.X }}", "q": "${{ secrets.X }}"}}
    rendered, paths = render_keeping(config, context, defer=SECRETS_ONLY)
    assert paths == [["url"], ["headers", "A"], ["lone"], ["list", 1]]
    assert rendered["body"] == "{{ secrets.X }}" and rendered["list"][0] == "${{ secrets.X }}"
    final = render_deferred(rendered, paths, {"secrets": {"K": "kk", "T": "tt"}})
    assert final == {
        "url": "https://x/?k=kk&p=${{ secrets.X }}",
        "body": "{{ secrets.X }}",
        "headers": {"A": "Bearer tt"},
        "lone": "kk",
        "list": ["${{ secrets.X }}", "x tt ${{ secrets.X }}"],
    }
    assert rendered["lone"] == "${{ secrets.K }}"  # the input is not changed in place


def test_render_deferred_refuses_a_path_that_holds_no_string() -> None:
    with pytest.raises(ExpressionError, match="no deferred template at a/0"):
        render_deferred({"a": [1]}, [["a", 0]], {"secrets": {}})
    with pytest.raises(ExpressionError, match="no deferred template at b/c"):
        render_deferred({"a": 1}, [["b", "c"]], {"secrets": {}})
