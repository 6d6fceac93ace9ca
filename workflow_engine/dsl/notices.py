"""Warnings about a valid definition: what is allowed but likely a mistake (pure, located like issues)."""

from __future__ import annotations

from .errors import Issue
from .model import WorkflowDefinition
from .parser import format_path, load_yaml, locate

# Overlap policies that let runs of one schedule pile up without bound when they last longer than its interval.
_UNBOUNDED = ("buffer_all", "allow_all")


def _unbounded_overlap(overlap: str) -> str:
    return (
        f"overlap: {overlap} starts every fire even while earlier runs still go, so slow runs pile up without "
        "bound; skip, buffer_one, cancel_other or terminate_other keep at most one waiting"
    )


def definition_warnings(definition: WorkflowDefinition, text: str, *, file: str = "<string>") -> list[Issue]:
    """Return the warnings of a definition that passed validation, each with its file:line:col.

    `text` is the YAML `definition` was parsed from; it is read again (positions only) when there is
    something to warn about, so a definition without warnings costs nothing.
    """
    found = [(("schedules", i, "overlap"), _unbounded_overlap(s.overlap))
             for i, s in enumerate(definition.schedules) if s.overlap in _UNBOUNDED]  # fmt: skip
    if not found:
        return []
    data, marks = load_yaml(text, file=file)
    issues = []
    for loc, message in found:
        path, position = locate(data, marks, loc)
        line, column = position if position else (None, None)
        issues.append(Issue(format_path(path), message, file, line, column))
    return issues
