"""The API's routers, one module per resource."""

from . import approvals, executions, health, workflows

__all__ = ["approvals", "executions", "health", "workflows"]
