"""Compare the two maintained CEL libraries on what the DSL needs: semantics, compile and eval speed.

Run: `.venv/bin/python -m bench.expressions` (both libraries are in requirements-dev.txt).
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cel

CONTEXT: dict[str, Any] = {
    "params": {"order_id": "A-1", "amount": 500, "limit": 100.0, "items": [{"sku": "x", "qty": 2}] * 20},
    "tasks": {"charge": {"output": {"status_code": 200, "body": {"ok": True}}, "status": "completed"}},
}
EXPRESSIONS = [
    "params.amount > params.limit",  # int vs double: DSL.md requires this to work (500 > 100.0)
    "tasks.charge.output.status_code == 200",
    "size(params.items) > 10 && params.order_id.startsWith('A-')",
    "params.items.map(i, i.qty).exists(q, q > 1)",
]


def _time(label: str, fn: Callable[[], Any], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    per_call = (time.perf_counter() - start) / rounds * 1e6
    print(f"  {label:<34} {per_call:9.1f} us")
    return per_call


def bench_common_expression_language(rounds: int) -> None:
    """The Rust-backed `common-expression-language` package (module `cel`)."""
    print("common-expression-language", getattr(cel, "__version__", ""))
    for source in EXPRESSIONS:
        try:
            print(f"  {source!r} -> {cel.compile(source).execute(CONTEXT)!r}")
        except Exception as exc:  # noqa: BLE001 - report semantics differences, not crash
            print(f"  {source!r} -> ERROR {type(exc).__name__}: {exc}")
    _time("compile (4 expressions)", lambda: [cel.compile(s) for s in EXPRESSIONS], rounds)
    programs = [cel.compile(s) for s in EXPRESSIONS[1:]]
    _time("evaluate (3 compiled expressions)", lambda: [p.execute(CONTEXT) for p in programs], rounds)


def bench_cel_python(rounds: int) -> None:
    """The pure-Python `cel-python` package (module `celpy`)."""
    import celpy

    print("cel-python")
    env = celpy.Environment()
    activation = {
        name: celpy.json_to_cel(value)  # type: ignore[attr-defined]
        for name, value in CONTEXT.items()
    }
    for source in EXPRESSIONS:
        try:
            print(f"  {source!r} -> {env.program(env.compile(source)).evaluate(activation)!r}")
        except Exception as exc:  # noqa: BLE001 - report semantics differences, not crash
            print(f"  {source!r} -> ERROR {type(exc).__name__}: {str(exc)[:100]}")
    _time("compile (4 expressions)", lambda: [env.program(env.compile(s)) for s in EXPRESSIONS], max(1, rounds // 10))
    programs = [env.program(env.compile(s)) for s in EXPRESSIONS[1:]]
    _time("evaluate (3 compiled expressions)", lambda: [p.evaluate(activation) for p in programs], rounds)


if __name__ == "__main__":
    bench_common_expression_language(2000)
    bench_cel_python(200)
