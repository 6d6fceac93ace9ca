"""The libyaml fast path of `load_yaml` reads exactly what the pure-Python reader reads, or leaves it to it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.registration import big_definition
from workflow_engine.dsl import DslError
from workflow_engine.dsl.graph import Graph, UpstreamSets, find_cycle, upstream
from workflow_engine.dsl.parser import _fast_load, _Unusual, load_yaml, reference_load

REPO = Path(__file__).resolve().parents[2]
FILES = sorted([*REPO.glob("workflows/*.yaml"), *REPO.glob("tests/**/*.yaml")])

# Documents both readers accept: the fast path must give the same data and positions.
PLAIN = {
    "crlf": "name: x\r\ntasks:\r\n  - id: a\r\n    activity_type: log\r\n",
    "unicode": "name: x\ndescription: héllo 🎉\ntasks:\n  - {id: a, config: {m: 'ü🎉', n: \"\\u00e9\\x41\\/\"}}\n",
    "block": "a: |\n  one\n   two\n\n  three\nb: >-\n  folded\n  text\n\nc: |+  # kept\n  keep\n\n\nd: >2\n    in\n",
    "plain_multi_line": "a: this is\n  a multi line\n\n  plain scalar\nb: 'single ''quoted''\n  folded'\n",
    "types": "a: 1\nb: 1.5\nc: true\nd: ~\ne: 2001-12-14t21:59:43.10-05:00\nf: 0x1F\ng: 1_000\nh: .inf\ni: yes\n"
    "j: '1'\nk: 2020-01-01\nl: 1:20\nm: -.5e3\nn: 190:20:30\no: ''\np:\n",
    "flow": "{a: [1, 2, {b: c}], d: e, f: [], g: {}}\n",
    "sequence_root": "- a\n- b: c\n  d: e\n-\n  - x\n",
    "indentless": "tasks:\n- id: a\n  activity_type: log\n- id: b\n",
    "explicit_document": "---\na: 1\n...\n",
    "scalar_root": "hello\n",
    "comments": "a: b#c\nd: e # comment\n# end\n",
    "quoted_keys": "'a b': 1\n\"c\\td\": 2\n'1': x\n",
    "explicit_key": "? a\n: b\n",
    "expressions": 'when: "${{ a || b > c }}"\nx: ${{ params.who }}\n',
}
# Documents the fast path leaves to the reference reader (they differ there, or it must count or refuse).
DEFERRED = {
    "tab": "a:\tb\n",
    "alias": "a: &x 1\nb: *x\n",
    "anchor": "a: &x 1\nb: 2\n",
    "merge": "a: {x: 1}\nb:\n  <<: {y: 2}\n",
    "duplicate_key": "a: 1\na: 2\n",
    "int_key": "1: a\n",
    "tag": "a: !!str 5\n",
    "block_header_comment": "a: |#\n  x\n",
    "question_mark_in_flow": "[ le?d ]\n",
    "two_documents": "a: 1\n---\nb: 2\n",
    "empty": "",
    "empty_document": "---\n",
    "empty_item": "- \n- a\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "bom": "\ufeffa: 1\n",
    "next_line": "a: b\x85c: d\n",
    "bad_value": "a: !!int x\n",
    "syntax_error": "a: b: c\n",
    "too_deep": "a: " + "[" * 70 + "]" * 70 + "\n",
}


def _reference(text: str) -> object:
    try:
        return reference_load(text)
    except DslError as exc:
        return [issue.as_dict() for issue in exc.issues]


def _loaded(text: str) -> object:
    try:
        return load_yaml(text)
    except DslError as exc:
        return [issue.as_dict() for issue in exc.issues]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_repository_file_reads_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _loaded(text) == _reference(text)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_documents_take_the_fast_path_and_read_the_same(name: str) -> None:
    assert _fast_load(PLAIN[name]) == reference_load(PLAIN[name])


def test_a_big_generated_definition_takes_the_fast_path() -> None:
    text = big_definition(1000)
    assert _fast_load(text) == reference_load(text)


@pytest.mark.parametrize("name", sorted(DEFERRED))
def test_unusual_documents_are_left_to_the_reference_reader(name: str) -> None:
    text = DEFERRED[name]
    with pytest.raises(Exception) as caught:  # noqa: PT011 - _Unusual, or what libyaml raises: both fall back
        _fast_load(text)
    assert caught.type is _Unusual or name in ("bad_value", "syntax_error", "two_documents", "empty")
    assert _loaded(text) == _reference(text)


def test_a_document_nested_too_deep_for_libyaml_is_refused_without_crashing() -> None:
    # libyaml's own composer recurses in C: this depth crashes the process through yaml.CSafeLoader
    text = "a: " + "[" * 200_000 + "]" * 200_000 + "\n"
    with pytest.raises(DslError) as caught:
        load_yaml(text)
    assert "nesting deeper than 64 levels" in caught.value.issues[0].message


def test_mutated_documents_read_the_same_through_both_paths() -> None:
    rnd = random.Random(18)
    base = [PLAIN["block"], PLAIN["flow"], PLAIN["types"], big_definition(4)]
    alphabet = [" ", "\n", "\n  ", "-", ":", "#", "[", "]", "{", "}", ",", "'", '"', "|", ">", "?", "&", "*", "!"]
    for _ in range(3000):
        chars = list(rnd.choice(base))
        for _ in range(rnd.randint(1, 3)):
            chars.insert(rnd.randrange(len(chars) + 1), rnd.choice(alphabet))
        text = "".join(chars)
        assert _loaded(text) == _reference(text), text


def _random_dag(rnd: random.Random, size: int) -> dict[str, tuple[str, ...]]:
    graph: dict[str, tuple[str, ...]] = {}
    for i in range(size):
        picks = rnd.sample(range(i), k=min(i, rnd.randint(0, 3))) if i else []
        graph[f"t{i}"] = tuple(f"t{j}" for j in picks) + (("ghost",) if rnd.random() < 0.05 else ())
    order = list(graph.items())
    rnd.shuffle(order)  # definition order need not be dependency order
    return dict(order)


def test_upstream_sets_match_upstream_on_random_graphs() -> None:
    rnd = random.Random(5)
    for _ in range(50):
        graph = _random_dag(rnd, rnd.randint(1, 60))
        sets = UpstreamSets(graph)
        names = [*graph, "ghost", "nobody"]
        for task_id in graph:
            expected = upstream(graph, task_id)
            assert {name for name in names if name in sets.of(task_id)} == expected


def test_upstream_sets_refuse_a_cycle() -> None:
    graph: Graph = {"a": ("c",), "b": ("a",), "c": ("b",)}
    assert find_cycle(graph)
    with pytest.raises(ValueError, match="cycle"):
        UpstreamSets(graph)


def test_a_long_chain_needs_no_recursion() -> None:
    graph: Graph = {f"t{i}": ((f"t{i - 1}",) if i else ()) for i in range(5000)}
    assert "t0" in UpstreamSets(graph).of("t4999")
