"""The API path against raw Temporal: what the HTTP API adds to starting, waiting for and reading runs.

One process starts one Temporal dev server (SQLite file, WAL pragmas, as `bench.engine`). For each database
(`--db sqlite`: a file; `--db postgres`: a fresh database on the local PostgreSQL, dropped at the end) it runs
the migrations and the API as `make run` does (`python -m workflow_engine migrate`, then
`python -m workflow_engine api`: one uvicorn process, local mode) and, when a phase needs one, the worker
(`python -m workflow_engine worker`), as subprocesses on a temporary WORKFLOWS_DIR with the bench's YAML files.
The API side is called with httpx (keep-alive); the raw side does the same Temporal work with the Temporal
client in this process: same workflow type (the YAML `name`), task queue, `RunInput` (built from the
registered revision, as `api/runs.py` builds it), search attributes, memo and summary.

- starts: N starts of a one-task workflow at concurrency 1, 8 and 32, no worker running, vs `start_workflow`;
- wait: a one-task run with `?wait=true`, sequentially, vs `start_workflow` + `handle.result()`; the worker
  subprocess runs both (the raw side starts the same dynamic workflow type), so the difference is the API path;
- log100: 100 sequential `log` tasks with `?wait=true` vs `bench.engine`'s hand-written local-activity workflow
  in a worker in this process on its own task queue;
- get: `GET /executions/{id}` of runs paused on an approval (in the worker's cache) vs `describe()` + the
  `status` query; then of the same runs once cancelled, the first read of each after a worker restart (a
  replay: see the worker's CPU), each side after its own restart;
- register: POST of a generated 1,000-task definition (YAML body) while `/health` is polled every 10 ms, and
  `POST /workflows/validate` of the same text;
- load (`--load`, long): 1,000 three-task runs started by 20 clients that also GET their runs until they end.

Sides alternate which goes first, after untimed warm-ups; API/raw is the ratio of times (above 1: the API is
slower). CPU time of the API, the worker, the dev server and this process (the clients; in log100 the raw
side's worker too) is read from /proc. Subprocesses, temporary files and the PostgreSQL database are removed
on exit, also on Ctrl-C or an error.

Run: `.venv/bin/python -m bench.api [--db sqlite|postgres ...] [--phase NAME ...] [--repeat N] [--quick]
[--markdown] [--load]`. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.engine import (
    NOOP_MODULE,
    ONE_YAML,
    WAL_PRAGMAS,
    RawInput,
    RawLocalSequential,
    _machine_cpu,
    _versions,
    log_activity,
    sequential_yaml,
)
from workflow_engine.api.auth import LOCAL_USER
from workflow_engine.devserver import temporal_binary
from workflow_engine.dsl import WorkflowDefinition, resolve_params
from workflow_engine.engine.client.executions import IndexMemo
from workflow_engine.engine.types import (
    SA_REVISION,
    SA_WAITING_APPROVAL,
    SA_WORKFLOW_NAME,
    SEARCH_ATTRIBUTES,
    STATUS_QUERY,
    RunInput,
    RunStatus,
)
from workflow_engine.settings import Settings
from workflow_engine.storage import create_engine, repository, session_factory
from workflow_engine.worker import PASSTHROUGH_MODULES

REPO = Path(__file__).resolve().parents[1]
PHASES = ("starts", "wait", "log100", "get", "register", "load")
CLOSED = frozenset(status.value for status in RunStatus if status.closed)
TICK = os.sysconf("SC_CLK_TCK")
# Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them: reusing one as the server
# closes it fails the request (httpx's default expiry is the same 5 s).
KEEP_ALIVE = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=2.0)
# Every process of ours ever started, so that cli() can still kill what an interrupted cleanup left behind.
_STARTED: set[int] = set()

PAUSED_YAML = """\
name: bench-paused
tasks:
  - id: ask
    type: approval
    config: {message: "approve ${{ workflow.execution_id }}?"}
  - id: after
    activity_type: log
    config: {message: done}
"""

THREE_YAML = """\
name: bench-three
tasks:
  - id: first
    activity_type: log
    config: {message: "starting ${{ workflow.execution_id }}"}
  - id: work
    activity_type: python
    config: {function: "bench_noop:noop", kwargs: {index: 1}}
  - id: done
    type: set
    config: {result: "${{ tasks.work.output }}"}
