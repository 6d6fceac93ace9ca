"""Bound what a CEL expression will cost and build before it runs, deterministically, from its tree and data."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .cel_syntax import Binary, Call, Cond, Ident, Index, ListLit, Lit, Macro, MapLit, Node, Select, Unary
from .errors import ExpressionError

# The Rust `cel` library has no cost tracking and cannot be interrupted, so the bound is computed up front by
# abstract interpretation of the syntax tree (`cel_syntax`): values an expression reads are tracked concretely
# (`Data`: the value there is one of these), values it builds by bounds on their size (`Shape`). Costs are in
# units of about 100 ns of the library's time, calibrated on what it does: `map` and `filter` copy their whole
# result once per element, each call of `matches` compiles its pattern again, and putting a value in a list or
# map deep-copies it. Without data (registration) every value read counts as a one-element list, so a static
# refusal means every run would be refused too.
ITERATION = 3  # one pass of a comprehension: bind the variable, run the body's bookkeeping
READ_FACTOR = 8  # converting a value it reads from Python (~1 us per string, float or map entry)
OUTPUT_FACTOR = 4  # converting the result back to Python
EQUALITY_FACTOR = 3  # deep comparison of maps is slower than copying them (~4 us for a 3-key map)
STRING_BYTES_PER_UNIT = 256  # copying, comparing or searching text (measured 0.02-0.5 ns a byte)
MATCH_BYTES_PER_UNIT = 32  # running a compiled regex over text
LIST_NODES = 2  # what a list counts for itself in `nodes` (copying one costs twice a number)
BYTES_PER_NODE = 64  # memory of one value (Rust value + Python object), beside its text
REGEX_BASE = 150  # compiling the smallest pattern (~15 us)
REGEX_UNKNOWN = 900_000  # a pattern computed by the expression: the library's compile limit (~85 ms measured)
_INDEX_PAIRS = 4096  # beyond this many (container, key) pairs an index reads every member instead
MAX_DATA_DEPTH = 256  # lists and maps inside each other in the data an expression reads
_SHAPE_DEPTH = 16  # shapes nested deeper are summarised by their sizes alone
_REGEX_DEPTH = 64  # groups or classes nested deeper are charged as the worst pattern


class Data:
    """The values an expression reads at one point: the value there is one of these."""

    __slots__ = ("values",)

    def __init__(self, values: Iterable[Any], *, distinct: bool = False) -> None:
        """Keep the candidate values; `distinct` drops repeats of one object (after joins)."""
        self.values: tuple[Any, ...] = tuple({id(v): v for v in values}.values()) if distinct else tuple(values)


@dataclass(frozen=True, slots=True)
class Shape:
    """Upper bounds of a value the expression builds."""

    length: int  # elements of a list, entries of a map
    nodes: int  # values inside, a map entry and a string counting extra
    chars: int  # characters of every string and bytes inside
    elem: Abstract | None = None  # any element, map key or map value (None: there are none)
    fields: Mapping[str, Abstract] | None = None  # map entries under literal string keys
    # every part is bounded by the whole: unknown data at registration, or a shape too deep to follow
    open: bool = False
    depth: int = 0  # how many shapes are nested in elem/fields (kept below _SHAPE_DEPTH)
    text: bool = False  # a string or bytes: joining two makes one value, not two


Abstract = Data | Shape

BOTTOM = Data(())  # no value: evaluation fails before reaching here
SCALAR = Shape(0, 1, 0)
UNKNOWN = Shape(1, 1, 1, open=True)


def _shape(
    length: int, nodes: int, chars: int, elem: Abstract | None = None, fields: Mapping[str, Abstract] | None = None
) -> Shape:
    """Build a shape; one nested too deeply becomes open, so no walk over shapes ever recurses far."""
    parts = [elem, *(fields or {}).values()]
    depth = 1 + max((p.depth for p in parts if isinstance(p, Shape)), default=0)
    if depth > _SHAPE_DEPTH:
        return Shape(length, nodes, chars, open=True)
    return Shape(length, nodes, chars, elem=elem, fields=fields, depth=depth)


@dataclass
class Estimate:
    """What evaluating an expression may cost (units), the largest value it may build (bytes), its nesting."""

    cost: int = 0
    peak_bytes: int = 0
    depth: int = 0
    read_cost: int = 0  # of `cost`, converting the data in
    result_nodes: int = 0  # bounds of the result, in the units of `measure`
    result_chars: int = 0
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Select | Unary):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return ((node.target,) if node.target is not None else ()) + node.args
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return tuple(part for entry in node.entries for part in entry)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Cond):
        return (node.test, node.then, node.other)
    if isinstance(node, Macro):
        return (node.target, *node.args)
    return ()


def nesting(node: Node) -> int:
    """Return how deeply comprehensions nest inside each other's bodies (a chain does not nest)."""
    deepest, stack = 0, [(node, 0)]
    while stack:  # iterative: chains such as `1 + 1 + ...` make trees hundreds of levels deep
        item, depth = stack.pop()
        if isinstance(item, Macro):
            deepest = max(deepest, depth + 1)
            stack.append((item.target, depth))
            stack.extend((arg, depth + 1) for arg in item.args)
        else:
            stack.extend((child, depth) for child in _children(item))
    return deepest


