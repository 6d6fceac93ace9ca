"""Tests of workflow_engine.dsl."""
