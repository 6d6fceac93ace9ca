"""Approval policy for the interpreter: the pure rules in `engine/approval_policy.py`, shared with the API's inbox."""

from __future__ import annotations

from ..approval_policy import DECISIONS, allowed, check, outcome, refusal

__all__ = ["DECISIONS", "allowed", "check", "outcome", "refusal"]
