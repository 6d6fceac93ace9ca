"""The task dependency graph: implicit edges, cycle detection and upstream sets."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from .model import Task, WorkflowDefinition

Graph = dict[str, tuple[str, ...]]


def dependencies_of(tasks: Iterable[tuple[str, Sequence[str] | None]]) -> Graph:
    """The rule of DSL.md: each (id, depends_on) in list order; an omitted `depends_on` means the previous task."""
    graph: Graph = {}
    previous: str | None = None
    for task_id, depends_on in tasks:
        graph[task_id] = ((previous,) if previous else ()) if depends_on is None else tuple(dict.fromkeys(depends_on))
        previous = task_id
    return graph


def task_graph(tasks: Sequence[Task]) -> Graph:
    """Return each task's dependencies; omitted `depends_on` means the previous task in the list."""
    return dependencies_of((task.id, task.depends_on) for task in tasks)


def dependencies(definition: WorkflowDefinition) -> Graph:
    """Return the dependency graph of a definition's main tasks."""
    return task_graph(definition.tasks)


def find_cycle(graph: Graph) -> list[str] | None:
    """Return one cycle as a closed list of ids (`a -> b -> a`), or None.

    The depth-first search keeps its own stack, so long chains cannot exhaust Python's recursion limit.
    """
    state: dict[str, int] = {}
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        stack = [root]
        pending = [iter(graph.get(root, ()))]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                state[stack.pop()] = 2
                pending.pop()
            elif state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            elif dep not in state:
                state[dep] = 1
                stack.append(dep)
                pending.append(iter(graph.get(dep, ())))
    return None


def upstream(graph: Graph, task_id: str) -> frozenset[str]:
    """Return every task that must finish before `task_id` starts."""
    seen: set[str] = set()
    pending = list(graph.get(task_id, ()))
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending.extend(graph.get(node, ()))
    return frozenset(seen)


class UpstreamSets:
    """Every task's upstream set of an acyclic graph, as bit masks computed in one pass.

    Calling `upstream` for each task walks the graph once per task: quadratic in a long chain.
    """

    def __init__(self, graph: Graph) -> None:
        """Compute every task's mask, depth first with an explicit stack (long chains need no recursion).

        Raises:
            ValueError: The graph has a cycle (check it with `find_cycle` first).
        """
        self._bits: dict[str, int] = {}
        self._masks: dict[str, int] = {}
        for root in graph:
            self._fill(graph, root)

    def _bit(self, task_id: str) -> int:
        return 1 << self._bits.setdefault(task_id, len(self._bits))

    def _fill(self, graph: Graph, root: str) -> None:
        masks, entered, stack = self._masks, set(), [root]
        while stack:
            node = stack[-1]
            if node in masks:
                stack.pop()
                continue
            deps = graph.get(node, ())
            if node not in entered:
                entered.add(node)
                for dep in deps:
                    if dep in entered and dep not in masks:
                        raise ValueError(f"dependency cycle through {dep!r}")
                    if dep not in masks:
                        stack.append(dep)
                continue
            mask = 0
            for dep in deps:
                mask |= masks[dep] | self._bit(dep)
            masks[node] = mask
            stack.pop()

    def of(self, task_id: str) -> Container[str]:
        """Return the tasks that must finish before `task_id` starts (the same set as `upstream`)."""
        return _Members(self._bits, self._masks.get(task_id, 0))


class _Members:
    """The tasks of one mask, answering `in`."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits: dict[str, int], mask: int) -> None:
        self._bits, self._mask = bits, mask

    def __contains__(self, task_id: object) -> bool:
        bit = self._bits.get(task_id) if isinstance(task_id, str) else None
        return bit is not None and bool(self._mask >> bit & 1)


def downstream(graph: Graph, task_id: str) -> frozenset[str]:
    """Return every task that (directly or through others) waits for `task_id`."""
    return frozenset(node for node in graph if task_id in upstream(graph, node))


def mermaid(definition: WorkflowDefinition) -> str:
    """Render the main task DAG as a Mermaid flowchart (approvals as hexagons, conditional tasks dashed)."""
    lines = ["flowchart TD"]
    for task in definition.tasks:
        label = f"{task.display_name} ({task.type})".replace('"', "'")
        shape = f'{{{{"{label}"}}}}' if task.type == "approval" else f'["{label}"]'
        lines.append(f"    {task.id}{shape}")
    for task_id, deps in dependencies(definition).items():
        lines.extend(f"    {dep} --> {task_id}" for dep in deps)
    lines.extend(f"    style {t.id} stroke-dasharray: 5 5" for t in definition.tasks if t.when is not None)
    return "\n".join(lines) + "\n"
