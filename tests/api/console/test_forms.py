"""The run form: inputs from `params` with their defaults, and form text read back as typed values with errors."""

from __future__ import annotations

from workflow_engine.api.console.forms import fields, read
from workflow_engine.dsl import parse_definition

DEFINITION = parse_definition(
    """
name: typed
params:
  who: {type: string, required: true}
  count: {type: integer, default: 3, minimum: 1}
  ratio: {type: number, default: 0.5}
  dry_run: {type: boolean, default: true}
  tags: {type: array, default: [a]}
  level: {type: string, enum: [low, high], default: low}
tasks:
  - id: t
    type: set
    config: {x: 1}
"""
)


def test_fields_show_defaults_and_pick_input_kinds() -> None:
    shown = {f.name: (f.kind, f.value, f.options) for f in fields(DEFINITION)}
    assert shown == {
        "who": ("text", "", []),
        "count": ("number", "3", []),
        "ratio": ("number", "0.5", []),
        "dry_run": ("select", "true", ["true", "false"]),
        "tags": ("textarea", '["a"]', []),
        "level": ("select", "low", ["low", "high"]),
    }


def test_read_types_values_and_reports_every_problem_by_field() -> None:
    typed, params, errors = read(DEFINITION, {"param.who": "ada", "param.count": "7", "param.ratio": "",
                                              "param.dry_run": "false", "param.tags": '["x", "y"]',
                                              "param.level": "high"})  # fmt: skip
    assert errors == {}
    assert params == {"who": "ada", "count": 7, "dry_run": False, "tags": ["x", "y"], "level": "high"}
    assert typed["ratio"] == ""

    _, _, errors = read(DEFINITION, {"param.count": "0", "param.ratio": "nan", "param.tags": "[x",
                                     "param.level": "medium", "param.dry_run": "maybe"})  # fmt: skip
    assert errors == {
        "who": "required parameter is missing",
        "count": "0 is less than the minimum 1",
        "ratio": "expected a finite number",
        "tags": "expected JSON (Expecting value at character 1)",
        "level": "'medium' is not one of the choices",
        "dry_run": "expected true or false",
    }
    _, _, errors = read(DEFINITION, {"param.who": "ada", "param.count": "2.5", "param.tags": '{"a": 1}'})
    assert errors == {"count": "expected a whole number", "tags": "expected array, got object"}
