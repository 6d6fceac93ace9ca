"""The JSON Schema for editors: generated from the model, committed, and agreeing with the parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from workflow_engine.dsl.schema import json_schema, json_schema_text

REPO = Path(__file__).resolve().parents[2]
DSL_EXAMPLE = (REPO / "docs" / "dsl.md").read_text().split("```yaml", 1)[1].split("```", 1)[0]


def _validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


def test_committed_schema_is_current() -> None:
    committed = (REPO / "workflows" / "schema.json").read_text()
    assert committed == json_schema_text(), "workflows/schema.json is stale: run `python -m workflow_engine schema`"


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", sorted((REPO / "workflows").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_workflow_satisfies_the_schema(path: Path) -> None:
    errors = list(_validator().iter_errors(yaml.safe_load(path.read_text())))
    assert errors == []


def test_the_documented_example_satisfies_the_schema() -> None:
    assert list(_validator().iter_errors(yaml.safe_load(DSL_EXAMPLE))) == []


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"name": "x", "tasks": [{"id": "a", "activity_type": "log", "colour": 1}]}, "colour"),
        ({"name": "Bad Name", "tasks": [{"id": "a", "activity_type": "log"}]}, "Bad Name"),
        ({"name": "x", "tasks": []}, "[]"),
        ({"name": "x", "tasks": [{"id": "a", "activity_type": "log", "timeout": "soon"}]}, "soon"),
        ({"name": "x", "tasks": [{"id": "a", "type": "sleep", "config": {"duration": "5x"}}]}, "5x"),
    ],
)
def test_schema_rejects_what_the_parser_rejects(document: dict[str, Any], fragment: str) -> None:
    errors = list(_validator().iter_errors(document))
    assert errors, f"the schema accepted {json.dumps(document)}"
    assert any(fragment in error.message for error in errors), [error.message for error in errors]
