"""Errors of the DSL: every issue names the file, line, column and path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem found in a definition or in run parameters."""

    path: str
    message: str
    file: str | None = "<string>"
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        """Render as `path: message (file:line:col)`."""
        prefix = f"{self.path}: " if self.path else ""
        if self.file is None:
            return f"{prefix}{self.message}"
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        return f"{prefix}{self.message} ({where})"

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready form for APIs and `--format json`."""
        return {
            "path": self.path,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
        }


class DslError(Exception):
    """A definition or parameter set with one or more issues, all reported together."""

    def __init__(self, issues: list[Issue]) -> None:
        """Keep every issue; the message lists them one per line."""
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))

    def __reduce__(self) -> tuple[type[DslError], tuple[list[Issue]]]:
        """Pickle the issues (not the message), so the error crosses a process boundary whole."""
        return type(self), (self.issues,)


class ExpressionError(Exception):
    """An expression that fails to compile or evaluate."""
