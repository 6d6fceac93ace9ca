"""Warnings about a valid definition: what it declares that does not run yet (pure, located like issues)."""

from __future__ import annotations

from .errors import Issue
from .model import WorkflowDefinition
from .parser import format_path, load_yaml, locate

SCHEDULES_INACTIVE = (
    "schedules are not active yet: the entries are checked, but no Temporal Schedule is created, so nothing "
    "starts on its own; start runs with POST /executions/workflows/{workflow_id}/execute"
)


def definition_warnings(definition: WorkflowDefinition, text: str, *, file: str = "<string>") -> list[Issue]:
    """Return the warnings of a definition that passed validation, each with its file:line:col.

    `text` is the YAML `definition` was parsed from; it is read again (positions only) when there is
    something to warn about, so a definition without warnings costs nothing.
    """
    if not definition.schedules:
        return []
    data, marks = load_yaml(text, file=file)
    path, position = locate(data, marks, ("schedules",))
    line, column = position if position else (None, None)
    return [Issue(format_path(path), SCHEDULES_INACTIVE, file, line, column)]
