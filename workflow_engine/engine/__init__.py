"""Runs definitions on Temporal.

`workflow/` is the interpreter (deterministic, sandboxed), `activities/` what runs in activities (may do I/O),
`client/` what the API and CLI call, and `types.py` the wire contract between them.
"""
