"""Expected against actual: subset matching of outputs and one line per difference, named by its path."""

from __future__ import annotations

from workflow_engine.dsl.testcases import Expect
from workflow_engine.testing import mismatches
from workflow_engine.testing.expect import subset_diff

DETAIL = {
    "status": "failed",
    "error": "task charge failed: card declined",
    "output": None,
    "tasks": [
        {"id": "charge", "status": "failed", "output": None, "error": "card declined"},
        {"id": "invoice", "status": "pending", "output": None, "error": None},
        {"id": "check", "status": "completed", "output": {"score": 10, "tags": ["a", "b"], "ok": True}, "error": None},
    ],
}


def test_outputs_match_as_subsets_and_numbers_across_int_and_float() -> None:
    actual = {"a": 1, "b": {"c": [1, {"d": 2.0, "e": 3}], "f": "x"}}
    assert subset_diff({"b": {"c": [1, {"d": 2}]}}, actual, "output") == []
    assert subset_diff({"b": {"c": [1]}}, actual, "output") == ['output.b.c: expected [1], got [1, {"d": 2.0, "e": 3}]']
    assert subset_diff({"a": True}, actual, "output") == ["output.a: expected true, got 1"]
    assert subset_diff({"z": 1}, actual, "output") == ["output.z: expected 1, missing"]
    assert subset_diff({"a": {"x": 1}}, actual, "output") == ['output.a: expected an object {"x": 1}, got 1']


def test_a_matching_expectation_has_no_mismatch() -> None:
    expect = Expect.model_validate(
        {"status": "failed", "error": "declined", "tasks": {"charge": {"status": "failed", "error": "declined"},
         "invoice": "pending", "check": {"output": {"tags": ["a", "b"]}}}, "output": None}
    )  # fmt: skip
    assert mismatches(expect, DETAIL) == []


def test_every_difference_is_named_by_its_path() -> None:
    expect = Expect.model_validate(
        {"status": "completed", "error": "timeout", "output": {"charged": True},
         "tasks": {"charge": "completed", "check": {"output": {"score": 20, "ok": True}}, "invoice": {"error": "x"}}}
    )  # fmt: skip
    assert mismatches(expect, DETAIL) == [
        "status: expected completed, got failed (task charge failed: card declined)",
        "tasks.charge.status: expected completed, got failed (card declined)",
        "tasks.check.output.score: expected 20, got 10",
        'tasks.invoice.error: expected an error containing "x", got null',
        'output: expected an object {"charged": true}, got null',
        'error: expected an error containing "timeout", got "task charge failed: card declined"',
    ]
    assert mismatches(Expect(), DETAIL) == []  # nothing expected, nothing checked
