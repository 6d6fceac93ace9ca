"""Interpreter overhead: the same work as a YAML definition and as a hand-written Temporal workflow.

One process starts one Temporal dev server (SQLite file, WAL pragmas) and two workers on separate task
queues: `build_worker` (the dynamic interpreter and the built-in activities) and a worker for the
hand-written workflows below, in the SDK's default sandbox (with the same passthrough modules and the same
activity concurrency). The interpreter runs as the worker runs it: outside the sandbox unless
WORKER_WORKFLOW_SANDBOX=true (`worker.workflow_runner`); the `local` scenario also compares it with the
hand-written local-activity workflow outside the sandbox (a third worker), for information. Remote steps
are `python` tasks calling an async no-op on one side and a registered no-op activity taking and returning
a small dataclass on the other; `log` tasks (local activities in the interpreter) are compared with local
activities.

Sides run one after the other, never together, alternating which goes first in each repetition, after
untimed warm-up runs. A sample is the wall time from start to result (for throughput: 200 runs started
at once, until the last result), with the CPU time of this process (both workers) and of the server.

Run: `.venv/bin/python -m bench.engine [--repeat N] [--scenario NAME ...] [--quick] [--markdown]`.
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

# What the interpreter applies to a task without its own settings (engine/options.py), used on the raw side too.
TIMEOUT = timedelta(minutes=5)
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1), backoff_coefficient=2.0)
BATCH = 200  # both sides split the fan-out in child workflows of this many items in the "children" variant

logger = logging.getLogger("bench.engine")


# --- the hand-written side ---------------------------------------------------------------------------------------


@dataclass
class NoopInput:
    """Argument of the hand-written no-op activities (the built-ins take one dataclass too)."""

    index: int


@dataclass
class NoopResult:
    """Result of the hand-written no-op activities, shaped like the built-ins' `ActivityResult`."""

    output: int
    attempt: int = 1


@dataclass
class RawInput:
    """How many activities a hand-written workflow runs, and where a fan-out slice starts."""

    count: int
    offset: int = 0


@activity.defn(name="bench_noop")
async def noop_activity(arg: NoopInput) -> NoopResult:
    """Return the index: what a `python` task calling an async no-op does."""
    return NoopResult(output=arg.index, attempt=activity.info().attempt)


@activity.defn(name="bench_log")
async def log_activity(arg: NoopInput) -> NoopResult:
    """Log one line and return: what a `log` task does."""
    logger.info("[bench] step %d", arg.index)
    return NoopResult(output=arg.index, attempt=activity.info().attempt)


async def _noop(index: int) -> int:
    result = await workflow.execute_activity(
        noop_activity, NoopInput(index), start_to_close_timeout=TIMEOUT, retry_policy=RETRY
    )
    return result.output


@workflow.defn
class RawSequential:
    """N remote no-op activities one after the other."""

    @workflow.run
    async def run(self, arg: RawInput) -> list[int]:
        """Run the chain."""
        return [await _noop(i) for i in range(arg.count)]


@workflow.defn
class RawFanOut:
    """N remote no-op activities at once, in one workflow."""

    @workflow.run
    async def run(self, arg: RawInput) -> list[int]:
        """Run the fan-out and keep the item order."""
        return list(await asyncio.gather(*(_noop(arg.offset + i) for i in range(arg.count))))


@workflow.defn
class RawFanOutBatched:
    """N remote no-op activities in child workflows of 200: the shape the interpreter uses above 200 items."""

    @workflow.run
    async def run(self, arg: RawInput) -> list[int]:
        """Start one `RawFanOut` child per slice and concatenate their outputs."""
        info = workflow.info()
        slices = [(start, min(BATCH, arg.count - start)) for start in range(0, arg.count, BATCH)]
        results = await asyncio.gather(
            *(
                workflow.execute_child_workflow(
                    RawFanOut.run,
                    RawInput(count, start),
                    id=f"{info.workflow_id}/batch-{n}",
                    task_queue=info.task_queue,
                )
                for n, (start, count) in enumerate(slices)
            )
        )
        return [output for result in results for output in result]


@workflow.defn
class RawLocalSequential:
    """N local `log`-like activities one after the other."""

    @workflow.run
    async def run(self, arg: RawInput) -> list[int]:
        """Run the chain of local activities."""
        outputs = []
        for i in range(arg.count):
            result = await workflow.execute_local_activity(
                log_activity, NoopInput(i), start_to_close_timeout=TIMEOUT, retry_policy=RETRY
            )
            outputs.append(result.output)
        return outputs


