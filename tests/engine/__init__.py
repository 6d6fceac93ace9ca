"""Tests of workflow_engine.engine."""
