"""Registration speed: parse, validate and store a 1,000-task definition, and how /health answers meanwhile.

`big_definition(n)` writes a valid definition of `n` tasks (a chain, then a wide DAG, with `log`, `set`,
`python` and `http_request` tasks, templated configs and `when` conditions); the tests use it too.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PYTHON_MODULES = ("greetings",)


def _task(i: int, task_id: str, depends_on: list[str] | None, reads: str | None) -> list[str]:
    """One task reading `tasks.<reads>` (an upstream task) in its config and, every 5th, in `when`."""
    output = f"tasks.{reads}.output" if reads else "params.who"
    done = f"tasks.{reads}.status == 'completed'" if reads else "true"
    lines = [f"  - id: {task_id}", f"    name: Step {i} of the big definition"]
    if depends_on is not None:
        lines.append(f"    depends_on: [{', '.join(depends_on)}]")
    if i % 5 == 0:
        lines.append(f'    when: "${{{{ params.flag && {done} }}}}"')
    kind = i % 4
    if kind == 0:
        lines += [
            "    activity_type: log",
            "    config:",
            f'      message: "step {i} for ${{{{ params.who }}}} after ${{{{ {output} }}}}"',
        ]
    elif kind == 1:
        lines += [
            "    type: set",
            "    config:",
            f'      count: "${{{{ params.times + {i} }}}}"',
            "      label: \"${{ 'item-' + string(params.times) }}\"",
            f'      previous: "${{{{ {output} }}}}"',
        ]
    elif kind == 2:
        lines += [
            "    activity_type: python",
            "    config:",
            "      function: greetings:repeat",
            "      kwargs:",
            f'        text: "${{{{ params.who }}}} {i}"',
            '        times: "${{ params.times }}"',
            "    timeout: 10s",
            "    retry_policy: {max_attempts: 3, initial_interval: 1s}",
        ]
    else:
        lines += [
            "    activity_type: http_request",
            "    config:",
            "      method: POST",
            f'      url: "https://example.com/items/${{{{ params.who }}}}/{i}"',
            f'      json: {{step: {i}, who: "${{{{ params.who }}}}", size: "${{{{ size(params.items) }}}}"}}',
            "      expected_status: [200, 201]",
        ]
    return lines


def big_definition(tasks: int = 1000, *, name: str = "big-definition") -> str:
    """Return the YAML of a valid definition with `tasks` tasks: half a chain, half a wide DAG after it."""
    chain = max(1, tasks // 2)
    lines = [
        f"name: {name}",
        'version: "1.0"',
        "description: A generated definition for the registration benchmark.",
        "params:",
        "  who: {type: string, default: world}",
        "  times: {type: integer, default: 2, minimum: 1, maximum: 10}",
        "  flag: {type: boolean, default: true}",
        "  items: {type: array, default: [1, 2, 3]}",
        "defaults:",
        "  timeout: 30s",
        "tasks:",
    ]
    for i in range(chain):  # depends_on omitted: each runs after the previous one
        lines += _task(i, f"c{i}", None, f"c{i - 1}" if i else None)
    for j in range(tasks - chain):  # each waits on a chain task and an earlier wide task: wide and deep
        deps = [f"c{(j * 7) % chain}"] + ([f"w{j // 2}"] if j else [])
        lines += _task(chain + j, f"w{j}", deps, deps[-1])
    lines += ["output:", f'  last: "${{{{ tasks.c{chain - 1}.output }}}}"']
    return "\n".join(lines) + "\n"


def _clear_caches() -> None:
    """Forget compiled expressions, as for a definition the process has never seen."""
    from workflow_engine.dsl import expressions

    for name in dir(expressions):
        cache_clear = getattr(getattr(expressions, name), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()


def profile_parse(text: str, top: int) -> None:
    """Print the cProfile top entries of what registration computes before touching the database."""
    from workflow_engine.dsl import parse_definition
    from workflow_engine.dsl.notices import definition_warnings
    from workflow_engine.dsl.prepared import content_hash

    def work() -> None:
        definition = parse_definition(text, python_modules=PYTHON_MODULES)
        definition_warnings(definition, text)
        content_hash(definition)

    work()  # imports and first-use costs out of the profile
    _clear_caches()
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def time_pure(text: str, repeat: int) -> None:
    """Print median seconds of parse, warnings, hash and `from_stored` (fresh expression caches each round)."""
    from workflow_engine.dsl import WorkflowDefinition, parse_definition
    from workflow_engine.dsl.notices import definition_warnings
    from workflow_engine.dsl.prepared import content_hash

    rows: dict[str, list[float]] = {"parse": [], "warnings": [], "hash": [], "dump": [], "from_stored": []}
    for _ in range(repeat):
        _clear_caches()
        start = time.perf_counter()
        definition = parse_definition(text, python_modules=PYTHON_MODULES)
        rows["parse"].append(time.perf_counter() - start)
        start = time.perf_counter()
        definition_warnings(definition, text)
        rows["warnings"].append(time.perf_counter() - start)
        start = time.perf_counter()
        content_hash(definition)
        rows["hash"].append(time.perf_counter() - start)
        start = time.perf_counter()
        stored = definition.model_dump(mode="json")
        rows["dump"].append(time.perf_counter() - start)
        start = time.perf_counter()
        WorkflowDefinition.from_stored(stored)
        rows["from_stored"].append(time.perf_counter() - start)
    for what, values in rows.items():
        print(
            f"{what:12s} median {statistics.median(values) * 1000:8.1f} ms  (min {min(values) * 1000:.1f}, n={repeat})"
        )


class _LagMonitor:
    """ASGI wrapper measuring how late the event loop wakes a 2 ms sleep; GET /__lag answers and resets."""

    def __init__(self, app: Any) -> None:
        self.app, self.lags = app, [0.0]
        self.task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.002)
            self.lags.append(time.perf_counter() - start - 0.002)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.task is None and scope["type"] == "http":
            self.task = asyncio.create_task(self._watch())
        if scope["type"] == "http" and scope["path"] == "/__lag":
            lags, self.lags = sorted(self.lags), [0.0]
            body = f"{lags[int(len(lags) * 0.99)] * 1000:.1f} {lags[-1] * 1000:.1f}".encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _serve(database_url: str, workflows: str, temporal_address: str, port: int) -> None:
    """Serve the API in its own process, so the benchmark's client never shares its event loop."""
    import uvicorn

    from workflow_engine.api import create_app
    from workflow_engine.settings import Settings

    if os.environ.get("BENCH_CHECK_IN") == "thread":  # the alternative measured against the process pool
        from workflow_engine.api import registration
        from workflow_engine.api.routes import workflows as routes

        async def in_thread(call: Any, /, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(call, *args, **kwargs)

        registration.off_loop = in_thread
        setattr(routes, "off_loop", in_thread)  # noqa: B010 - its own import of the name
    settings = Settings(
        database_url=database_url, workflows_dir=Path(workflows), temporal_address=temporal_address, _env_file=None
    )
    uvicorn.run(_LagMonitor(create_app(settings)), host="127.0.0.1", port=port, log_level="error")


async def _probe(base: str, stop: asyncio.Event, latencies: list[float]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=120) as probe:
        while not stop.is_set():
            sent = time.perf_counter()
            answer = await probe.get("/health")
            latencies.append(time.perf_counter() - sent)
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0.01)


