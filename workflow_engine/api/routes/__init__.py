"""The API's routers, one module per resource."""

from . import approvals, executions, health, schedules, workflows

__all__ = ["approvals", "executions", "health", "schedules", "workflows"]
