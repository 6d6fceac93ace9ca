"""JSON Schema of the DSL, generated from the model, for editors' YAML support and tools."""

from __future__ import annotations

import json
from typing import Any

from .model import WorkflowDefinition

SCHEMA_ID = "https://workflow-engine.dev/schemas/workflow-v1.json"


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of one workflow file."""
    schema = WorkflowDefinition.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "workflow-engine workflow (DSL v1)",
        **schema,
    }


def json_schema_text() -> str:
    """Return the schema as stable, pretty JSON text ending in a newline (what workflows/schema.json holds)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
