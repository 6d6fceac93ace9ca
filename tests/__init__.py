"""Tests of workflow_engine."""
