"""Runs inside the workflow sandbox and must be deterministic: the interpreter and its helpers."""
