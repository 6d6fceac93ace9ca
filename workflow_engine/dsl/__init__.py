"""The pure YAML DSL: model, parser, expressions and validation (no I/O beyond text)."""

from .errors import DslError, ExpressionError, Issue
from .expressions import evaluate, is_true, render
from .graph import dependencies, task_graph
from .instants import parse_instant
from .model import ActivityTask, ParamSpec, RetryPolicy, Task, WorkflowDefinition
from .params import resolve_params
from .parser import parse_definition
from .validation import BUILTIN_ACTIVITY_TYPES

__all__ = [
    "BUILTIN_ACTIVITY_TYPES",
    "ActivityTask",
    "DslError",
    "ExpressionError",
    "Issue",
    "ParamSpec",
    "RetryPolicy",
    "Task",
    "WorkflowDefinition",
    "dependencies",
    "task_graph",
    "evaluate",
    "is_true",
    "parse_instant",
    "parse_definition",
    "render",
    "resolve_params",
]
