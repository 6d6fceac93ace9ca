"""Reliability suite: faults, load and hostile input, each bounded to well under a minute."""