"""


def big_yaml(tasks: int, tag: int) -> str:
    """A valid definition of `tasks` tasks, `log` and `set` in turn, as a wide DAG (task i depends on (i-1)//2)."""
    lines = ["name: bench-big", f'description: "registration bench {tag}"', "params:",
             "  n: {type: integer, default: 1}", "tasks:"]  # fmt: skip
    for i in range(tasks):
        if i % 2:
            lines += [f"  - id: t{i}", "    type: set", f"    config: {{value: {i}}}"]
        else:
            lines += [
                f"  - id: t{i}",
                "    activity_type: log",
                f'    config: {{message: "step {i} of ${{{{ params.n }}}}"}}',
            ]
        if i:
            lines.append(f"    depends_on: [t{(i - 1) // 2}]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does."""

    starts: int = 100
    concurrency: tuple[int, ...] = (1, 8, 32)
    waits: int = 50
    log_steps: int = 100
    log_runs: int = 5
    paused: int = 200
    gets: int = 400
    get_concurrency: int = 8
    tasks: int = 1000
    load_runs: int = 1000
    load_clients: int = 20


SIZE_OPTIONS = frozenset(f.name for f in fields(Sizes)) - {"concurrency", "get_concurrency", "log_steps", "log_runs"}
QUICK = Sizes(starts=6, concurrency=(1, 4), waits=3, log_steps=5, log_runs=1, paused=4, gets=8, get_concurrency=2,
              tasks=40, load_runs=6, load_clients=2)  # fmt: skip


class BenchError(Exception):
    """Something the bench needs did not happen (a process did not start, a request failed)."""


# --- CPU accounting ----------------------------------------------------------------------------------------------


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) a process has used; 0 when it is gone or unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # after the command: state, ppid, ..., utime, stime


def child_pids() -> list[int]:
    """Pids of this process's children (the dev server, before anything else is started)."""
    me, found = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rpartition(")")[2].split()[1] == me:
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of the API, the worker, the dev server, this process (clients), and everything else."""

    api: float = 0.0
    worker: float = 0.0
    server: float = 0.0
    bench: float = 0.0
    machine: float = 0.0

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(*(a - b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[float, ...]:
        return self.api, self.worker, self.server, self.bench, self.machine

    @property
    def others(self) -> float:
        """CPU seconds of processes that are not ours (other users of the machine)."""
        return max(0.0, self.machine - self.api - self.worker - self.server - self.bench)


@dataclass(frozen=True)
class Sample:
    """One timed piece of work: wall time, CPU used meanwhile, and the latency of each call in it."""

    wall: float
    cpu: Cpu
    latencies: tuple[float, ...] = ()


def median(values: Sequence[float]) -> float:
    """Median, 0 for no values."""
    return float(statistics.median(values)) if values else 0.0


def percentile(values: Sequence[float], pct: int) -> float:
    """The pct-th percentile (inclusive method); the only value when there is one."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# --- processes ---------------------------------------------------------------------------------------------------


def _log_file(path: Path) -> IO[bytes]:
    return path.open("ab")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One of our subprocesses (`python -m workflow_engine <command>`), restartable, with its log and CPU time."""

    command: str
    cwd: Path
    process: asyncio.subprocess.Process | None = None
    retired_cpu: float = 0.0  # CPU seconds of its earlier processes, so restarts never make CPU time go back
    log_offset: int = 0  # where the current process's lines start in the log

    @property
    def log(self) -> Path:
        """Where its stdout and stderr go (every process of it, one after the other)."""
        return self.cwd / f"{self.command}.log"

    @property
    def pid(self) -> int | None:
        """Its pid while it runs."""
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    def cpu(self) -> float:
        """CPU seconds used by all its processes so far."""
        return self.retired_cpu + process_cpu(self.pid)

    async def start(self, env: dict[str, str]) -> None:
        """Start it in a session of its own (Ctrl-C stops the bench, which stops it)."""
        await self.stop()
        out = _log_file(self.log)
        try:
            self.log_offset = out.tell()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "workflow_engine", self.command, env=env, cwd=self.cwd,
                stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        finally:
            out.close()
        _STARTED.add(self.process.pid)

    def logged(self, marker: str) -> bool:
        """Whether the current process has logged `marker`."""
        return marker in _read_from(self.log, self.log_offset)

    async def wait_for(self, ready: Callable[[], Awaitable[bool]], what: str, seconds: float = 90.0) -> None:
        """Poll `ready` until it says yes; fail with the log's tail when the process exits or time runs out."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.pid is None:
                raise BenchError(f"{self.command} exited before {what}:\n{_tail(self.log)}")
            if await ready():
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"{self.command} not {what} after {seconds:.0f} s:\n{_tail(self.log)}")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; its CPU time so far is kept."""
        process, self.process = self.process, None
        if process is None:
            return
        self.retired_cpu += process_cpu(process.pid) if process.returncode is None else 0.0
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        _STARTED.discard(process.pid)


async def run_command(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    """Run a command to its end; return its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


async def postgres_admin_url(cwd: Path) -> str:
    """TEST_POSTGRES_DSN, else what scripts/test-postgres.sh prints (it starts the local cluster and the role)."""
    if dsn := os.environ.get("TEST_POSTGRES_DSN"):
        return dsn
    code, output = await run_command(dict(os.environ), cwd, "sh", str(REPO / "scripts" / "test-postgres.sh"))
    match = re.search(r"^export TEST_POSTGRES_DSN='([^']+)'$", output, re.MULTILINE)
    if code != 0 or not match:
        raise BenchError(f"no PostgreSQL: set TEST_POSTGRES_DSN (scripts/test-postgres.sh said: {output.strip()})")
    return match[1]


@contextlib.asynccontextmanager
async def database(kind: str, tmp: Path) -> AsyncIterator[str]:
    """Yield the URL of a fresh, empty database (migrated later, as `make run` does); drop it at the end."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'registry.db'}"
        return
    admin_url = make_url(await postgres_admin_url(tmp))
    name = f"wfe_bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        for attempt in range(50):  # an autovacuum worker in it (a superuser's backend) may need a moment to go
            try:
                async with admin.connect() as connection:
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except DBAPIError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        await admin.dispose()


# --- the stack: server, API, worker, clients ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A registered workflow and the start the API makes for it, so the raw side can make the same one."""

    name: str
    run_input: RunInput
    memo: dict[str, Any]
    search_attributes: TypedSearchAttributes
    execution_timeout: timedelta | None


