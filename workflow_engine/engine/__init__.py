"""Runs definitions on Temporal: the interpreter workflow, built-in activities, client helpers."""

from .activities import BuiltinActivities
from .client import TemporalConnection, connect, describe_execution, start_execution
from .interpreter import Interpreter
from .types import ActivityInput, ActivityResult, RunInput

__all__ = [
    "ActivityInput",
    "ActivityResult",
    "BuiltinActivities",
    "Interpreter",
    "RunInput",
    "TemporalConnection",
    "connect",
    "describe_execution",
    "start_execution",
]
