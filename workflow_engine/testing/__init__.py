"""`workflow_engine test`: workflow test files run on Temporal's time-skipping test server, with mocked activities."""

from .discovery import TestSuite, collect
from .expect import mismatches
from .report import CaseResult, junit_xml
from .runner import run_suites

__all__ = ["CaseResult", "TestSuite", "collect", "junit_xml", "mismatches", "run_suites"]