@dataclass(frozen=True)
class Row:
    """One line of the results table (cells already formatted)."""

    db: str
    phase: str
    case: str
    measure: str
    api: str
    raw: str
    ratio: float | None
    api_cpu: str
    server_cpu: str
    worker_cpu: str
    client_cpu: str
    notes: str = ""


@dataclass
class Stack:
    """One database's API and worker on the bench's dev server, the clients of both sides, and the CPU meter."""

    db: str
    client: Client
    server_pids: list[int]
    tmp: Path
    database_url: str
    sizes: Sizes
    repeat: int
    console: Console
    queue: str = field(default_factory=lambda: f"bench-api-{uuid.uuid4().hex[:12]}")
    api: Service = field(init=False)
    worker: Service = field(init=False)
    http: httpx.AsyncClient | None = None
    rows: list[Row] = field(default_factory=list)
    phase_cpu: list[tuple[str, float, Cpu]] = field(default_factory=list)
    settings: Settings = field(default_factory=lambda: Settings(_env_file=None))

    def __post_init__(self) -> None:
        self.api, self.worker = Service("api", self.tmp), Service("worker", self.tmp)

    def env(self, queue: str, port: int = 0) -> dict[str, str]:
        """The environment of our subprocesses: this one's without any setting, then the bench's settings."""
        names = {name.upper() for name in Settings.model_fields}
        env = {key: value for key, value in os.environ.items() if key.upper() not in names}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # cache bytecode outside the repository, as bench.engine does
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            PYTHONPYCACHEPREFIX=str(self.tmp / "pyc"),
            TEMPORAL_ADDRESS=self.client.service_client.config.target_host,
            TEMPORAL_NAMESPACE=self.client.namespace,
            TEMPORAL_TASK_QUEUE=queue,
            DATABASE_URL=self.database_url,
            WORKFLOWS_DIR=str(self.tmp / "workflows"),
            API_HOST="127.0.0.1",
            API_PORT=str(port),
            APPROVAL_SIGNING_KEY_FILE=str(self.tmp / "approval-signing.key"),
            LOG_LEVEL="INFO",
        )
        return env

    async def migrate(self) -> None:
        """`python -m workflow_engine migrate`, as `make run` does before starting the API."""
        code, output = await run_command(self.env(self.queue), self.tmp, sys.executable, "-m", "workflow_engine",
                                         "migrate")  # fmt: skip
        if code != 0:
            raise BenchError(f"migrations failed ({code}):\n{output}")

    async def start_api(self, queue: str) -> None:
        """Start the API on `queue` and wait until /health answers 200 (its start registered WORKFLOWS_DIR)."""
        await self.stop_api()
        port = free_port()
        await self.api.start(self.env(queue, port))
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(330.0), trust_env=False,
            limits=KEEP_ALIVE,
        )  # fmt: skip
        http = self.http

        async def healthy() -> bool:
            try:
                return (await http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await self.api.wait_for(healthy, "healthy")

    async def stop_api(self) -> None:
        """Stop the API and close the HTTP client."""
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        await self.api.stop()

    async def start_worker(self) -> None:
        """Start (or restart) the worker on the main queue and wait until it polls."""
        await self.worker.start(self.env(self.queue))

        async def polling() -> bool:
            return self.worker.logged("worker polling")

        await self.worker.wait_for(polling, "polling")

    async def stop_worker(self) -> None:
        """Stop the worker (its cache goes with it)."""
        await self.worker.stop()

    async def close(self) -> None:
        """Stop both subprocesses."""
        await self.stop_worker()
        await self.stop_api()

    def cpu(self) -> Cpu:
        """CPU seconds used so far by each of our processes and by the whole machine."""
        return Cpu(
            api=self.api.cpu(),
            worker=self.worker.cpu(),
            server=sum(process_cpu(pid) for pid in self.server_pids),
            bench=time.process_time(),
            machine=_machine_cpu(),
        )

    async def timed(self, work: Callable[[], Awaitable[Sequence[float] | None]]) -> Sample:
        """Run `work`, with its wall time and the CPU used meanwhile."""
        before, start = self.cpu(), time.perf_counter()
        latencies = await work()
        wall = time.perf_counter() - start
        return Sample(wall, self.cpu() - before, tuple(latencies or ()))

    # --- the two sides' calls

    def _http(self) -> httpx.AsyncClient:
        if self.http is None:
            raise BenchError("the API is not running")
        return self.http

    async def api_start(self, name: str) -> str:
        """POST execute (202): the execution id."""
        response = await self._http().post(f"/executions/workflows/{name}/execute", json={"parameters": {}})
        return str(_expect(response, 202)["execution_id"])

    async def api_wait(self, name: str, seconds: float = 30.0) -> None:
        """POST execute with `?wait=true`: 200 and a completed run."""
        response = await self._http().post(
            f"/executions/workflows/{name}/execute", params={"wait": "true", "timeout": seconds},
            json={"parameters": {}},
        )  # fmt: skip
        body = _expect(response, 200)
        if body["status"] != "completed":
            raise BenchError(f"run {body['execution_id']} ended {body['status']}: {body.get('error')}")

    async def api_get(self, execution_id: str) -> dict[str, Any]:
        """GET /executions/{id} (200)."""
        return _expect(await self._http().get(f"/executions/{execution_id}"), 200)

    async def target(self, name: str, queue: str | None = None) -> Target:
        """The start the API makes for the current revision of `name` (api/runs.py `start_run`)."""
        engine = create_engine(self.database_url)
        try:
            async with session_factory(engine)() as session:
                record = await repository.get_definition(session=session, workflow_id=name)
                pinned = record and await repository.get_revision(
                    session=session, workflow_id=name, number=record.current_revision
                )
        finally:
            await engine.dispose()
        if not pinned:
            raise BenchError(f"{name} is not registered")
        definition = WorkflowDefinition.from_stored(pinned.definition)
        run_input = RunInput(
            definition=pinned.definition, revision=pinned.number, params=resolve_params(definition, {}),
            started_by=LOCAL_USER, children={}, fan_out_batch=self.settings.fan_out_batch_size,
            kind_queues=sorted(self.settings.activity_concurrency),
        )  # fmt: skip
        memo = IndexMemo(workflow_id=name, revision=pinned.number, started_by=LOCAL_USER).as_memo()
        attributes = TypedSearchAttributes(
            [SearchAttributePair(SA_WORKFLOW_NAME, name), SearchAttributePair(SA_REVISION, pinned.number)]
        )
        return Target(name, run_input, memo, attributes, definition.timeout)

    async def raw_start(self, target: Target, queue: str) -> str:
        """`Client.start_workflow` with what the API sends; the execution id."""
        execution_id = f"{target.name}-{uuid.uuid4().hex[:20]}"
        await self.client.start_workflow(
            target.name, target.run_input, id=execution_id, task_queue=queue,
            execution_timeout=target.execution_timeout, static_summary=f"{target.name} rev {target.run_input.revision}",
            search_attributes=target.search_attributes, memo=target.memo,
        )  # fmt: skip
        return execution_id

    async def raw_wait(self, target: Target) -> None:
        """Start like the API and wait for the result."""
        await self.client.get_workflow_handle(await self.raw_start(target, self.queue)).result()

    async def raw_get(self, execution_id: str) -> None:
        """What a GET needs from Temporal at least: describe and the `status` query."""
        handle = self.client.get_workflow_handle(execution_id)
        await handle.describe()
        await handle.query(STATUS_QUERY)

    def add(self, phase: str, case: str, measure: str, api: str, raw: str, ratio: float | None, *,
            api_cpu: str = "", server_cpu: str = "", worker_cpu: str = "", client_cpu: str = "",
            notes: str = "") -> None:  # fmt: skip
        """Record a row of the table and print it."""
        row = Row(self.db, phase, case, measure, api, raw, ratio, api_cpu, server_cpu, worker_cpu, client_cpu, notes)
        self.rows.append(row)
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        self.console.print(
            f"  {self.db} · {phase} · {case}: API {api}, raw {raw} {measure}, API/raw {shown} {notes}", markup=False
        )


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                         f"(expected {status}): {response.text[:500]}")  # fmt: skip
    body = response.json()
    if not isinstance(body, dict):
        raise BenchError(f"{response.request.url.path}: not a JSON object")
    return body


