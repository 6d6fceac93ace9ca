"""Runs in activities on the worker and may do I/O: the built-in activity types and their helpers."""
