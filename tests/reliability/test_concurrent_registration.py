"""Concurrent registration, in one app and in two API processes on one database, never answers 5xx or loses work."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from tests.polling import eventually
from workflow_engine.api import create_app
from workflow_engine.api.registration import content_hash
from workflow_engine.dsl import parse_definition
from workflow_engine.settings import Settings

WORKFLOW = "race"
DISTINCT = 20  # distinct contents posted, each twice, beside RELOADS directory rescans
RELOADS = 20
BOUND_SECONDS = 55


def version(tag: str) -> str:
    """Return one content of the `race` workflow; each tag is a distinct definition."""
    return f"name: {WORKFLOW}\ntasks:\n  - id: a\n    activity_type: log\n    config: {{message: {tag}}}\n"


def digest(text: str) -> str:
    return content_hash(parse_definition(text))


def _write_directory(workflows_dir: Path) -> None:
    (workflows_dir / "race.yaml").write_text(version("from-the-file"))
    (workflows_dir / "bystander.yaml").write_text(version("bystander").replace(WORKFLOW, "bystander"))


async def burst(clients: Sequence[httpx.AsyncClient]) -> tuple[Counter[int], float, set[str]]:
    """Fire RELOADS reloads and 2 × DISTINCT posts at once over `clients`; return statuses, seconds, accepted."""
    calls: list[str | None] = [None] * RELOADS + [version(f"v{i}") for i in range(DISTINCT)] * 2
    random.Random(12).shuffle(calls)

    async def one(index: int, text: str | None) -> tuple[str | None, httpx.Response]:
        http = clients[index % len(clients)]
        if text is None:
            return None, await http.post("/workflows/reload")
        return text, await http.post("/workflows", content=text, headers={"content-type": "application/yaml"})

    started = time.monotonic()
    results = await asyncio.gather(*(one(i, text) for i, text in enumerate(calls)))
    seconds = time.monotonic() - started
    statuses = Counter(response.status_code for _, response in results)
    print(f"\n{len(clients)} app(s): {dict(statuses)} in {seconds:.2f} s", end=" ")
    assert all(status < 500 for status in statuses), [r.text for _, r in results if r.status_code >= 500][:3]
    assert set(statuses) <= {200, 201, 409}, statuses
    for text, response in results:
        if response.status_code == 409:
            assert response.json()["code"] == "conflict" and "try again" in response.json()["detail"]
        if text is None:
            assert response.status_code == 200, response.text
    created = Counter(text for text, response in results if response.status_code == 201)
    accepted = {text for text, response in results if text is not None and response.status_code in (200, 201)}
    # Every distinct content is created once; its repeat answers 200 with the same revision.
    assert set(created) == accepted and set(created.values()) == {1}, created
    assert len({r.json()["revision"] for t, r in results if t is not None and r.status_code < 300}) == len(accepted)
    return statuses, seconds, accepted


async def assert_revisions(http: httpx.AsyncClient, contents: set[str], current: str | None = None) -> None:
    """Assert the revision list holds every accepted content exactly once, numbered 1..n, one of them current."""
    response = await http.get(f"/workflows/{WORKFLOW}/revisions")
    assert response.status_code == 200, response.text
    listed = response.json()
    hashes = [r["content_hash"] for r in listed]
    assert len(hashes) == len(set(hashes)), "a content is listed twice"
    assert set(hashes) == {digest(text) for text in contents}
    assert sorted(r["revision"] for r in listed) == list(range(1, len(listed) + 1))
    now = [r for r in listed if r["current"]]
    assert len(now) == 1
    if current is not None:
        assert now[0]["content_hash"] == digest(current), "the last accepted change is not current"


async def test_a_burst_of_reloads_and_registrations_in_one_app_loses_nothing(
    client: Client, settings: Settings, database_url: str, workflows_dir: Path
) -> None:
    _write_directory(workflows_dir)
    app_settings = settings.model_copy(update={"database_url": database_url, "workflows_poll_seconds": 0.2})

    @asynccontextmanager
    async def serve() -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(app_settings, temporal_client=client)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api", timeout=30
            ) as http,
        ):
            yield http

    async with asyncio.timeout(BOUND_SECONDS):
        async with serve() as http:
            statuses, seconds, accepted = await burst([http])
            contents = {*accepted, version("from-the-file")}
            await assert_revisions(http, contents)
            last = version("api-last")
            assert (await http.post("/workflows", content=last, headers={"content-type": "application/yaml"})).json()[
                "created"
            ]
            contents.add(last)
            # A rescan of the unchanged file (new mtime, same content) keeps the API's revision current.
            (workflows_dir / "race.yaml").write_text(version("from-the-file"))
            reload = await http.post("/workflows/reload")
            assert reload.status_code == 200, reload.text
            race = [r for r in reload.json()["registered"] if r["workflow_id"] == WORKFLOW]
            assert [r["created"] for r in race] == [False]
            await asyncio.sleep(1)  # several watcher rounds (every 0.2 s)
            await assert_revisions(http, contents, current=last)
        async with serve() as http:  # an API restart scans the directory again
            await assert_revisions(http, contents, current=last)
            # A changed file is a new accepted change and becomes current.
            edited = version("edited-file")
            (workflows_dir / "race.yaml").write_text(edited)
            contents.add(edited)
            await eventually(
                lambda: http.get(f"/workflows/{WORKFLOW}/revisions"), until=lambda r: len(r.json()) == len(contents),
                within=5, what="the watcher registering the edited file",
            )  # fmt: skip
            await assert_revisions(http, contents, current=edited)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiProcess:
    """One `python -m workflow_engine api` subprocess on its own port."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str) -> None:
        self.env = {**env, "API_PORT": str(_free_port())}
        self.cwd, self.name = cwd, name
        self.base_url = f"http://127.0.0.1:{self.env['API_PORT']}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process; `ready` waits for it."""
        log = (self.cwd / f"{self.name}.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workflow_engine", "api", env=self.env, cwd=self.cwd, stdout=log, stderr=log
        )
        log.close()

    async def ready(self) -> None:
        """Wait until the API answers /health (its startup scan is done by then)."""
        proc = self.proc
        assert proc is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:

            async def healthy() -> bool:
                assert proc.returncode is None, (self.cwd / f"{self.name}.log").read_text()[-3000:]
                return (await http.get("/health")).status_code == 200

            await eventually(healthy, within=15, what=f"{self.name} healthy", ignore=(httpx.TransportError,))

    async def stop(self) -> None:
        """Stop it as Ctrl-C would."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 20)
        self.proc = None


async def test_two_api_processes_on_one_database_lose_nothing_and_a_restart_reverts_nothing(
    temporal_env: WorkflowEnvironment, database_url: str, workflows_dir: Path, tmp_path: Path, task_queue: str
) -> None:
    _write_directory(workflows_dir)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(workflows_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    apis = [ApiProcess(env, tmp_path, "api-a"), ApiProcess(env, tmp_path, "api-b")]
    async with asyncio.timeout(BOUND_SECONDS):
        migrate = await asyncio.create_subprocess_exec(sys.executable, "-m", "workflow_engine", "migrate", env=env,
                                                       cwd=tmp_path)  # fmt: skip
        assert await migrate.wait() == 0
        try:
            # Both start at once: their startup scans of the same directory race on the same rows.
            await asyncio.gather(*(api.start() for api in apis))
            await asyncio.gather(*(api.ready() for api in apis))
            async with (
                httpx.AsyncClient(base_url=apis[0].base_url, timeout=30) as first,
                httpx.AsyncClient(base_url=apis[1].base_url, timeout=30) as second,
            ):
                await assert_revisions(first, {version("from-the-file")}, current=version("from-the-file"))
                statuses, seconds, accepted = await burst([first, second])
                contents = {*accepted, version("from-the-file")}
                await assert_revisions(second, contents)
                last = version("api-last")
                registered = await second.post("/workflows", content=last, headers={"content-type": "application/yaml"})
                assert registered.status_code == 201
                contents.add(last)
                (workflows_dir / "race.yaml").write_text(version("from-the-file"))  # a rescan in both processes
                await asyncio.sleep(2.5)
                await assert_revisions(first, contents, current=last)
            await apis[0].stop()
            await apis[0].start()
            await apis[0].ready()
            async with httpx.AsyncClient(base_url=apis[0].base_url, timeout=30) as restarted:
                await assert_revisions(restarted, contents, current=last)
        finally:
            for api in apis:
                await api.stop()