async def bounded(concurrency: int, count: int, one: Callable[[int], Awaitable[object]]) -> list[float]:
    """Call one(0..count-1), at most `concurrency` at once; return each call's latency in seconds."""
    latencies = [0.0] * count
    indexes = iter(range(count))

    async def lane() -> None:
        for i in indexes:  # shared by the lanes: each index is taken once
            start = time.perf_counter()
            await one(i)
            latencies[i] = time.perf_counter() - start

    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    return latencies


def ms(seconds: float) -> str:
    """Seconds as milliseconds text."""
    return f"{seconds * 1000:.1f}"


def per_op(samples: Sequence[Sample], what: str, count: int) -> float:
    """One process's CPU seconds per operation (`count` in each sample), over all samples: /proc counts in ticks."""
    return sum(getattr(s.cpu, what) for s in samples) / (count * len(samples)) if samples else 0.0


def pair(api: Sequence[Sample], raw: Sequence[Sample], what: str, count: int) -> str:
    """`API / raw` CPU ms per operation of one process."""
    return f"{ms(per_op(api, what, count))} / {ms(per_op(raw, what, count))}"


def pooled(samples: Sequence[Sample]) -> list[float]:
    """Every latency of the samples."""
    return [latency for sample in samples for latency in sample.latencies]


async def alternate(stack: Stack, rounds: int, api: Callable[[], Awaitable[Sample]],
                    raw: Callable[[], Awaitable[Sample]]) -> tuple[list[Sample], list[Sample]]:  # fmt: skip
    """Run both sides `rounds` times, the API first in even rounds, the raw side first in odd ones."""
    api_samples: list[Sample] = []
    raw_samples: list[Sample] = []
    for n in range(rounds):
        if n % 2 == 0:
            api_samples.append(await api())
            raw_samples.append(await raw())
        else:
            raw_samples.append(await raw())
            api_samples.append(await api())
    return api_samples, raw_samples


# --- phases ------------------------------------------------------------------------------------------------------


