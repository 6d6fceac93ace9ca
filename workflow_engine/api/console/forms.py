"""The run form built from a workflow's `params`: typed inputs, defaults, and form text read back into values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflow_engine.dsl import DslError, WorkflowDefinition, resolve_params
from workflow_engine.dsl.model import ParamSpec

PREFIX = "param."


@dataclass(frozen=True)
class Field:
    """One input of the run form."""

    name: str
    spec: ParamSpec
    kind: str  # text, number, select, textarea
    value: str
    options: list[str]
    error: str | None

    @property
    def step(self) -> str:
        """The `step` of a number input: whole numbers for integers."""
        return "1" if self.spec.type == "integer" else "any"


def _text(value: Any) -> str:
    """A value as an input shows it: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _kind(spec: ParamSpec) -> str:
    if spec.enum is not None or spec.type == "boolean":
        return "select"
    if spec.type in ("integer", "number"):
        return "number"
    return "textarea" if spec.type in ("array", "object") else "text"


def fields(
    definition: WorkflowDefinition, given: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None
) -> list[Field]:
    """The form's inputs: what was typed (after a refused POST), else each param's default."""
    found = []
    for name, spec in definition.params.items():
        options = [_text(option) for option in spec.enum] if spec.enum is not None else []
        if spec.type == "boolean" and spec.enum is None:
            options = ["true", "false"]
        value = given[name] if given is not None and name in given else _text(spec.default)
        found.append(Field(name, spec, _kind(spec), value, options, (errors or {}).get(name)))
    return found


def _value(raw: str, spec: ParamSpec) -> Any:
    """Read one input's text as the param's type (ValueError says why it cannot be)."""
    if spec.enum is not None:
        for option in spec.enum:
            if _text(option) == raw:
                return option
        raise ValueError(f"{raw!r} is not one of the choices")
    if spec.type == "boolean":
        if raw not in ("true", "false"):
            raise ValueError("expected true or false")
        return raw == "true"
    if spec.type == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
    if spec.type == "number":
        number = float(raw)  # ValueError: "could not convert string to float"
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if spec.type in ("array", "object"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected JSON ({exc.msg} at character {exc.pos})") from None
    return raw


Errors = dict[str, str]


def read(definition: WorkflowDefinition, form: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any], Errors]:
    """Read the form: (what was typed, the run's parameters, an error per param); empty inputs take the default.

    The parameters are checked as a start checks them (`resolve_params`), so every problem is shown at once.
    """
    typed: dict[str, str] = {}
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, spec in definition.params.items():
        raw = form.get(PREFIX + name)
        typed[name] = raw if isinstance(raw, str) else ""
        blank = typed[name] == "" if spec.type == "string" else not typed[name].strip()
        if blank:  # the default, or `required parameter is missing`
            continue
        try:
            params[name] = _value(typed[name].strip() if spec.type != "string" else typed[name], spec)
        except ValueError as exc:
            errors[name] = str(exc)
    try:
        resolve_params(definition, params)
    except DslError as exc:
        for issue in exc.issues:
            name = issue.path.removeprefix("parameters.")
            if name not in errors:
                errors[name] = issue.message
    return typed, params, errors