def _latencies(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (
        f"p50 {statistics.median(values) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms "
        f"({len(values)} probes)"
    )


async def _through_api(text: str, repeat: int) -> None:
    """Register (a new revision each round) and validate through the real app while polling /health."""
    import httpx
    from temporalio.testing import WorkflowEnvironment

    from tests.reliability.stack import free_port
    from workflow_engine.devserver import temporal_binary
    from workflow_engine.storage.migrate import upgrade_database

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), dev_server_log_level="error"
    )
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        workflows = Path(tmp) / "workflows"
        workflows.mkdir()
        (workflows / "greetings.py").write_text("def repeat(text, times):\n    return text * times\n")
        await upgrade_database(database_url)
        port = free_port()
        target = env.client.service_client.config.target_host
        server = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(database_url, str(workflows), target, port)
        )
        server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                for _ in range(600):
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                idle: list[float] = []
                stop = asyncio.Event()
                poller = asyncio.create_task(_probe(base, stop, idle))
                await asyncio.sleep(3)
                stop.set()
                await poller
                print(f"/health idle: {_latencies(idle)}")
                for route in ("/workflows", "/workflows/validate"):
                    times: list[float] = []
                    latencies: list[float] = []
                    loop_lags: list[float] = []
                    for round_ in range(repeat):
                        # new expressions each round, as in a definition the API has not seen (cold caches)
                        body = text.replace("params.who }}", f"params.who + '{route}{round_}' }}}}")
                        stop = asyncio.Event()
                        poller = asyncio.create_task(_probe(base, stop, latencies))
                        await asyncio.sleep(0.3)
                        await http.get("/__lag")
                        start = time.perf_counter()
                        answer = await http.post(route, content=body, headers={"content-type": "application/yaml"})
                        times.append(time.perf_counter() - start)
                        lag_p99, lag_max = (float(v) for v in (await http.get("/__lag")).text.split())
                        loop_lags.append(lag_max)
                        stop.set()
                        await poller
                        assert answer.status_code in (200, 201), answer.text
                    print(
                        f"POST {route:20s} median {statistics.median(times) * 1000:5.0f} ms (min "
                        f"{min(times) * 1000:.0f}, n={repeat}); /health meanwhile: {_latencies(latencies)}; the "
                        f"server's loop woke late by at most {statistics.median(loop_lags):.1f} ms (median of rounds)"
                    )
        finally:
            server.terminate()
            server.join(10)
            await env.shutdown()


def main() -> None:
    """Run the chosen measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, help="print this many cProfile entries")
    parser.add_argument("--api", action="store_true", help="also measure through the API (uvicorn, SQLite)")
    parser.add_argument("--write", type=Path, help="write the generated YAML there and stop")
    args = parser.parse_args()
    text = big_definition(args.tasks)
    if args.write:
        args.write.write_text(text)
        return
    print(f"{args.tasks} tasks, {len(text) / 1024:.0f} KiB of YAML")
    time_pure(text, args.repeat)
    if args.profile:
        profile_parse(text, args.profile)
    if args.api:
        asyncio.run(_through_api(text, args.repeat))


if __name__ == "__main__":
    main()