async def phase_starts(stack: Stack) -> None:
    """Starts without a worker: the API (on a queue nobody polls) against `start_workflow` on the same queue."""
    queue = f"{stack.queue}-starts"  # its runs never run: no worker polls it, and they do not load later phases
    await stack.start_api(queue)
    target = await stack.target("bench-one")
    n = stack.sizes.starts
    await bounded(4, 8, lambda _: stack.api_start("bench-one"))  # warm-up: connections, caches, code paths
    await bounded(4, 8, lambda _: stack.raw_start(target, queue))
    for concurrency in stack.sizes.concurrency:

        async def api(c: int = concurrency) -> Sample:
            return await stack.timed(lambda: bounded(c, n, lambda _: stack.api_start("bench-one")))

        async def raw(c: int = concurrency) -> Sample:
            return await stack.timed(lambda: bounded(c, n, lambda _: stack.raw_start(target, queue)))

        api_samples, raw_samples = await alternate(stack, stack.repeat, api, raw)
        api_wall, raw_wall = median([s.wall for s in api_samples]), median([s.wall for s in raw_samples])
        stack.add(
            "starts", f"{n} starts, concurrency {concurrency}", "starts/s", f"{n / api_wall:.0f}",
            f"{n / raw_wall:.0f}", api_wall / raw_wall, api_cpu=ms(per_op(api_samples, "api", n)),
            server_cpu=pair(api_samples, raw_samples, "server", n),
            client_cpu=pair(api_samples, raw_samples, "bench", n),
            notes=f"p50 latency {ms(median(pooled(api_samples)))} / {ms(median(pooled(raw_samples)))} ms",
        )  # fmt: skip
    await stack.start_api(stack.queue)


async def phase_wait(stack: Stack) -> None:
    """`?wait=true` of a one-task run against start + result, one at a time, through the same worker."""
    target = await stack.target("bench-one")
    for _ in range(3):
        await stack.api_wait("bench-one")
        await stack.raw_wait(target)

    async def api() -> Sample:
        return await stack.timed(lambda: bounded(1, 1, lambda _: stack.api_wait("bench-one")))

    async def raw() -> Sample:
        return await stack.timed(lambda: bounded(1, 1, lambda _: stack.raw_wait(target)))

    api_samples, raw_samples = await alternate(stack, stack.sizes.waits, api, raw)
    api_lat, raw_lat = pooled(api_samples), pooled(raw_samples)
    stack.add(
        "wait", f"1-task run, wait=true, {len(api_lat)} sequential", "ms p50 (p95)",
        f"{ms(median(api_lat))} ({ms(percentile(api_lat, 95))})",
        f"{ms(median(raw_lat))} ({ms(percentile(raw_lat, 95))})",
        median(api_lat) / median(raw_lat), api_cpu=ms(per_op(api_samples, "api", 1)),
        server_cpu=pair(api_samples, raw_samples, "server", 1), worker_cpu=pair(api_samples, raw_samples, "worker", 1),
        client_cpu=pair(api_samples, raw_samples, "bench", 1),
    )  # fmt: skip


async def phase_log100(stack: Stack) -> None:
    """100 sequential `log` tasks with `?wait=true` against bench.engine's local-activity workflow in this process."""
    steps, name = stack.sizes.log_steps, "bench-log-sequential"
    raw_queue = f"{stack.queue}-raw"
    raw_worker = Worker(
        stack.client, task_queue=raw_queue, workflows=[RawLocalSequential], activities=[log_activity],
        max_concurrent_activities=stack.settings.worker_max_concurrent_activities,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
        ),
    )  # fmt: skip

    async def raw_run() -> None:
        await stack.client.execute_workflow(
            RawLocalSequential.run, RawInput(steps), id=f"bench-raw-{uuid.uuid4().hex}", task_queue=raw_queue
        )

    async with raw_worker:
        await stack.api_wait(name, 300)
        await raw_run()

        async def api() -> Sample:
            return await stack.timed(lambda: bounded(1, 1, lambda _: stack.api_wait(name, 300)))

        async def raw() -> Sample:
            return await stack.timed(lambda: bounded(1, 1, lambda _: raw_run()))

        api_samples, raw_samples = await alternate(stack, max(stack.sizes.log_runs, stack.repeat), api, raw)
    api_wall, raw_wall = median([s.wall for s in api_samples]), median([s.wall for s in raw_samples])
    stack.add(
        "log100", f"{steps} sequential log tasks, wait=true", "ms/step", f"{api_wall / steps * 1000:.2f}",
        f"{raw_wall / steps * 1000:.2f}", api_wall / raw_wall, api_cpu=ms(per_op(api_samples, "api", steps)),
        server_cpu=pair(api_samples, raw_samples, "server", steps),
        worker_cpu=f"{ms(per_op(api_samples, 'worker', steps))} / {ms(per_op(raw_samples, 'bench', steps))}",
        notes=f"runs {_walls(api_samples)} / {_walls(raw_samples)} s; the raw worker is this process (its CPU in the "
        "worker column)",
    )  # fmt: skip


def _walls(samples: Sequence[Sample]) -> str:
    return ", ".join(f"{s.wall:.2f}" for s in samples)


