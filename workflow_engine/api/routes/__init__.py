"""The API's routers, one module per resource."""

from . import executions, health, workflows

__all__ = ["executions", "health", "workflows"]
