"""Tests of workflow_engine.testing (`workflow_engine test`)."""
