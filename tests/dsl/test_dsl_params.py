"""Run parameters: defaults, coercion and every problem reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition, resolve_params

SPEC = """\
name: typed
params:
  order_id: {type: string, required: true, pattern: "^o-[0-9]+$"}
  amount: {type: number, minimum: 0, maximum: 10000, required: true}
  count: {type: integer, minimum: 1, maximum: 10, default: 2}
  ratio: {type: number, default: 1}
  priority: {type: string, enum: [low, normal, high], default: normal}
  items: {type: array, default: []}
  meta: {type: object}
  urgent: {type: boolean, default: false}
  due: {type: datetime}
  note: {type: string}
tasks: [{id: a, activity_type: log}]
"""


@pytest.fixture(scope="module")
def definition() -> WorkflowDefinition:
    """Return a definition declaring one parameter of every type."""
    return parse_definition(SPEC)


def problems(definition: WorkflowDefinition, given: dict[str, Any]) -> list[tuple[str, str]]:
    """Resolve `given`, require a `DslError`, and return its (path, message) pairs."""
    with pytest.raises(DslError) as caught:
        resolve_params(definition, given)
    for issue in caught.value.issues:
        assert issue.file is None and issue.line is None
        assert str(issue) == f"{issue.path}: {issue.message}"
    return [(issue.path, issue.message) for issue in caught.value.issues]


def test_defaults_are_applied(definition: WorkflowDefinition) -> None:
    resolved = resolve_params(definition, {"order_id": "o-1", "amount": 12.5})
    assert resolved == {
        "order_id": "o-1",
        "amount": 12.5,
        "count": 2,
        "ratio": 1.0,
        "priority": "normal",
        "items": [],
        "meta": None,
        "urgent": False,
        "due": None,
        "note": None,
    }


def test_number_values_become_floats_and_integers_stay_ints(definition: WorkflowDefinition) -> None:
    resolved = resolve_params(definition, {"order_id": "o-1", "amount": 500, "count": 3})
    assert resolved["amount"] == 500.0 and type(resolved["amount"]) is float
    assert resolved["count"] == 3 and type(resolved["count"]) is int
    assert type(resolved["ratio"]) is float, "a number default is a float too"


def test_given_values_are_kept(definition: WorkflowDefinition) -> None:
    given: dict[str, Any] = {
        "order_id": "o-42",
        "amount": 0,
        "count": 10,
        "ratio": 0.5,
        "priority": "high",
        "items": [{"sku": "x"}],
        "meta": {"source": "api"},
        "urgent": True,
        "due": "2026-12-01T00:00:00Z",
        "note": "",
    }
    assert resolve_params(definition, given) == {**given, "amount": 0.0}


def test_null_counts_as_not_given(definition: WorkflowDefinition) -> None:
    resolved = resolve_params(definition, {"order_id": "o-1", "amount": 1, "count": None})
    assert resolved["count"] == 2
    assert problems(definition, {"order_id": None, "amount": 1}) == [
        ("parameters.order_id", "required parameter is missing")
    ]


def test_every_problem_is_reported_at_once(definition: WorkflowDefinition) -> None:
    given: dict[str, Any] = {
        "amount": 20000,
        "count": "3",
        "priority": "urgent",
        "due": "next tuesday",
        "bogus": 1,
        "extra": 2,
    }
    assert problems(definition, given) == [
        ("parameters.bogus", "unknown parameter"),
        ("parameters.extra", "unknown parameter"),
        ("parameters.order_id", "required parameter is missing"),
        ("parameters.amount", "20000 is greater than the maximum 10000"),
        ("parameters.count", "expected integer, got string"),
        ("parameters.priority", "'urgent' is not one of ['low', 'normal', 'high']"),
        ("parameters.due", "'next tuesday' is not an ISO 8601 datetime"),
    ]


def test_error_message_lists_every_issue(definition: WorkflowDefinition) -> None:
    with pytest.raises(DslError) as caught:
        resolve_params(definition, {"amount": -1})
    assert str(caught.value) == (
        "parameters.order_id: required parameter is missing\nparameters.amount: -1 is less than the minimum 0"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("count", True, "expected integer, got boolean"),
        ("count", False, "expected integer, got boolean"),
        ("amount", True, "expected number, got boolean"),
        ("count", 2.5, "expected integer, got number"),
        ("count", 2.0, "expected integer, got number"),
        ("amount", "5", "expected number, got string"),
        ("urgent", 1, "expected boolean, got integer"),
        ("urgent", "true", "expected boolean, got string"),
        ("items", "a,b", "expected array, got string"),
        ("items", {"a": 1}, "expected array, got object"),
        ("meta", [1], "expected object, got array"),
        ("note", 5, "expected string, got integer"),
        ("due", 1700000000, "expected datetime, got integer"),
        ("count", 0, "0 is less than the minimum 1"),
        ("count", 11, "11 is greater than the maximum 10"),
        ("amount", -0.5, "-0.5 is less than the minimum 0"),
        ("order_id", "x-1", "'x-1' does not match the pattern '^o-[0-9]+$'"),
        ("priority", "LOW", "'LOW' is not one of ['low', 'normal', 'high']"),
        ("due", "2026-02-30T00:00:00", "'2026-02-30T00:00:00' is not an ISO 8601 datetime"),
    ],
)
def test_one_bad_value(definition: WorkflowDefinition, name: str, value: Any, message: str) -> None:
    given: dict[str, Any] = {"order_id": "o-1", "amount": 1, name: value}
    assert problems(definition, given) == [(f"parameters.{name}", message)]


@pytest.mark.parametrize(
    "value", ["2026-12-01", "2026-12-01T10:00:00", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00+02:00"]
)
def test_iso_datetimes_are_accepted(definition: WorkflowDefinition, value: str) -> None:
    assert resolve_params(definition, {"order_id": "o-1", "amount": 1, "due": value})["due"] == value


def test_bounds_are_inclusive(definition: WorkflowDefinition) -> None:
    resolved = resolve_params(definition, {"order_id": "o-1", "amount": 10000, "count": 1})
    assert (resolved["amount"], resolved["count"]) == (10000.0, 1)


def test_an_integer_too_large_for_a_float_is_a_problem_not_a_crash(definition: WorkflowDefinition) -> None:
    assert problems(definition, {"order_id": "o-1", "amount": 10**400}) == [
        ("parameters.amount", "the value is too large for a number")
    ]


def test_a_definition_without_params_takes_none() -> None:
    definition = parse_definition("name: x\ntasks: [{id: a, activity_type: log}]\n")
    assert resolve_params(definition, {}) == {}
    assert problems(definition, {"who": "Ada"}) == [("parameters.who", "unknown parameter")]


def test_the_given_mapping_is_not_modified(definition: WorkflowDefinition) -> None:
    given: dict[str, Any] = {"order_id": "o-1", "amount": 3}
    resolve_params(definition, given)
    assert given == {"order_id": "o-1", "amount": 3}


def test_lengths_bound_arrays_objects_and_strings() -> None:
    definition = parse_definition(
        """