# --- the YAML side -----------------------------------------------------------------------------------------------

NOOP_MODULE = (
    '"""No-op called by the interpreter benchmark."""\n\n\nasync def noop(index: int) -> int:\n    return index\n'
)


def sequential_yaml(count: int, activity_type: str = "python") -> str:
    config = (
        '{{function: "bench_noop:noop", kwargs: {{index: {i}}}}}'
        if activity_type == "python"
        else '{{message: "[bench] step {i}"}}'
    )
    steps = "".join(
        f"  - id: t{i}\n    activity_type: {activity_type}\n    config: {config.format(i=i)}\n" for i in range(count)
    )
    return f"name: bench-{activity_type}-sequential\ntasks:\n{steps}"


FAN_OUT_YAML = """\
name: bench-fan-out
params:
  items: {type: array, required: true}
tasks:
  - id: fan
    activity_type: python
    for_each: "${{ params.items }}"
    config: {function: "bench_noop:noop", kwargs: {index: "${{ item }}"}}
"""

ONE_YAML = """\
name: bench-one
tasks:
  - id: only
    activity_type: python
    config: {function: "bench_noop:noop", kwargs: {index: 0}}
"""


# --- the harness: outside the sandbox only ---------------------------------------------------------------------
# The sandbox re-executes this module for every hand-written run, as it re-executes the interpreter module for
# every DSL run. Skipping the harness there keeps that near what a small workflow file costs (2.8 ms a run here,
# 1.8 ms for the interpreter's modules) instead of 5 ms, so the hand-written side is not handicapped.
if not workflow.unsafe.in_sandbox():
    import argparse
    import os
    import platform
    import statistics
    import subprocess
    import sys
    import tempfile
    import time
    import uuid
    from collections.abc import Awaitable, Callable, Sequence
    from dataclasses import field
    from importlib import metadata
    from pathlib import Path
    from typing import Any

    from rich.console import Console
    from rich.table import Table
    from temporalio.client import Client
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from workflow_engine.devserver import temporal_binary
    from workflow_engine.dsl import WorkflowDefinition, parse_definition, resolve_params
    from workflow_engine.engine.client.executions import start_execution
    from workflow_engine.engine.types import SEARCH_ATTRIBUTES, RunInput
    from workflow_engine.settings import Settings
    from workflow_engine.worker import PASSTHROUGH_MODULES, build_worker

    TARGET = 1.10
    WAL_PRAGMAS = ("--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL")

    @dataclass
    class Sizes:
        """How much work each scenario does."""

        sequential: int = 100
        fan_out: int = 500
        runs: int = 200
        local: int = 100

    QUICK = Sizes(sequential=5, fan_out=20, runs=10, local=5)

    @dataclass(frozen=True)
    class Sample:
        """One timed run of one side: wall time and CPU times (this process's both workers, server, everything else)."""

        wall: float
        worker_cpu: float
        server_cpu: float
        other_cpu: float

    @dataclass
    class Row:
        """One comparison: samples of both sides over the repetitions."""

        scenario: str
        size: str
        unit: int  # steps (or runs) the time is divided by for the per-unit columns
        dsl: list[Sample] = field(default_factory=list)
        raw: list[Sample] = field(default_factory=list)
        extra: bool = False  # informative line, not one of the targets

        @staticmethod
        def median(samples: Sequence[Sample], what: str = "wall") -> float:
            """Median of one measure over the samples."""
            return float(statistics.median(getattr(sample, what) for sample in samples))

        @property
        def ratio(self) -> float:
            """Median DSL wall time over median raw wall time."""
            return self.median(self.dsl) / self.median(self.raw)

    @dataclass(frozen=True)
    class Registered:
        """A definition as the registry keeps it: parsed and validated once, stored as canonical JSON."""

        definition: WorkflowDefinition
        stored: dict[str, Any]

    def register(text: str) -> Registered:
        definition = parse_definition(text, file="bench.yaml")
        return Registered(definition, definition.model_dump(mode="json"))

    @dataclass
    class Harness:
        """A connected client with both workers polling, and how to run one workflow on each side."""

        client: Client
        dsl_queue: str
        raw_queue: str
        fan_out_batch: int  # what the API pins (setting FAN_OUT_BATCH_SIZE)
        unsandboxed_queue: str = ""  # the hand-written workflows again, outside the sandbox as the interpreter runs

        async def dsl(
            self, registered: Registered, params: dict[str, object] | None = None, fan_out_batch: int | None = None
        ) -> None:
            """Start one interpreter run as the API does (params checked, pinned JSON sent) and wait for its result."""
            definition = registered.definition
            execution_id = f"{definition.name}-{uuid.uuid4().hex}"
            run_input = RunInput(
                definition=registered.stored,
                revision=1,
                params=resolve_params(definition, params or {}),
                fan_out_batch=fan_out_batch or self.fan_out_batch,
            )
            await start_execution(
                self.client,
                workflow_name=definition.name,
                execution_id=execution_id,
                task_queue=self.dsl_queue,
                run_input=run_input,
                execution_timeout=definition.timeout,
            )
            await self.client.get_workflow_handle(execution_id).result()

        async def raw(
            self, run: Callable[[Any, RawInput], Awaitable[list[int]]], arg: RawInput, *, sandboxed: bool = True
        ) -> None:
            """Start one hand-written run (in the SDK's default sandbox, or not) and wait for its result."""
            execution_id = f"bench-raw-{uuid.uuid4().hex}"
            queue = self.raw_queue if sandboxed else self.unsandboxed_queue
            await self.client.start_workflow(run, arg, id=execution_id, task_queue=queue)
            await self.client.get_workflow_handle(execution_id).result()

    def _server_cpu() -> float:
        """CPU seconds used so far by our child processes (the dev server); 0 where /proc is missing."""
        total, me, tick = 0.0, str(os.getpid()), os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[1] == me:  # after the command: state, ppid, ..., utime (index 11), stime (12)
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def _machine_cpu() -> float:
        """CPU seconds the whole machine has been busy (all cores); 0 where /proc is missing."""
        try:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, Path("/proc/stat").read_text().split()[1:9]
            )
        except (OSError, ValueError):
            return 0.0
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    async def _timed(work: Callable[[], Awaitable[object]]) -> Sample:
        machine, cpu, server, start = _machine_cpu(), time.process_time(), _server_cpu(), time.perf_counter()
        await work()
        wall = time.perf_counter() - start
        worker, server = time.process_time() - cpu, _server_cpu() - server
        return Sample(wall, worker, server, max(0.0, _machine_cpu() - machine - worker - server))

    def _show(sample: Sample) -> str:
        return f"{sample.wall:.2f} s (worker CPU {sample.worker_cpu:.2f} s, server CPU {sample.server_cpu:.2f} s)"

    def _many(count: int, one: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[object]]:
        """Return a coroutine function that starts `count` runs at once and waits for all of them."""

        async def run() -> object:
            return await asyncio.gather(*(one() for _ in range(count)))

        return run

    Side = Callable[[], Awaitable[object]]

    def scenarios(h: Harness, sizes: Sizes) -> dict[str, list[tuple[Row, Side, Side]]]:
        """Each scenario's rows with the DSL and the raw work they compare."""
        items = list(range(sizes.fan_out))
        # Registration (parsing, validation) happens once, before any timing, as in the registry.
        sequential, fan_out, one = (
            register(sequential_yaml(sizes.sequential)),
            register(FAN_OUT_YAML),
            register(ONE_YAML),
        )
        local = register(sequential_yaml(sizes.local, "log"))
        return {
            "sequential": [
                (
                    Row("sequential python (remote)", f"{sizes.sequential} steps", sizes.sequential),
                    lambda: h.dsl(sequential),
                    lambda: h.raw(RawSequential.run, RawInput(sizes.sequential)),
                )
            ],
            "fanout": [
                (
                    Row("fan-out for_each (remote)", f"{sizes.fan_out} items", sizes.fan_out),
                    lambda: h.dsl(fan_out, {"items": items}),
                    lambda: h.raw(RawFanOut.run, RawInput(sizes.fan_out)),
                ),
                (
                    Row(f"fan-out, both in {BATCH}-children", f"{sizes.fan_out} items", sizes.fan_out, extra=True),
                    lambda: h.dsl(fan_out, {"items": items}, fan_out_batch=BATCH),
                    lambda: h.raw(RawFanOutBatched.run, RawInput(sizes.fan_out)),
                ),
            ],
            "throughput": [
                (
                    Row("throughput, 1-task runs", f"{sizes.runs} runs", sizes.runs),
                    _many(sizes.runs, lambda: h.dsl(one)),
                    _many(sizes.runs, lambda: h.raw(RawSequential.run, RawInput(1))),
                )
            ],
            "local": [
                (
                    Row("sequential log (local)", f"{sizes.local} steps", sizes.local, extra=True),
                    lambda: h.dsl(local),
                    lambda: h.raw(RawLocalSequential.run, RawInput(sizes.local)),
                ),
                (
                    Row("sequential log, raw unsandboxed", f"{sizes.local} steps", sizes.local, extra=True),
                    lambda: h.dsl(local),
                    lambda: h.raw(RawLocalSequential.run, RawInput(sizes.local), sandboxed=False),
                ),
            ],
        }

    async def measure(
        h: Harness, sizes: Sizes, names: Sequence[str], repeat: int, warmup: int, console: Console
    ) -> list[Row]:
        """Warm up, then time both sides `repeat` times, alternating which side goes first."""
        selected = [entry for name, entries in scenarios(h, sizes).items() if name in names for entry in entries]
        for row, dsl, raw in selected:
            for _ in range(warmup):
                await dsl()
                await raw()
            for n in range(repeat):
                if n % 2 == 0:
                    row.dsl.append(await _timed(dsl))
                    row.raw.append(await _timed(raw))
                else:
                    row.raw.append(await _timed(raw))
                    row.dsl.append(await _timed(dsl))
                console.print(
                    f"  {row.scenario} [{n + 1}/{repeat}]: DSL {_show(row.dsl[-1])}, raw {_show(row.raw[-1])}"
                )
        return [row for row, _, _ in selected]

    def _versions() -> str:
        try:
            server = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True, check=True)
            cli = server.stdout.strip().removeprefix("temporal version ")
        except (OSError, subprocess.CalledProcessError, SystemExit):
            cli = "unknown"
        return (
            f"Python {platform.python_version()}, temporalio {metadata.version('temporalio')}, temporal CLI {cli}, "
            f"{os.cpu_count()} cores, {platform.system()} {platform.release()}"
        )

    def report(rows: Sequence[Row], console: Console, *, markdown: bool) -> None:
        """Print the comparison table (and a markdown copy for docs/benchmarks.md)."""
        headers = ["scenario", "size", "DSL s", "raw s", "DSL ms/unit", "raw ms/unit", "DSL/raw", "target",
                   "worker CPU s DSL/raw", "server CPU s DSL/raw"]  # fmt: skip
        table = Table(title="DSL interpreter vs hand-written workflow (medians)")
        for column in headers:
            table.add_column(column, justify="left" if column in ("scenario", "size") else "right")
        lines = ["| " + " | ".join(headers) + " |", "|---|---|" + "---:|" * (len(headers) - 2)]
        for row in rows:
            dsl, raw = row.median(row.dsl), row.median(row.raw)
            verdict = "(info)" if row.extra else ("met" if row.ratio <= TARGET else "MISSED")
            cells = [
                row.scenario, row.size, f"{dsl:.2f}", f"{raw:.2f}", f"{dsl / row.unit * 1000:.1f}",
                f"{raw / row.unit * 1000:.1f}", f"{row.ratio:.2f}", verdict,
                f"{row.median(row.dsl, 'worker_cpu'):.2f} / {row.median(row.raw, 'worker_cpu'):.2f}",
                f"{row.median(row.dsl, 'server_cpu'):.2f} / {row.median(row.raw, 'server_cpu'):.2f}",
            ]  # fmt: skip
            table.add_row(*cells, style=None if row.extra or row.ratio <= TARGET else "red")
            lines.append("| " + " | ".join(cells) + " |")
        console.print(table)
        for row in rows:
            dsl_times, raw_times = (", ".join(f"{t.wall:.2f}" for t in samples) for samples in (row.dsl, row.raw))
            console.print(f"{row.scenario}: DSL {dsl_times} s; raw {raw_times} s")
        samples = [sample for row in rows for sample in (*row.dsl, *row.raw)]
        other, wall = sum(s.other_cpu for s in samples), sum(s.wall for s in samples)
        console.print(
            f"other processes used {other:.1f} CPU s during {wall:.0f} s of timed runs ({other / wall:.0%} of a core)"
        )
        if markdown:
            print("\n".join(lines))

    async def run(args: argparse.Namespace) -> int:
        """Start the dev server and both workers, measure, print, and tell whether every target was met."""
        console = Console(width=max(Console().width, 160))
        sizes = QUICK if args.quick else Sizes()
        repeat = args.repeat or (1 if args.quick else 3)
        names = args.scenario or ["sequential", "fanout", "throughput", "local"]
        pyc = "no bytecode cache" if args.no_pyc_cache else "bytecode cached"
        console.print(f"{time.strftime('%Y-%m-%d')} · {_versions()} · {pyc} · repeat {repeat}, warm-up {args.warmup}")
        with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
            if not args.no_pyc_cache:
                # The sandbox re-imports each workflow's module tree for every run. Cache bytecode (outside the repo)
                # as a normal install does, so both sides pay for executing those modules, not for compiling them.
                sys.pycache_prefix, sys.dont_write_bytecode = str(Path(tmp) / "pyc"), False
            db = args.db or str(Path(tmp) / "temporal.db")
            workflows_dir = Path(tmp) / "workflows"
            workflows_dir.mkdir()
            (workflows_dir / "bench_noop.py").write_text(NOOP_MODULE)
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=temporal_binary(),
                dev_server_log_level="error",
                dev_server_database_filename=db,
                dev_server_extra_args=list(WAL_PRAGMAS),
                search_attributes=SEARCH_ATTRIBUTES,
            )
            try:
                client = env.client
                settings = Settings(
                    _env_file=None,
                    temporal_address=client.service_client.config.target_host,
                    workflows_dir=workflows_dir,
                )
                h = Harness(
                    client,
                    dsl_queue=f"bench-dsl-{uuid.uuid4().hex}",
                    raw_queue=f"bench-raw-{uuid.uuid4().hex}",
                    fan_out_batch=settings.fan_out_batch_size,
                    unsandboxed_queue=f"bench-raw-unsandboxed-{uuid.uuid4().hex}",
                )
                raw_worker = Worker(
                    client,
                    task_queue=h.raw_queue,
                    workflows=[RawSequential, RawFanOut, RawFanOutBatched, RawLocalSequential],
                    activities=[noop_activity, log_activity],
                    max_concurrent_activities=settings.worker_max_concurrent_activities,
                    workflow_runner=SandboxedWorkflowRunner(
                        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
                    ),
                )
                unsandboxed_worker = Worker(
                    client,
                    task_queue=h.unsandboxed_queue,
                    workflows=[RawLocalSequential],
                    activities=[log_activity],
                    max_concurrent_activities=settings.worker_max_concurrent_activities,
                    workflow_runner=UnsandboxedWorkflowRunner(),
                )
                async with build_worker(client, settings, task_queue=h.dsl_queue), raw_worker, unsandboxed_worker:
                    rows = await measure(h, sizes, names, repeat, args.warmup, console)
            finally:
                await env.shutdown()
        report(rows, console, markdown=args.markdown)
        missed = [row for row in rows if not row.extra and row.ratio > TARGET]
        return 1 if args.check and missed else 0

    def cli(argv: Sequence[str] | None = None) -> int:
        """Parse the command line and run the benchmark."""
        parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.splitlines()[0])
        parser.add_argument(
            "--repeat", type=int, default=0, help="timed repetitions per side (default 3, 1 with --quick)"
        )
        parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side before timing (default 1)")
        parser.add_argument(
            "--scenario",
            action="append",
            choices=["sequential", "fanout", "throughput", "local"],
            help="run only this scenario (repeatable; default: all)",
        )
        parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for CI, not a measurement")
        parser.add_argument("--markdown", action="store_true", help="also print the table as markdown")
        parser.add_argument("--check", action="store_true", help="exit 1 when a ratio exceeds the 1.10 target")
        parser.add_argument("--db", help="SQLite file of the dev server (default: a temporary file)")
        parser.add_argument(
            "--no-pyc-cache",
            action="store_true",
            help="keep this process's bytecode setting (the Docker image sets PYTHONDONTWRITEBYTECODE=1)",
        )
        return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    # Run the copy imported as `bench.engine`: the sandbox imports workflow classes by module name, never `__main__`.
    from bench.engine import cli as _cli

    raise SystemExit(_cli())