def task_reads(node: Node) -> frozenset[str] | None:
    """Return the task ids read as `tasks.<id>` / `tasks['<id>']`, or None when `tasks` is read otherwise."""
    found: set[str] = set()
    stack: list[tuple[Node, frozenset[str]]] = [(node, frozenset())]
    tasks = Ident("tasks")
    while stack:
        item, bound = stack.pop()
        if "tasks" not in bound:
            if isinstance(item, Select) and item.operand == tasks:
                found.add(item.field)
                continue
            if isinstance(item, Index) and item.operand == tasks:
                if not (isinstance(item.index, Lit) and isinstance(item.index.value, str)):
                    return None
                found.add(item.index.value)
                stack.append((item.index, bound))
                continue
            if item == tasks:
                return None
        if isinstance(item, Macro):
            stack.append((item.target, bound))
            stack.extend((arg, bound | {item.var}) for arg in item.args)
        else:
            stack.extend((child, bound) for child in _children(item))
    return frozenset(found)


def plain_path(node: Node) -> tuple[str, tuple[str | int, ...]] | None:
    """Return (root, steps) when an expression only reads a path (`params.a`, `tasks['x'].output[0]`)."""
    steps: list[str | int] = []
    while True:
        if isinstance(node, Select):
            steps.append(node.field)
            node = node.operand
        elif isinstance(node, Index) and isinstance(node.index, Lit) and type(node.index.value) in (str, int):
            steps.append(node.index.value)  # type: ignore[arg-type]  # str or int, checked just above
            node = node.operand
        elif isinstance(node, Ident):
            return node.name, tuple(reversed(steps))
        else:
            return None


def sized_path(node: Node) -> tuple[str, tuple[str | int, ...]] | None:
    """Return the path of `size(path)` or `path.size()`, which can be answered without converting the data."""
    if not isinstance(node, Call) or node.name != "size":
        return None
    if node.target is None and len(node.args) == 1:
        return plain_path(node.args[0])
    if node.target is not None and not node.args:
        return plain_path(node.target)
    return None


def estimate(node: Node, scope: Mapping[str, Any] | None, budget: int | None = None) -> Estimate:
    """Bound the cost of evaluating `node` against `scope`; None estimates without data (registration).

    When converting the data in already exceeds `budget`, that is the estimate: the data is not walked further.
    """
    estimator = _Estimator(scope)
    # the library converts every value passed in, then the result back out
    cost = estimator.result.read_cost = sum(READ_FACTOR * estimator.copy(Data((v,))) for v in (scope or {}).values())
    if budget is not None and cost > budget:
        estimator.result.cost = cost
        return estimator.result
    value, visited = estimator.visit(node, {})
    cost += visited + OUTPUT_FACTOR * estimator.copy(value)
    estimator.result.cost = cost
    estimator.result.depth = nesting(node)
    estimator.result.result_nodes, estimator.result.result_chars = estimator.nodes(value), estimator.chars(value)
    return estimator.result


def _spine(node: Node) -> Node | None:
    """The child a long chain runs through (`a.b.c`, `1 + 1 + 1`, `x.f().g()`), walked in a loop."""
    if isinstance(node, Select | Index | Unary):
        return node.operand
    if isinstance(node, Binary):
        return node.left
    if isinstance(node, Macro):
        return node.target
    if isinstance(node, Call):
        return node.target
    return None


