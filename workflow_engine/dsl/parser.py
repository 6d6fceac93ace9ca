"""YAML text to a validated `WorkflowDefinition`, with a line and column for every error."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader

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


# libyaml, when PyYAML was built with it: its scanner is ~20 times faster than the pure-Python one.
_FastLoader: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_STR_TAG = "tag:yaml.org,2002:str"
# Left to the reference reader: tabs (libyaml accepts some it refuses), the line breaks of YAML 1.1
# besides \n and \r, and byte order marks.
_RARE_CHARACTERS = re.compile("[\t\x85\u2028\u2029\ufeff]")


class _Unusual(Exception):
    """Something the fast path leaves to the pure-Python reader, whose messages and positions are the reference."""


def _fast_load(text: str) -> tuple[Any, Marks]:
    """Read a plain document (no anchors, merge keys, directives) from libyaml's events, as `_Builder` would.

    The events come from a state machine without recursion, and nodes are built here with an explicit stack:
    libyaml's own composer recurses in C and crashes the process on a deeply nested document.

    Raises:
        _Unusual: anything else, valid or not (aliases, duplicate keys, errors): the caller reads it again.
    """
    if _FastLoader is None or _RARE_CHARACTERS.search(text) or Reader.NON_PRINTABLE.search(text):
        raise _Unusual
    loader = _FastLoader(text)
    try:
        return _from_events(loader, text)
    finally:
        loader.dispose()


_NO_KEY = object()
_BLOCK_STYLES = ("|", ">")
# What the reference reader accepts after `|` or `>`: chomping and indentation, then blanks, a comment, the end.
_BLOCK_HEADER = re.compile(r"[|>](?:[-+][1-9]?|[1-9][-+]?)?(?: +(?:#[^\r\n]*)?)?(?:\r\n|\r|\n|\Z)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _BlockHeaders:
    """Checks block scalar headers (libyaml accepts `|#`, the reference reader does not), indexing lines once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: list[int] | None = None

    def well_formed(self, mark: Any) -> bool:
        if self.starts is None:
            self.starts = [0, *(match.end() for match in _LINE_BREAK.finditer(self.text))]
        if mark.line >= len(self.starts):
            return False
        return _BLOCK_HEADER.match(self.text, self.starts[mark.line] + mark.column) is not None


def _from_events(loader: yaml.CSafeLoader, text: str) -> tuple[Any, Marks]:
    get: Callable[[], Any] = loader.get_event  # events are dynamic: each kind has its own attributes
    if type(get()) is not StreamStartEvent:
        raise _Unusual
    start = get()
    if type(start) is not DocumentStartEvent or start.version is not None or start.tags:
        raise _Unusual
    marks: Marks = {}
    headers = _BlockHeaders(text)
    # each open collection: [the dict or list, its path, the key whose value comes next (mappings), flow style]
    stack: list[list[Any]] = []
    flow = 0  # how many of them are flow collections ([] or {})
    root: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is MappingEndEvent or kind is SequenceEndEvent:
            flow -= stack.pop()[3]
            if not stack:
                break
            continue
        if kind is not ScalarEvent and kind is not MappingStartEvent and kind is not SequenceStartEvent:
            raise _Unusual  # an alias, or events out of place
        if event.anchor is not None or event.tag is not None:
            raise _Unusual  # the reference reader refuses repeated anchors, counts aliases, reads tags its way
        if kind is ScalarEvent:
            if event.style in _BLOCK_STYLES and not headers.well_formed(event.start_mark):
                raise _Unusual
            if flow and event.implicit[0] and "?" in event.value:
                raise _Unusual  # the reference reader ends a plain scalar at `?` inside [] and {}, libyaml does not
        position = (event.start_mark.line + 1, event.start_mark.column + 1)
        parent = stack[-1] if stack else None
        if parent is None:
            path: Path = ()
        elif type(parent[0]) is dict:
            if parent[2] is _NO_KEY:  # this event is a key
                if kind is not ScalarEvent or _scalar_tag(loader, event) != _STR_TAG or event.value in parent[0]:
                    raise _Unusual  # keys that are not strings, merge keys (<<), duplicate keys
                parent[2] = event.value
                marks[(*parent[1], event.value)] = position
                continue
            path = (*parent[1], parent[2])
        else:
            path = (*parent[1], len(parent[0]))
        if len(path) > MAX_DEPTH:
            raise _Unusual
        if path not in marks and kind is ScalarEvent and event.value == "" and event.implicit[0]:
            raise _Unusual  # an empty plain scalar (null) where its position counts: the readers place it apart
        marks.setdefault(path, position)
        value: Any
        if kind is ScalarEvent:
            tag = _scalar_tag(loader, event)
            if tag == _STR_TAG:
                value = event.value
            else:
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
                value = loader.construct_object(node, deep=True)
        else:
            value = {} if kind is MappingStartEvent else []
        if parent is None:
            root = value
        elif type(parent[0]) is dict:
            parent[0][parent[2]] = value
            parent[2] = _NO_KEY
        else:
            parent[0].append(value)
        if kind is not ScalarEvent:
            stack.append([value, path, _NO_KEY, bool(event.flow_style)])
            flow += stack[-1][3]
        elif parent is None:
            break
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise _Unusual  # more than one document
    return root, marks


def _scalar_tag(loader: yaml.CSafeLoader, event: Any) -> str:
    tag: str | None = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    return str(tag)


def load_yaml(text: str, *, file: str = "<string>") -> tuple[Any, Marks]:
    """Read one YAML document safely; return its data and the position of every path."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise DslError([Issue("", f"file is larger than {MAX_BYTES // 1024} KiB", file)])
    try:
        return _fast_load(text)
    except Exception:  # noqa: BLE001 - whatever the fast path does not take, the reference reader answers
        return reference_load(text, file=file)


def reference_load(text: str, *, file: str = "<string>") -> tuple[Any, Marks]:
    """Read one YAML document with PyYAML's pure-Python reader: what `load_yaml` answers, only slower."""
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
