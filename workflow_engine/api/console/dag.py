"""A run's task DAG as a small SVG: one row per dependency level, each task coloured by its status, no script."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from workflow_engine.dsl.graph import Graph

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 180, 46, 24, 44, 12
# An edge that skips levels runs down a lane of its own right of the nodes, so it never crosses a task.
LANE_GAP = 10
_LABEL_MAX = 24
# Fill and stroke per task status (fill attributes, not CSS: the SVG reads the same saved on its own).
COLOURS: dict[str, tuple[str, str]] = {
    "pending": ("#f3f4f6", "#9ca3af"),
    "running": ("#bfdbfe", "#2563eb"),
    "waiting_approval": ("#fde68a", "#d97706"),
    "completed": ("#bbf7d0", "#16a34a"),
    "failed": ("#fecaca", "#dc2626"),
    "skipped": ("#e5e7eb", "#6b7280"),
    "cancelled": ("#e7e5e4", "#57534e"),
    "compensated": ("#e9d5ff", "#7c3aed"),
    "compensation_failed": ("#fecaca", "#7c3aed"),
}
_OTHER = ("#ffffff", "#6b7280")


def levels(graph: Graph) -> dict[str, int]:
    """Return each task's level: 0 without dependencies, else one more than its deepest dependency."""
    found: dict[str, int] = {}
    for root in graph:
        stack = [root]
        while stack:  # explicit stack: a long chain needs no recursion
            node = stack[-1]
            if node in found:
                stack.pop()
                continue
            missing = [dep for dep in graph.get(node, ()) if dep not in found and dep in graph]
            if missing:
                stack.extend(missing)
                continue
            found[node] = 1 + max((found[dep] for dep in graph.get(node, ()) if dep in graph), default=-1)
            stack.pop()
    return found


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_MAX else text[: _LABEL_MAX - 1] + "…"


def _edge(source: tuple[int, int], target: tuple[int, int], lane: int | None, right: int) -> str:
    """An arrow from the bottom of `source` to the top of `target`; around the nodes through `lane` if given."""
    (sx, sy), (tx, ty) = source, target
    x1, y1, x2, y2 = sx + NODE_W // 2, sy + NODE_H, tx + NODE_W // 2, ty
    if lane is None:
        middle = (y1 + y2) // 2
        path = f"M {x1} {y1} C {x1} {middle}, {x2} {middle}, {x2} {y2 - 2}"
    else:  # down into the gap below the source, right to the lane, down, left above the target, down into it
        lane_x = right + LANE_GAP * (lane + 1)
        below, above = y1 + GAP_Y // 2 - lane % 3 * 4, y2 - GAP_Y // 2 + lane % 3 * 4
        path = f"M {x1} {y1} L {x1} {below} L {lane_x} {below} L {lane_x} {above} L {x2} {above} L {x2} {y2 - 2}"
    return (f'<path d="{path}" fill="none" stroke="#6b7280" stroke-width="1.2" stroke-linejoin="round" '
            'marker-end="url(#arrow)"/>')  # fmt: skip


def render_svg(graph: Graph, statuses: Mapping[str, str], names: Mapping[str, str]) -> str:
    """Render the DAG (`graph`: each task's dependencies, in definition order) with each task's status."""
    depth = levels(graph)
    rows: dict[int, list[str]] = {}
    for task_id in graph:
        rows.setdefault(depth[task_id], []).append(task_id)
    widest = max((len(row) for row in rows.values()), default=1)
    nodes_width = widest * NODE_W + (widest - 1) * GAP_X
    long_edges = [(dep, task_id) for task_id, deps in graph.items() for dep in deps
                  if dep in depth and depth[task_id] - depth[dep] > 1]  # fmt: skip
    lanes = {edge: index for index, edge in enumerate(long_edges)}
    width = MARGIN * 2 + nodes_width + (LANE_GAP * (len(lanes) + 1) if lanes else 0)
    height = MARGIN * 2 + len(rows) * NODE_H + max(len(rows) - 1, 0) * GAP_Y
    where: dict[str, tuple[int, int]] = {}
    for level, row in rows.items():
        offset = MARGIN + (nodes_width - (len(row) * NODE_W + (len(row) - 1) * GAP_X)) // 2
        for index, task_id in enumerate(row):
            where[task_id] = (offset + index * (NODE_W + GAP_X), MARGIN + level * (NODE_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="task graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
    ]
    for task_id, deps in graph.items():
        x, y = where[task_id]
        for dep in deps:
            if dep in where:
                parts.append(_edge(where[dep], (x, y), lanes.get((dep, task_id)), MARGIN + nodes_width))
    for task_id in graph:
        x, y = where[task_id]
        status = statuses.get(task_id, "pending")
        fill, stroke = COLOURS.get(status, _OTHER)
        name = names.get(task_id, task_id)
        dashed = ' stroke-dasharray="4 3"' if status == "skipped" else ""
        parts.append(
            f'<g class="node" data-task="{escape(task_id)}" data-status="{escape(status)}">'
            f"<title>{escape(name)} ({escape(task_id)}): {escape(status)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="1.5"{dashed}/>'
            f'<text x="{x + NODE_W // 2}" y="{y + 19}" text-anchor="middle" fill="#111827">'
            f"{escape(_short(name))}</text>"
            f'<text x="{x + NODE_W // 2}" y="{y + 35}" text-anchor="middle" fill="#374151" font-size="10">'
            f"{escape(status.replace('_', ' '))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
