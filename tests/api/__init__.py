"""Tests of workflow_engine.api."""
