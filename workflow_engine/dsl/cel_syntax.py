"""Parse CEL source into the small syntax tree the expression cost estimator walks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# `cel.compile` (the Rust library) has accepted every source parsed here, but exposes no tree; this rebuilds one
# for what the library supports: literals, names, selection, indexing, calls, list and map literals, operators,
# conditionals and the comprehension macros written as methods. Loops, not recursion, walk long chains.
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
MAX_NESTING = 32  # brackets, calls and conditionals inside each other (the library itself stops below 100)


class CelSyntaxError(ValueError):
    """Source this parser cannot read (the library accepted it, so this is a gap in the parser)."""


class NestingError(CelSyntaxError):
    """Source nested deeper than `MAX_NESTING`."""


@dataclass(frozen=True, slots=True)
class Lit:
    """A scalar, string or bytes literal."""

    value: object


@dataclass(frozen=True, slots=True)
class Ident:
    """A name: a root such as `params`, a comprehension variable, or a type name."""

    name: str


@dataclass(frozen=True, slots=True)
class Select:
    """`operand.field`."""

    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Index:
    """`operand[index]`."""

    operand: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Call:
    """`name(args)` or `target.name(args)`."""

    name: str
    target: Node | None
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListLit:
    """`[a, b, ...]`."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit:
    """`{k: v, ...}`, and message literals `Name{field: v}` (which the library refuses at run time)."""

    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Unary:
    """`!x` or `-x`."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """`left op right` for arithmetic, comparison, `in`, `&&` and `||`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Cond:
    """`test ? then : other`."""

    test: Node
    then: Node
    other: Node


@dataclass(frozen=True, slots=True)
class Macro:
    """`target.name(var, args...)`: a comprehension binding `var` to each element (or key) of target."""

    name: str
    target: Node
    var: str
    args: tuple[Node, ...]


Node = Lit | Ident | Select | Index | Call | ListLit | MapLit | Unary | Binary | Cond | Macro

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<float>(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<int>0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-3][0-7]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_KEYWORDS = {"true": True, "false": False, "null": None}
_PRECEDENCE = {"||": 1, "&&": 2, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5} | dict.fromkeys(
    ("<", "<=", ">", ">=", "==", "!=", "in"), 3
)

Token = tuple[str, str]  # (kind, text)


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "xuU":
        return chr(int(code[1:], 16))
    if code[0].isdigit():
        return chr(int(code, 8))
    return _SIMPLE_ESCAPES.get(code, code)


def _string_value(text: str) -> str | bytes:
    prefix = re.match(r"[rRbB]*", text)
    flags = prefix.group(0).lower() if prefix else ""
    body = text[len(flags) :]
    quote = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[quote:-quote]
    if "r" not in flags:
        inner = _ESCAPE.sub(_unescape, inner)
    return inner.encode("utf-8", "surrogatepass") if "b" in flags else inner


def tokenize(source: str) -> list[Token]:
    """Split CEL source into (kind, text) tokens, comments and blanks dropped."""
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise CelSyntaxError(f"unexpected character {source[position]!r} at {position}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(0)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token[0] == "end" or (text is not None and token[1] != text):
            raise CelSyntaxError(f"expected {text or 'a token'}, found {token[1] or 'the end'!r}")
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek()[1] == text and self.peek()[0] in ("op", "name"):
            self.at += 1
            return True
        return False

    def expression(self) -> Node:
        # a counted limit, not Python's stack: the same source must parse the same way wherever it runs
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise NestingError(f"brackets and conditionals nested more than {MAX_NESTING} deep")
        node = self.binary(1)
        if self.accept("?"):
            then = self.binary(1)
            self.take(":")
            node = Cond(node, then, self.expression())
        self.depth -= 1
        return node

    def binary(self, lowest: int) -> Node:
        """Precedence climbing: a chain of one level is built in a loop, so long chains do not recurse."""
        left = self.unary()
        while True:
            kind, text = self.peek()
            level = _PRECEDENCE.get(text) if kind in ("op", "name") else None
            if level is None or level < lowest:
                return left
            self.at += 1
            left = Binary(text, left, self.binary(level + 1))

    def unary(self) -> Node:
        ops: list[str] = []
        while self.peek() in (("op", "!"), ("op", "-")):
            ops.append(self.take()[1])
        node = self.member(self.primary())
        # a run of prefix operators costs what one does: keep the innermost, so the tree stays shallow
        return Unary(ops[-1], node) if ops else node

    def arguments(self, closing: str) -> tuple[Node, ...]:
        items: list[Node] = []
        while not self.accept(closing):
            items.append(self.expression())
            if not self.accept(","):
                self.take(closing)
                break
        return tuple(items)

    def member(self, node: Node) -> Node:
        while True:
            if self.accept("."):
                name = self.take()[1]
                if self.accept("("):
                    args = self.arguments(")")
                    node = self.call(name, node, args)
                else:
                    node = Select(node, name)
            elif self.accept("["):
                index = self.expression()
                self.take("]")
                node = Index(node, index)
            elif self.peek() == ("op", "{") and isinstance(node, Ident | Select):
                self.take("{")
                node = MapLit(self.entries())
            else:
                return node

    @staticmethod
    def call(name: str, target: Node | None, args: tuple[Node, ...]) -> Node:
        if target is not None and name in MACROS and args and isinstance(args[0], Ident):
            return Macro(name, target, args[0].name, args[1:])
        return Call(name, target, args)

    def entries(self) -> tuple[tuple[Node, Node], ...]:
        entries: list[tuple[Node, Node]] = []
        while not self.accept("}"):
            key = self.expression()
            self.take(":")
            entries.append((key, self.expression()))
            if not self.accept(","):
                self.take("}")
                break
        return tuple(entries)

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "int":
            digits = text.rstrip("uU")
            return Lit(int(digits, 16) if digits[:2].lower() == "0x" else int(digits))
        if kind == "float":
            return Lit(float(text))
        if kind == "string":
            return Lit(_string_value(text))
        if kind == "name":
            if text in _KEYWORDS:
                return Lit(_KEYWORDS[text])
            if self.accept("("):
                return self.call(text, None, self.arguments(")"))
            return Ident(text)
        if text == ".":  # a leading dot names the root scope: `.params`
            return Ident(self.take()[1])
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if text == "[":
            return ListLit(self.arguments("]"))
        if text == "{":
            return MapLit(self.entries())
        raise CelSyntaxError(f"unexpected {text!r}")


@lru_cache(maxsize=4096)
def parse(source: str) -> Node:
    """Parse one CEL expression into its syntax tree."""
    parser = _Parser(tokenize(source))
    node = parser.expression()
    if parser.peek()[0] != "end":
        raise CelSyntaxError(f"unexpected {parser.peek()[1]!r} after the expression")
    return node
