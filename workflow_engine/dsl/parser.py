"""YAML text to a validated `WorkflowDefinition`, with a line and column for every error."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import DslError, Issue
from .model import TASK_TYPES, WorkflowDefinition
from .validation import BUILTIN_ACTIVITY_TYPES, check_semantics

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 50
MAX_ALIAS_NODES = 10_000

Path = tuple[str | int, ...]
Marks = dict[Path, tuple[int, int]]


class _CountingLoader(yaml.SafeLoader):
    """A safe loader that counts alias uses so expansion bombs can be refused."""

    aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Count aliases before composing them."""
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(f"more than {MAX_ALIASES} YAML aliases", mark.line + 1, mark.column + 1)
        return super().compose_node(parent, index)


class _Refused(Exception):
    """A document refused while being read."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def format_path(path: Iterable[str | int]) -> str:
    """Render ("tasks", 2, "retry_policy") as `tasks[2].retry_policy`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Builder:
    """Turns a composed YAML node tree into plain data and a path-to-position map."""

    def __init__(self, loader: _CountingLoader) -> None:
        self.loader = loader
        self.marks: Marks = {}
        self.seen: set[int] = set()
        self.repeated = 0

    def build(self, node: Node, path: Path) -> Any:
        if len(path) > MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", *_pos(node))
        if id(node) in self.seen:  # reached again through an alias: bound the expansion
            self.repeated += 1
            if self.repeated > MAX_ALIAS_NODES:
                raise _Refused(f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes", *_pos(node))
        self.seen.add(id(node))
        self.marks.setdefault(path, _pos(node))
        if isinstance(node, MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused("YAML merge keys (<<) are not supported", *_pos(key_node))
                if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                    raise _Refused(f"{format_path(path) or 'document'}: keys must be strings", *_pos(key_node))
                key = key_node.value
                if key in result:
                    raise _Refused(f"{format_path((*path, key))}: duplicate key {key!r}", *_pos(key_node))
                self.marks[(*path, key)] = _pos(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, LookupError, AttributeError, TypeError, OverflowError):
            raise _Refused(f"invalid YAML value {node.value!r} for tag {node.tag}", *_pos(node)) from None


def _pos(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_yaml(text: str, *, file: str = "<string>") -> tuple[Any, Marks]:
    """Read one YAML document safely; return its data and the position of every path."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise DslError([Issue("", f"file is larger than {MAX_BYTES // 1024} KiB", file)])
    loader: _CountingLoader | None = None
    try:
        loader = _CountingLoader(text)  # the reader already rejects unprintable characters
        node = loader.get_single_node()
        if node is None:
            raise _Refused("the document is empty", 1, 1)
        builder = _Builder(loader)
        return builder.build(node, ()), builder.marks
    except _Refused as refused:
        raise DslError([Issue("", refused.message, file, refused.line, refused.column)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        last_line = max(1, len(text.splitlines()))
        # a problem found at the very end points past the last line: report it on the last one
        line, col = (min(mark.line + 1, last_line), mark.column + 1) if mark else (None, None)
        message = f"invalid YAML: {exc.problem or exc.context}"
        raise DslError([Issue("", message, file, line, col)]) from None
    except yaml.YAMLError as exc:
        raise DslError([Issue("", f"invalid YAML: {exc}", file)]) from None
    except RecursionError:
        raise DslError([Issue("", f"nesting deeper than {MAX_DEPTH} levels", file)]) from None
    finally:
        if loader is not None:
            loader.dispose()


def locate(data: Any, marks: Marks, loc: Iterable[str | int]) -> tuple[Path, tuple[int, int] | None]:
    """Map a validation location onto the document path and its nearest known position."""
    path: list[str | int] = []
    node = data
    parts = list(loc)
    for k, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and k == len(parts) - 1:
            path.append(part)  # a missing or unknown key: keep it in the path
            break
        else:
            continue  # union tags and other synthetic parts
        path.append(part)
    for cut in range(len(path), -1, -1):
        position = marks.get(tuple(path[:cut]))
        if position:
            return tuple(path), position
    return tuple(path), None


def _pydantic_issues(exc: ValidationError, data: Any, marks: Marks, file: str) -> list[Issue]:
    issues = []
    for error in exc.errors(include_url=False):
        path, position = locate(data, marks, error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            path = (*path, "type")
            position = locate(data, marks, path)[1] or position
            message = f"unknown task type {tag!r}; use one of {', '.join(TASK_TYPES)}"
        line, col = position if position else (None, None)
        issues.append(Issue(format_path(path), message, file, line, col))
    return issues


def parse_definition(
    text: str,
    *,
    file: str = "<string>",
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
    python_modules: Collection[str] | None = None,
) -> WorkflowDefinition:
    """Parse and validate a definition; raise `DslError` listing every issue of the file at once.

    `python_modules` are the modules `python` tasks may call: registration passes those of the settings
    and the workflows directory; None checks only what is always refused.
    """
    data, marks = load_yaml(text, file=file)
    if not isinstance(data, dict):
        raise DslError([Issue("", "a workflow must be a mapping with name and tasks", file, 1, 1)])
    issues: list[Issue] = []
    definition: WorkflowDefinition | None = None
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, data, marks, file))
    for loc, message in check_semantics(data, activity_types=activity_types, python_modules=python_modules):
        path, position = locate(data, marks, loc)
        line, col = position if position else (None, None)
        issues.append(Issue(format_path(path), message, file, line, col))
    if issues or definition is None:
        raise DslError(sorted(issues, key=lambda i: (i.line or 0, i.column or 0)))
    return definition
