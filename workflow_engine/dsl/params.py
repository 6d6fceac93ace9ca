"""Validation and coercion of the parameters of one run against the declared specs."""

from __future__ import annotations

import re
from typing import Any

from .errors import DslError, Issue
from .instants import parse_instant
from .model import ParamSpec, WorkflowDefinition

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "datetime": (str,),
}


def check_value(value: Any, spec: ParamSpec, *, check_enum: bool = True) -> list[str]:
    """Return every way `value` breaks `spec` (empty when it is fine)."""
    expected = _PY_TYPES[spec.type]
    if isinstance(value, bool) and spec.type != "boolean" or not isinstance(value, expected):
        return [f"expected {spec.type}, got {_type_name(value)}"]
    if spec.type == "number" and isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return ["the value is too large for a number"]
    problems = []
    if spec.type == "datetime":
        try:
            parse_instant(str(value))
        except ValueError:
            problems.append(f"{value!r} is not an ISO 8601 datetime")
    if check_enum and spec.enum is not None and value not in spec.enum:
        problems.append(f"{value!r} is not one of {spec.enum}")
    if isinstance(value, int | float):
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"{value} is less than the minimum {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"{value} is greater than the maximum {spec.maximum:g}")
    if spec.pattern is not None and isinstance(value, str) and not re.search(spec.pattern, value):
        problems.append(f"{value!r} does not match the pattern {spec.pattern!r}")
    if isinstance(value, list | dict | str):
        what = "items" if isinstance(value, list) else "keys" if isinstance(value, dict) else "characters"
        if spec.min_length is not None and len(value) < spec.min_length:
            problems.append(f"has {len(value)} {what}, fewer than the minimum {spec.min_length}")
        if spec.max_length is not None and len(value) > spec.max_length:
            problems.append(f"has {len(value)} {what}, more than the maximum {spec.max_length}")
    return problems


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _coerce(value: Any, spec: ParamSpec) -> Any:
    """Make `number` values floats (defaults included), so expressions see one type."""
    if spec.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def resolve_params(definition: WorkflowDefinition, given: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults and check types; raise `DslError` with every problem at once."""
    issues: list[Issue] = []
    resolved: dict[str, Any] = {}
    for name in sorted(set(given) - set(definition.params)):
        issues.append(Issue(f"parameters.{name}", "unknown parameter", None))
    for name, spec in definition.params.items():
        if name not in given or given[name] is None:
            if spec.required:
                issues.append(Issue(f"parameters.{name}", "required parameter is missing", None))
            else:
                resolved[name] = _coerce(spec.default, spec)
            continue
        value = given[name]
        problems = check_value(value, spec)
        issues.extend(Issue(f"parameters.{name}", msg, None) for msg in problems)
        if not problems:
            resolved[name] = _coerce(value, spec)
    if issues:
        raise DslError(issues)
    return resolved