class _Estimator:
    def __init__(self, scope: Mapping[str, Any] | None) -> None:
        self.scope = scope
        self.result = Estimate()

    # --- sizes ---

    def measure(self, value: Any, depth: int = 0) -> tuple[int, int]:
        """(nodes, chars) of one concrete value; containers are remembered, so their parts are measured once."""
        kind = type(value)
        if kind is str or kind is bytes:
            return 2, len(value)
        if not isinstance(value, list | tuple | Mapping):
            return 1, 0
        key = id(value)
        known = self.result.sizes.get(key)
        if known is not None:
            return known
        if depth > MAX_DATA_DEPTH:  # the library converts data recursively: far deeper crashes the process
            raise ExpressionError(f"the data it reads is nested more than {MAX_DATA_DEPTH} levels deep")
        nodes, chars = LIST_NODES, 0  # a list's own vector weighs about as much as a string's
        children: Iterable[Any] = value
        if isinstance(value, Mapping):
            nodes += len(value) - LIST_NODES + 1
            children = (*value.keys(), *value.values())
        for child in children:
            child_kind = type(child)
            if child_kind is str or child_kind is bytes:
                nodes, chars = nodes + 2, chars + len(child)
            elif child_kind is int or child_kind is float or child_kind is bool or child is None:
                nodes += 1
            else:
                child_nodes, child_chars = self.measure(child, depth + 1)
                nodes, chars = nodes + child_nodes, chars + child_chars
        self.result.sizes[key] = (nodes, chars)
        return nodes, chars

    def nodes(self, value: Abstract) -> int:
        if isinstance(value, Shape):
            return value.nodes
        return max((self.measure(v)[0] for v in value.values), default=0)

    def chars(self, value: Abstract) -> int:
        if isinstance(value, Shape):
            return value.chars
        return max((self.measure(v)[1] for v in value.values), default=0)

    @staticmethod
    def length(value: Abstract) -> int:
        if isinstance(value, Shape):
            return value.length
        return max((len(v) for v in value.values if isinstance(v, list | tuple | Mapping)), default=0)

    def copy(self, value: Abstract) -> int:
        """Units to deep-copy a value (what the library does to everything it puts in a list or map)."""
        return self.nodes(value) + self.chars(value) // STRING_BYTES_PER_UNIT

    @staticmethod
    def is_text(value: Abstract) -> bool:
        if isinstance(value, Shape):
            return value.text
        return bool(value.values) and all(type(v) in (str, bytes) for v in value.values)

    def built(self, shape: Shape) -> Shape:
        self.result.peak_bytes = max(self.result.peak_bytes, shape.nodes * BYTES_PER_NODE + shape.chars)
        return shape

    # --- structure ---

    def shape(self, value: Abstract) -> Shape:
        if isinstance(value, Shape):
            return value
        if self.is_text(value):
            return Shape(0, self.nodes(value), self.chars(value), text=True)
        elem = self.join(self.items(value), self.members(value)) if value.values else None
        return _shape(self.length(value), self.nodes(value), self.chars(value), elem)

    def join(self, *values: Abstract | None) -> Abstract:
        present = [v for v in values if v is not None and not (isinstance(v, Data) and not v.values)]
        if not present:
            return BOTTOM
        if all(isinstance(v, Data) for v in present):
            return Data((x for v in present if isinstance(v, Data) for x in v.values), distinct=True)
        shapes = [self.shape(v) for v in present]
        length, nodes, chars = (max(getattr(s, n) for s in shapes) for n in ("length", "nodes", "chars"))
        if all(s.text for s in shapes):
            return Shape(0, nodes, chars, text=True)
        if any(s.open for s in shapes):  # a bound on every part already
            return Shape(max(length, nodes), nodes, chars, open=True)
        elems = [s.elem for s in shapes if s.elem is not None]
        fields: dict[str, Abstract] | None = None
        if any(s.fields for s in shapes):  # what selecting each known name gives, in any of the shapes
            names = {name for s in shapes for name in s.fields or {}}
            fields = {name: self.join(*(self.select(s, name) for s in shapes)) for name in names}
        return _shape(length, nodes, chars, self.join(*elems) if elems else None, fields)

    def items(self, value: Abstract) -> Abstract:
        """What a comprehension variable is bound to: list elements, map keys."""
        if isinstance(value, Shape):
            if value.open:  # no part is larger than the whole, and a part's length is at most its nodes
                return Shape(max(value.length, value.nodes), value.nodes, value.chars, open=True)
            return value.elem if value.elem is not None else BOTTOM
        return Data(x for v in value.values if isinstance(v, list | tuple | Mapping) for x in v)

    def members(self, value: Abstract) -> Abstract:
        """What an index with an unknown key reads: list elements, map values."""
        if isinstance(value, Shape):
            return self.items(value)
        out: list[Any] = []
        for v in value.values:
            if isinstance(v, Mapping):
                out.extend(v.values())
            elif isinstance(v, list | tuple):
                out.extend(v)
        return Data(out)

    def select(self, value: Abstract, name: str) -> Abstract:
        if isinstance(value, Data):
            return Data(v[name] for v in value.values if isinstance(v, Mapping) and name in v)
        if value.fields is not None and name in value.fields:
            return value.fields[name]
        return self.items(value)

    def index(self, value: Abstract, key: Abstract) -> Abstract:
        if isinstance(value, Data) and isinstance(key, Data) and len(value.values) * len(key.values) <= _INDEX_PAIRS:
            return Data(_lookups(value.values, key.values))
        if isinstance(value, Shape) and value.fields is not None and isinstance(key, Data):
            names = [k for k in key.values if isinstance(k, str)]
            if names and len(names) == len(key.values) and all(k in value.fields for k in names):
                return self.join(*(value.fields[k] for k in names))
        return self.members(value)

    # --- the walk: (abstract value, cost in units) ---

    def visit(self, node: Node, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        """Estimate a node: down its spine in a loop, then each step of the chain outwards."""
        chain: list[Node] = []
        inner = _spine(node)
        while inner is not None:
            chain.append(node)
            node, inner = inner, _spine(inner)
        value, cost = self.leaf(node, env)
        for outer in reversed(chain):
            value, cost = self.step(outer, value, cost, env)
        return value, cost

    def leaf(self, node: Node, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        if isinstance(node, Lit):
            return Data((node.value,)), 1
        if isinstance(node, Ident):
            if node.name in env:
                return env[node.name], 1
            if self.scope is None:
                return UNKNOWN, 1
            if node.name in self.scope:
                return Data((self.scope[node.name],)), 1
            return SCALAR, 1  # a type name (`int`) or an undefined name, which fails
        if isinstance(node, ListLit):
            return self.list_literal(node, env)
        if isinstance(node, MapLit):
            return self.map_literal(node, env)
        if isinstance(node, Cond):
            _, test_cost = self.visit(node.test, env)
            then, then_cost = self.visit(node.then, env)
            other, other_cost = self.visit(node.other, env)
            return self.join(then, other), test_cost + max(then_cost, other_cost) + 1
        assert isinstance(node, Call)  # a call without a target: the rest have a spine
        return self.call(node, None, 0, env)

    def step(self, node: Node, value: Abstract, cost: int, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        if isinstance(node, Select):
            return self.select(value, node.field), cost + 1
        if isinstance(node, Index):
            key, key_cost = self.visit(node.index, env)
            return self.index(value, key), cost + key_cost + 1
        if isinstance(node, Unary):  # the library folds `!!x` and `--x` into x: as large as the operand
            return self.shape(value), cost + 1
        if isinstance(node, Binary):
            right, right_cost = self.visit(node.right, env)
            return self.binary(node.op, value, right, cost + right_cost + 1)
        if isinstance(node, Macro):
            return self.comprehension(node, value, cost, env)
        assert isinstance(node, Call)
        return self.call(node, value, cost, env)

    def list_literal(self, node: ListLit, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        parts = [self.visit(item, env) for item in node.items]
        values = [v for v, _ in parts]
        nodes, chars = LIST_NODES + sum(self.nodes(v) for v in values), sum(self.chars(v) for v in values)
        shape = _shape(len(values), nodes, chars, self.join(*values) if values else None)
        return self.built(shape), 1 + sum(c for _, c in parts) + sum(self.copy(v) for v in values)

    def map_literal(self, node: MapLit, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        fields: dict[str, Abstract] = {}
        everything: list[Abstract] = []
        cost, nodes, chars = 1, 1, 0
        for key_node, value_node in node.entries:
            key, key_cost = self.visit(key_node, env)
            value, value_cost = self.visit(value_node, env)
            cost += key_cost + value_cost + self.copy(key) + self.copy(value)
            nodes += 1 + self.nodes(key) + self.nodes(value)
            chars += self.chars(key) + self.chars(value)
            everything += [key, value]
            if isinstance(key_node, Lit) and isinstance(key_node.value, str):
                fields[key_node.value] = self.join(fields.get(key_node.value), value)
        elem = self.join(*everything) if everything else None
        return self.built(_shape(len(node.entries), nodes, chars, elem, fields)), cost

    def binary(self, op: str, left: Abstract, right: Abstract, cost: int) -> tuple[Abstract, int]:
        if op == "+" and self.is_text(left) and self.is_text(right):
            shape = Shape(0, 2, self.chars(left) + self.chars(right), text=True)
            return self.built(shape), cost + self.copy(left) + self.copy(right)
        if op == "+":  # numbers, or lists joined: a bound for both
            elem = self.join(self.items(left), self.items(right))
            shape = _shape(self.length(left) + self.length(right), self.nodes(left) + self.nodes(right),
                           self.chars(left) + self.chars(right), elem)  # fmt: skip
            return self.built(shape), cost + self.copy(left) + self.copy(right)
        if op in ("==", "!="):  # deep comparison stops at the smaller side
            return SCALAR, cost + EQUALITY_FACTOR * min(self.copy(left), self.copy(right))
        if op == "in":
            return SCALAR, cost + EQUALITY_FACTOR * self.copy(right) + self.length(right)
        if op in ("<", "<=", ">", ">="):
            return SCALAR, cost + (self.chars(left) + self.chars(right)) // STRING_BYTES_PER_UNIT
        return SCALAR, cost

    def comprehension(self, node: Macro, target: Abstract, cost: int, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        count = self.length(target)
        inner = {**env, node.var: self.items(target)}
        parts = [self.visit(arg, inner) for arg in node.args]
        cost += count * (ITERATION + sum(c for _, c in parts))
        if node.name not in ("map", "filter"):
            return SCALAR, cost
        # the library appends by copying the whole accumulated list: element i costs i copies of an element
        if node.name == "map":
            elem = parts[-1][0] if parts else BOTTOM
            shape = _shape(count, LIST_NODES + count * self.nodes(elem), count * self.chars(elem), elem)
        else:
            elem = inner[node.var]
            # at most the target's elements (or a map's keys) in a new list
            shape = _shape(count, LIST_NODES + self.nodes(target), self.chars(target), elem)
        cost += count * (count + 1) // 2 * self.copy(elem)
        return self.built(shape), cost

    def call(self, node: Call, target: Abstract | None, cost: int, env: dict[str, Abstract]) -> tuple[Abstract, int]:
        if node.name == "has" and target is None and len(node.args) == 1 and isinstance(node.args[0], Select):
            _, operand_cost = self.visit(node.args[0].operand, env)
            return SCALAR, operand_cost + 1
        parts = [self.visit(arg, env) for arg in node.args]
        cost += 1 + sum(c for _, c in parts)
        if node.target == Ident("optional") and "optional" not in env and node.name in ("of", "ofNonZeroValue", "none"):
            return (parts[0][0] if parts else SCALAR), cost
        values = ([target] if target is not None else []) + [v for v, _ in parts]
        value, extra = self.function(node.name, values)
        return value, cost + extra

    def function(self, name: str, args: Sequence[Abstract]) -> tuple[Abstract, int]:
        """Result and own cost of a library function (any other name fails at run time)."""
        first = args[0] if args else BOTTOM
        text = sum(self.chars(a) for a in args) // STRING_BYTES_PER_UNIT
        if name == "size" or name.startswith("get") or name == "hasValue":
            return SCALAR, 1
        if name in ("contains", "startsWith", "endsWith"):
            return SCALAR, text + 1
        if name == "matches" and len(args) == 2:
            return SCALAR, self.regex(args[1]) + self.chars(args[0]) // MATCH_BYTES_PER_UNIT
        if name in ("int", "uint", "double", "duration", "timestamp", "type"):
            return SCALAR, text + 1
        if name == "string":
            return self.built(Shape(0, 2, self.chars(first) + 40, text=True)), self.copy(first)
        if name == "bytes":
            return self.built(Shape(0, 2, 4 * self.chars(first), text=True)), self.copy(first)
        if name in ("dyn", "value"):
            return first, 1
        if name in ("or", "orValue"):
            return self.join(*args), 1
        return BOTTOM, 1

    def regex(self, pattern: Abstract) -> int:
        if isinstance(pattern, Data):
            return max((regex_cost(p) for p in pattern.values if isinstance(p, str)), default=REGEX_BASE)
        return REGEX_BASE if pattern.open and self.scope is None else REGEX_UNKNOWN


def _lookups(containers: Sequence[Any], keys: Sequence[Any]) -> Iterable[Any]:
    for container in containers:
        for key in keys:
            if isinstance(container, Mapping):
                if _hashable(key) and key in container:
                    yield container[key]
            elif isinstance(container, list | tuple) and isinstance(key, int) and not isinstance(key, bool):
                if -len(container) <= key < len(container):
                    yield container[key]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# --- regex compile cost: the library compiles the pattern on every call of `matches` ---

_CLASS_ESCAPES = {"w": 4000, "W": 4000, "p": 3000, "P": 3000, "d": 800, "D": 800, "s": 50, "S": 50}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def regex_cost(pattern: str) -> int:
    r"""Units to compile a pattern: atoms weighted by how large their automaton is, times their repetitions.

    Weights were measured on the library (per repetition): a literal ~0.1 us, `.`/`\s`/`[^a]` ~5 us,
    `\d` ~20-80 us, Unicode `\w`/`\pL` ~220-400 us. Case-insensitive patterns count four times.
    """
    if len(pattern) <= 256:  # cache only short patterns: data may hold long ones
        return _short_regex_cost(pattern)
    return _regex_cost(pattern)


@lru_cache(maxsize=1024)
def _short_regex_cost(pattern: str) -> int:
    return _regex_cost(pattern)


def _regex_cost(pattern: str) -> int:
    cost, _ = _regex_sequence(pattern, 0, 0)
    case_folded = re.search(r"\(\?[a-zA-Z]*i", pattern) is not None
    return REGEX_BASE + cost * (4 if case_folded else 1)


def _regex_sequence(pattern: str, at: int, depth: int) -> tuple[int, int]:
    """Cost of alternatives up to the closing parenthesis (or the end); returns (cost, position after)."""
    if depth > _REGEX_DEPTH:
        return REGEX_UNKNOWN, len(pattern)
    total = 0
    while at < len(pattern) and pattern[at] != ")":
        char = pattern[at]
        if char == "|":
            at += 1
            continue
        if char == "(":
            at += 1
            if pattern.startswith("?", at):
                flags = re.match(r"\?(?:P?<\w+>|[a-zA-Z-]*:?)", pattern[at:])
                at += flags.end() if flags else 1
                if flags and not flags.group(0).endswith((":", ">")):
                    at += pattern.startswith(")", at)  # `(?i)` sets flags, matches nothing
                    continue
            weight, at = _regex_sequence(pattern, at, depth + 1)
            at += 1  # the closing parenthesis
        elif char == "[":
            weight, at = _regex_class(pattern, at, depth + 1)
        elif char == "\\":
            weight, at = _regex_escape(pattern, at)
        else:
            weight, at = (50 if char == "." else 1), at + 1
        repeat = _REPEAT.match(pattern, at)
        if repeat:
            low, comma, high = repeat.group(1), repeat.group(2), repeat.group(3)
            count = high or low
            # counts beyond nine digits are refused by the library anyway; int() of a huge one is slow
            weight *= 10**9 if len(count) > 9 else int(count) + (1 if comma and not high else 0)
            at = repeat.end()
        elif at < len(pattern) and pattern[at] in "*+?":
            at += 1
        if at < len(pattern) and pattern[at] == "?":  # lazy quantifier
            at += 1
        total += weight
    return total, at


def _regex_escape(pattern: str, at: int) -> tuple[int, int]:
    letter = pattern[at + 1 : at + 2]
    at += 2
    if letter in ("p", "P", "x", "u") and pattern.startswith("{", at):
        close = pattern.find("}", at)
        at = len(pattern) if close < 0 else close + 1
    elif letter in ("p", "P"):
        at += 1
    return _CLASS_ESCAPES.get(letter, 1), at


def _regex_class(pattern: str, at: int, depth: int) -> tuple[int, int]:
    """Cost of a bracketed class (nested classes included); returns (cost, position after)."""
    if depth > _REGEX_DEPTH:
        return REGEX_UNKNOWN, len(pattern)
    at += 1
    weight = 4
    if pattern.startswith("^", at):
        weight, at = weight + 50, at + 1
    if pattern.startswith("]", at):
        weight, at = weight + 1, at + 1
    while at < len(pattern) and pattern[at] != "]":
        if pattern.startswith("[:", at):
            close = pattern.find(":]", at)
            weight, at = weight + 4, (len(pattern) if close < 0 else close + 2)
        elif pattern[at] == "[":
            inner, at = _regex_class(pattern, at, depth + 1)
            weight += inner
        elif pattern[at] == "\\":
            inner, at = _regex_escape(pattern, at)
            weight += inner
        else:
            weight, at = weight + 1, at + 1
    return weight, at + 1
