"""A report big enough to be stored by reference (used by tests/api/test_executions_api.py)."""


def build(rows: int) -> dict[str, object]:
    return {"rows": [{"id": i, "label": f"row {i:06d}", "padding": "." * 80} for i in range(rows)]}