async def _wait_visible(stack: Stack, query: str, count: int, seconds: float = 300.0) -> None:
    """Wait until visibility counts `count` runs for `query` (eventually consistent)."""
    deadline = time.monotonic() + seconds
    while (seen := (await stack.client.count_workflows(query)).count) != count:
        if time.monotonic() > deadline:
            raise BenchError(f"{seen} runs instead of {count} for {query!r} after {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def phase_get(stack: Stack) -> None:
    """GET of paused runs (cached by the worker), then of closed runs after a worker restart (replays)."""
    sizes = stack.sizes
    base = f"{SA_WORKFLOW_NAME.name} = 'bench-paused'"
    # the dev server is shared by the databases' passes: count the runs cancelled before this one's
    before = (await stack.client.count_workflows(f"{base} AND ExecutionStatus = 'Canceled'")).count
    ids = await _start_many(stack, "bench-paused", sizes.paused)
    await _wait_visible(stack, f"{base} AND {SA_WAITING_APPROVAL.name} = true AND ExecutionStatus = 'Running'",
                        sizes.paused)  # fmt: skip
    gets, concurrency = sizes.gets, sizes.get_concurrency
    await bounded(concurrency, 16, lambda i: stack.api_get(ids[i % len(ids)]))
    await bounded(concurrency, 16, lambda i: stack.raw_get(ids[i % len(ids)]))

    async def api() -> Sample:
        return await stack.timed(lambda: bounded(concurrency, gets, lambda i: _check_get(stack, ids[i % len(ids)])))

    async def raw() -> Sample:
        return await stack.timed(lambda: bounded(concurrency, gets, lambda i: stack.raw_get(ids[i % len(ids)])))

    api_samples, raw_samples = await alternate(stack, stack.repeat, api, raw)
    _get_row(stack, f"{len(ids)} paused runs, {gets} GETs at concurrency {concurrency}", api_samples, raw_samples, gets)

    await bounded(16, len(ids), lambda i: stack.client.get_workflow_handle(ids[i]).cancel())
    await _wait_visible(stack, f"{base} AND ExecutionStatus = 'Canceled'", before + len(ids))
    await stack.start_worker()  # a cold cache: each first read of a closed run replays its history
    api_closed = await stack.timed(lambda: bounded(concurrency, len(ids), lambda i: _check_get(stack, ids[i])))
    await stack.start_worker()
    raw_closed = await stack.timed(lambda: bounded(concurrency, len(ids), lambda i: stack.raw_get(ids[i])))
    _get_row(stack, f"{len(ids)} cancelled runs, first read after a worker restart", [api_closed], [raw_closed],
             len(ids))  # fmt: skip


async def _start_many(stack: Stack, name: str, count: int) -> list[str]:
    ids: list[str] = [""] * count

    async def one(i: int) -> None:
        ids[i] = await stack.api_start(name)

    await bounded(8, count, one)
    return ids


async def _check_get(stack: Stack, execution_id: str) -> None:
    body = await stack.api_get(execution_id)
    if body.get("tasks_source") != "worker":
        raise BenchError(f"GET {execution_id}: no worker answered the status query ({body.get('tasks_source')})")


def _get_row(stack: Stack, case: str, api: Sequence[Sample], raw: Sequence[Sample], count: int) -> None:
    api_lat, raw_lat = pooled(api), pooled(raw)
    stack.add(
        "get", case, "ms p50 / p95", f"{ms(median(api_lat))} / {ms(percentile(api_lat, 95))}",
        f"{ms(median(raw_lat))} / {ms(percentile(raw_lat, 95))}", median(api_lat) / median(raw_lat),
        api_cpu=ms(per_op(api, "api", count)), server_cpu=pair(api, raw, "server", count),
        worker_cpu=pair(api, raw, "worker", count), client_cpu=pair(api, raw, "bench", count),
    )  # fmt: skip


async def _health_poller(http: httpx.AsyncClient, stop: asyncio.Event, out: list[tuple[float, float]]) -> None:
    """GET /health every 10 ms (one at a time) until `stop`; record (start, latency) of each."""
    while not stop.is_set():
        start = time.perf_counter()
        _expect(await http.get("/health"), 200)
        latency = time.perf_counter() - start
        out.append((start, latency))
        await asyncio.sleep(max(0.0, 0.01 - latency))


async def phase_register(stack: Stack) -> None:
    """POST a 1,000-task definition while /health is polled every 10 ms; validate the same text."""
    tasks = stack.sizes.tasks
    http = stack._http()
    yamls = [big_yaml(tasks, n) for n in range(stack.repeat + 1)]  # each a new revision
    headers = {"Content-Type": "application/yaml"}
    _expect(await http.post("/workflows", content=yamls[0], headers=headers), 201)  # warm-up
    registrations: list[float] = []
    during: list[float] = []
    idle: list[float] = []
    validations: list[float] = []
    api_cpu: list[float] = []
    async with httpx.AsyncClient(base_url=http.base_url, trust_env=False, timeout=60.0, limits=KEEP_ALIVE) as health:
        for body in yamls[1:]:
            polls: list[tuple[float, float]] = []
            stop = asyncio.Event()
            poller = asyncio.create_task(_health_poller(health, stop, polls))
            try:
                await asyncio.sleep(0.3)
                before, start = stack.cpu(), time.perf_counter()
                _expect(await http.post("/workflows", content=body, headers=headers), 201)
                end = time.perf_counter()
                api_cpu.append((stack.cpu() - before).api)
                await asyncio.sleep(0.05)
            finally:
                stop.set()
                await poller
            registrations.append(end - start)
            idle += [latency for at, latency in polls if at < start]
            during += [latency for at, latency in polls if start <= at <= end]
            start = time.perf_counter()
            _expect(await http.post("/workflows/validate", content=body, headers=headers), 200)
            validations.append(time.perf_counter() - start)
    kib = len(yamls[0].encode()) / 1024
    stack.add(
        "register", f"POST /workflows, {tasks} tasks ({kib:.0f} KiB YAML)", "s", f"{median(registrations):.3f}", "-",
        None, api_cpu=f"{median(api_cpu) * 1000:.0f} per registration",
        notes=f"/health during it: p50 {ms(median(during))}, p99 {ms(percentile(during, 99))}, "
        f"max {ms(max(during, default=0.0))} ms over {len(during)} polls (idle p50 {ms(median(idle))} ms)",
    )  # fmt: skip
    stack.add("register", f"POST /workflows/validate, {tasks} tasks", "s", f"{median(validations):.3f}", "-", None)


async def phase_load(stack: Stack) -> None:
    """Three-task runs started by concurrent clients, each also GETting its runs until they end."""
    runs, clients = stack.sizes.load_runs, stack.sizes.load_clients
    starts: list[float] = []
    gets: list[float] = []
    failed: list[str] = []
    starts_done: list[float] = []
    deadline = time.monotonic() + 900
    await stack.api_wait("bench-three")

    async def get_one(mine: list[str]) -> None:
        execution_id = mine.pop(0)
        start = time.perf_counter()
        status = (await stack.api_get(execution_id))["status"]
        gets.append(time.perf_counter() - start)
        if status not in CLOSED:
            mine.append(execution_id)
        elif status != "completed":
            failed.append(f"{execution_id}: {status}")

    async def client(k: int) -> None:
        mine: list[str] = []
        for _ in range(k, runs, clients):
            start = time.perf_counter()
            mine.append(await stack.api_start("bench-three"))
            starts.append(time.perf_counter() - start)
            await get_one(mine)
        starts_done.append(time.perf_counter())
        while mine:
            if time.monotonic() > deadline:
                raise BenchError(f"{len(mine)} runs of client {k} still running after 900 s")
            await asyncio.sleep(0.1)
            await get_one(mine)

    async def work() -> None:
        await asyncio.gather(*(client(k) for k in range(clients)))

    t0 = time.perf_counter()
    sample = await stack.timed(work)
    start_span = max(starts_done) - t0
    stack.add(
        "load", f"{runs} 3-task runs, {clients} clients starting and GETting", "start ms p50 / p95 / max",
        f"{ms(median(starts))} / {ms(percentile(starts, 95))} / {ms(max(starts))}", "-", None,
        api_cpu=f"{ms(sample.cpu.api / runs)} per run", server_cpu=f"{ms(sample.cpu.server / runs)} per run",
        worker_cpu=f"{ms(sample.cpu.worker / runs)} per run", client_cpu=f"{ms(sample.cpu.bench / runs)} per run",
        notes=f"{runs / start_span:.0f} starts/s; GET p50 {ms(median(gets))} / p95 {ms(percentile(gets, 95))} ms over "
        f"{len(gets)}; all done in {sample.wall:.1f} s; {len(failed)} not completed",
    )  # fmt: skip
    if failed:
        stack.console.print(f"[red]runs that did not complete: {failed[:5]}[/]")


PHASE_FUNCTIONS: dict[str, Callable[[Stack], Awaitable[None]]] = {
    "starts": phase_starts, "register": phase_register, "wait": phase_wait, "log100": phase_log100,
    "get": phase_get, "load": phase_load,
}  # fmt: skip
ORDER = ("starts", "register", "wait", "log100", "get", "load")  # the phases without a worker first
NEEDS_WORKER = frozenset({"wait", "log100", "get", "load"})


async def bench_database(stack: Stack, phases: Sequence[str]) -> None:
    """Migrate, start the API (and the worker when needed) and run the phases in order."""
    await stack.migrate()
    try:
        await stack.start_api(stack.queue)
        for phase in (name for name in ORDER if name in phases):
            if phase in NEEDS_WORKER and stack.worker.pid is None:
                await stack.start_worker()
            stack.console.print(f"[bold]{stack.db}: {phase}[/]")
            before, start = stack.cpu(), time.perf_counter()
            await PHASE_FUNCTIONS[phase](stack)
            stack.phase_cpu.append((phase, time.perf_counter() - start, stack.cpu() - before))
    finally:
        await stack.close()


def write_workflows(directory: Path, sizes: Sizes) -> None:
    """The bench's definitions (and the python module of its no-op task) in WORKFLOWS_DIR."""
    directory.mkdir()
    (directory / "bench_noop.py").write_text(NOOP_MODULE)
    (directory / "bench_one.yaml").write_text(ONE_YAML)
    (directory / "bench_log.yaml").write_text(sequential_yaml(sizes.log_steps, "log"))
    (directory / "bench_paused.yaml").write_text(PAUSED_YAML)
    (directory / "bench_three.yaml").write_text(THREE_YAML)


HEADERS = ["db", "phase", "case", "measure", "API", "raw", "API/raw", "API proc CPU ms/op",
           "server CPU ms/op API/raw", "worker CPU ms/op API/raw", "client CPU ms/op API/raw", "notes"]  # fmt: skip


def report(stacks: Sequence[Stack], console: Console, *, markdown: bool) -> None:
    """Print the results table, CPU per phase, and a markdown copy of both."""
    table = Table(title="API path vs raw Temporal client (medians; CPU: means; API/raw: time ratio)")
    for column in HEADERS:
        table.add_column(column, justify="left" if column in ("db", "phase", "case", "measure", "notes") else "right")
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---|---|---|" + "---:|" * 7 + "---|"]
    for row in (row for stack in stacks for row in stack.rows):
        cells = [row.db, row.phase, row.case, row.measure, row.api, row.raw,
                 f"{row.ratio:.2f}" if row.ratio is not None else "-", row.api_cpu, row.server_cpu, row.worker_cpu,
                 row.client_cpu, row.notes]  # fmt: skip
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    cpu_lines = ["| db | phase | wall s | API CPU s | worker CPU s | server CPU s | bench CPU s | others (cores) |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for stack in stacks:
        for phase, wall, cpu in stack.phase_cpu:
            line = (f"| {stack.db} | {phase} | {wall:.1f} | {cpu.api:.1f} | {cpu.worker:.1f} | {cpu.server:.1f} | "
                    f"{cpu.bench:.1f} | {cpu.others / wall:.2f} |")  # fmt: skip
            cpu_lines.append(line)
            console.print(f"{stack.db} {phase}: {wall:.1f} s, CPU s: API {cpu.api:.1f}, worker {cpu.worker:.1f}, "
                          f"server {cpu.server:.1f}, bench {cpu.bench:.1f}; other processes "
                          f"{cpu.others / wall:.2f} cores")  # fmt: skip
    if markdown:
        print("\n".join(lines))
        print()
        print("\n".join(cpu_lines))


async def run(args: argparse.Namespace) -> int:
    """Start the dev server, run every selected phase on every selected database, print the results."""
    console = Console(width=max(Console().width, 200))
    base = QUICK if args.quick else Sizes()
    sizes = replace(base, **{name: value for name, value in vars(args).items() if name in SIZE_OPTIONS and value})
    repeat = args.repeat or (1 if args.quick else 3)
    phases = list(args.phase or [p for p in PHASES if p != "load"])
    if args.load and "load" not in phases:
        phases.append("load")
    dbs = args.db or ["sqlite", "postgres"]
    console.print(f"{time.strftime('%Y-%m-%d')} · {_versions()} · repeat {repeat} · {', '.join(dbs)} · {phases}")
    stacks: list[Stack] = []
    task = asyncio.current_task()
    if task is not None:  # a SIGTERM stops the bench like Ctrl-C does: cleanly
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp_dir:
        tmp = Path(tmp_dir)
        # the sandbox re-imports bench.engine's workflow for every raw log100 run: cache bytecode, as bench.engine
        # does, and stop before the directory goes (later imports would write there again)
        bytecode = sys.pycache_prefix, sys.dont_write_bytecode
        sys.pycache_prefix, sys.dont_write_bytecode = str(tmp / "pyc"), False
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(), dev_server_log_level="error",
            dev_server_database_filename=str(tmp / "temporal.db"), dev_server_extra_args=list(WAL_PRAGMAS),
            search_attributes=SEARCH_ATTRIBUTES,
        )  # fmt: skip
        try:
            server_pids = child_pids()
            for db in dbs:
                work = tmp / db
                work.mkdir()
                write_workflows(work / "workflows", sizes)
                async with database(db, work) as url:
                    stack = Stack(db, env.client, server_pids, work, url, sizes, repeat, console)
                    stacks.append(stack)
                    await bench_database(stack, phases)
        finally:
            await env.shutdown()
            sys.pycache_prefix, sys.dont_write_bytecode = bytecode
    report(stacks, console, markdown=args.markdown)
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the benchmark; kill anything an interrupted cleanup left running."""
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"],
                        help="registry database (repeatable; default: both, one after the other)")  # fmt: skip
    parser.add_argument("--phase", action="append", choices=PHASES,
                        help="run only this phase (repeatable; default: all but load)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=0, help="timed repetitions per side (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition: a smoke run, no measurement")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as markdown")
    parser.add_argument("--load", action="store_true", help="also run the load phase (long)")
    parser.add_argument("--starts", type=int, help="starts per concurrency level (default 100)")
    parser.add_argument("--waits", type=int, help="wait=true samples per side (default 50)")
    parser.add_argument("--paused", type=int, help="paused runs the GET phase reads (default 200)")
    parser.add_argument("--gets", type=int, help="GETs per side and repetition (default 400)")
    parser.add_argument("--tasks", type=int, help="tasks of the registered definition (default 1000, the maximum)")
    parser.add_argument("--load-runs", type=int, help="runs of the load phase (default 1000)")
    parser.add_argument("--load-clients", type=int, help="concurrent clients of the load phase (default 20)")
    try:
        return asyncio.run(run(parser.parse_args(argv)))
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:  # SIGTERM
        return 143
    finally:
        for pid in _STARTED:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(cli())
