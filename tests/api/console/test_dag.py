"""The run page's SVG DAG: levels from the dependency graph, every node coloured by status, labels escaped."""

from __future__ import annotations

import re

from workflow_engine.api.console.dag import COLOURS, levels, render_svg


def test_levels_follow_the_deepest_dependency() -> None:
    graph = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("a", "d"), "f": ()}
    assert levels(graph) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3, "f": 0}


def test_a_long_chain_needs_no_recursion() -> None:
    graph: dict[str, tuple[str, ...]] = {f"t{i}": ((f"t{i - 1}",) if i else ()) for i in range(5000)}
    assert levels(graph)["t4999"] == 4999


def test_each_node_has_its_status_colour_and_escaped_label() -> None:
    graph = {"fetch": (), "approve": ("fetch",), "ship": ("approve",)}
    svg = render_svg(graph, {"fetch": "completed", "approve": "waiting_approval"}, {"fetch": "<b>Fetch</b> & go"})
    nodes = dict(re.findall(r'data-task="(\w+)" data-status="(\w+)"', svg))
    assert nodes == {"fetch": "completed", "approve": "waiting_approval", "ship": "pending"}
    assert f'fill="{COLOURS["waiting_approval"][0]}"' in svg
    assert "&lt;b&gt;Fetch&lt;/b&gt; &amp; go" in svg and "<b>" not in svg
    assert svg.count("marker-end=") == 2
    rows = sorted({int(y) for y in re.findall(r'<rect x="\d+" y="(\d+)"', svg)})
    assert len(rows) == 3  # one row per level


def test_an_edge_that_skips_levels_goes_around_the_nodes() -> None:
    """The order example's shape: `notify` depends on level 1 and level 4 tasks; no edge segment crosses a node."""
    graph = {"a": (), "b": ("a",), "c": ("a",), "d": ("a",), "e": ("c",), "f": ("b", "e"), "g": ("f",), "h": ("g", "d")}
    svg = render_svg(graph, {}, {})
    rects = [tuple(map(int, r)) for r in re.findall(r'<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', svg)]
    lines = re.findall(r'<path d="(M [\d L]+)"', svg)
    assert len(lines) == 2  # b -> f and d -> h skip levels; the others are curves between neighbouring rows
    for path in lines:
        points = [tuple(map(int, pair.split())) for pair in re.findall(r"(\d+ \d+)", path)]
        for (x1, y1), (x2, y2) in zip(points[1:-2], points[2:-1], strict=True):  # the segments between the ends
            for x, y, w, h in rects:
                crosses_x = min(x1, x2) < x + w and max(x1, x2) > x
                crosses_y = min(y1, y2) < y + h and max(y1, y2) > y
                assert not (crosses_x and crosses_y), f"{path} crosses the node at {x},{y}"
