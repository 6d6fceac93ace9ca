"""Tests of the approvers' console (workflow_engine/api/console)."""
