"""Tests of workflow_engine.storage."""
