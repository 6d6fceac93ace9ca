"""The task dependency graph: implicit edges, cycle detection and upstream sets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
