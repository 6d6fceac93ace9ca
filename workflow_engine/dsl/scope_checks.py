"""One expression's registration check: known names, names out of scope, secrets alone, static limits, tasks read."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

from .errors import ExpressionError
from .expressions import referenced_tasks, root_names, static_limit_problem

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


def check_expression(
    where: Loc, source: str, scope: Container[str], forbidden: Container[str], *, names: Sequence[str],
    rules: Mapping[str, str], outside: str,
) -> list[Problem]:  # fmt: skip
    """Every problem of the expression `source` at `where`.

    `names` are the roots it may read and `forbidden` those out of scope here (`rules` says where each one is
    available); `scope` holds the tasks it may read, and `outside` words the problem of one it may not.
    """
    try:
        read = root_names(source)
    except ExpressionError as exc:
        return [(where, str(exc))]
    problems: list[Problem] = []
    for name in read:
        if name not in names:
            problems.append((where, f"unknown name {name!r} in {source!r}; use one of {', '.join(names)}"))
        elif name in forbidden:
            problems.append((where, f"{name!r} is available {rules[name]} (in {source!r})"))
    if "secrets" in read and "secrets" not in forbidden and len(read) > 1:
        problems.append(
            (where, f"an expression reading secrets may read nothing else: it runs in the worker (in {source!r})")
        )
    try:
        limit = static_limit_problem(source)  # nesting, cost and size limits that no data can satisfy
    except ExpressionError as exc:
        limit = str(exc)
    if limit is not None:
        problems.append((where, limit))
    problems.extend(
        (where, f"task {ref!r} {outside} (in {source!r})") for ref in referenced_tasks(source) if ref not in scope
    )
    return problems