name: sized
params:
  items: {type: array, required: true, min_length: 1, max_length: 2}
  tags: {type: object, default: {}, max_length: 1}
  code: {type: string, default: ab, min_length: 2}
tasks:
  - {id: a, type: set, config: {n: "${{ size(params.items) }}"}}
"""
    )
    assert resolve_params(definition, {"items": [1]})["code"] == "ab"
    with pytest.raises(DslError) as caught:
        resolve_params(definition, {"items": [], "tags": {"a": 1, "b": 2}, "code": "x"})
    assert sorted((i.path, i.message) for i in caught.value.issues) == [
        ("parameters.code", "has 1 characters, fewer than the minimum 2"),
        ("parameters.items", "has 0 items, fewer than the minimum 1"),
        ("parameters.tags", "has 2 keys, more than the maximum 1"),
    ]
    with pytest.raises(DslError, match="apply to array, object and string params"):
        parse_definition("name: x\nparams:\n  n: {type: integer, min_length: 1}\ntasks:\n  - {id: a, type: set}\n")
    with pytest.raises(DslError, match="min_length must not be greater than max_length"):
        parse_definition(
            "name: x\nparams:\n  l: {type: array, min_length: 3, max_length: 2}\ntasks:\n  - {id: a, type: set}\n"
        )
