"""The task dependency graph: implicit edges, cycle detection and upstream sets."""

from __future__ import annotations

from collections.abc import Sequence

from .model import Task, WorkflowDefinition

Graph = dict[str, tuple[str, ...]]


def task_graph(tasks: Sequence[Task]) -> Graph:
    """Return each task's dependencies; omitted `depends_on` means the previous task in the list."""
    graph: Graph = {}
    previous: str | None = None
    for task in tasks:
        if task.depends_on is None:
            graph[task.id] = (previous,) if previous else ()
        else:
            graph[task.id] = tuple(dict.fromkeys(task.depends_on))
        previous = task.id
    return graph


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
