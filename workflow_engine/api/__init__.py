"""The REST API: registry, executions and health, built by `create_app`."""

from .app import create_app

__all__ = ["create_app"]
