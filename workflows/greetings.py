"""Functions called by the `python` tasks of the example workflows."""


def repeat(text: str, times: int) -> dict[str, object]:
    """Return the text repeated `times` times, one entry per line."""
    lines = [f"{i + 1}. {text}" for i in range(times)]
    return {"lines": lines, "count": len(lines)}
