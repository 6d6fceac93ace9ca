"""Benchmarks, run on demand; results in docs/benchmarks.md."""
