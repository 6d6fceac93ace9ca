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
