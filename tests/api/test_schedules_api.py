"""`schedules:` become Temporal Schedules on the real dev server: runs start on time, and the API steers them.

Schedule ids are global to the dev server the whole session shares, and visibility lists the runs of every test:
each test names its workflow afresh (`fresh`) and deletes its schedules afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError, RPCStatusCode

from tests.api.test_temporal_failures import TemporalProxy
from tests.conftest import REPO_ROOT
from tests.polling import eventually
from tests.reliability.stack import free_port
from workflow_engine.api import create_app
from workflow_engine.api import schedules as schedule_sync
from workflow_engine.api.registration import register_source
from workflow_engine.api.schedules import ScheduleSyncer, backfill_runs, desired_schedules, sync_all, sync_workflow
from workflow_engine.dsl.model import Schedule as ScheduleEntry
from workflow_engine.engine.client.connection import TemporalConnection
from workflow_engine.engine.client.schedules import DesiredSchedule, ScheduleOwnedElsewhere, delete_schedule
from workflow_engine.engine.types import RunInput
from workflow_engine.errors import ValidationFailedError
from workflow_engine.settings import Settings
from workflow_engine.storage import create_engine, repository, session_factory

from .conftest import TOKENS

YAML = {"content-type": "application/yaml"}
# What Temporal does with a schedule does not depend on the registry's database: one is enough there.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TICKER = """\
name: NAME
params:
  label: {type: string, required: true}
schedules:
  - id: fast
    every: 1s
    params: {label: LABEL}
    paused: PAUSED
tasks:
  - id: say
    activity_type: log
    config: {message: "tick ${{ params.label }}"}
output: {label: "${{ params.label }}", revision: "${{ workflow.revision }}"}
"""


def ticker(name: str, label: str = "one", *, paused: bool = False) -> str:
    """A workflow whose schedule `fast` fires every second with `label`."""
    return TICKER.replace("NAME", name).replace("LABEL", label).replace("PAUSED", str(paused).lower())


async def _delete_schedules(client: Client, names: list[str]) -> None:
    """Delete the schedules of these workflows: the ones we know of, and any visibility lists."""
    doomed = {f"{name}.fast" for name in names}
    async for listed in await client.list_schedules():
        if any(listed.id.startswith(f"{name}.") for name in names):
            doomed.add(listed.id)
    for identifier in doomed:
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(identifier).delete()


@pytest_asyncio.fixture
async def fresh(client: Client) -> AsyncIterator[Callable[[str], str]]:
    """Yield a maker of workflow names no other test (or parameter) uses; their schedules are deleted after."""
    made: list[str] = []

    def name(prefix: str) -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield name
    await _delete_schedules(client, made)


async def _register(api: httpx.AsyncClient, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = await api.post("/workflows", content=text, headers={**YAML, **(headers or {})})
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


async def _runs(api: httpx.AsyncClient, workflow_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """The runs of a workflow that visibility lists (newest first), of one status or of any."""
    query: dict[str, Any] = {"workflow_id": workflow_id, "limit": 500}
    if status is not None:
        query["status"] = status
    listed = await api.get("/executions", params=query)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def _schedule(api: httpx.AsyncClient, schedule_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    shown = await api.get(f"/schedules/{schedule_id}", headers=headers or {})
    assert shown.status_code == 200, shown.text
    return dict(shown.json())


async def _exists(client: Client, schedule_id: str) -> bool:
    try:
        await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _listed_ids(client: Client, prefix: str) -> list[str]:
    """The schedule ids Temporal's list (what `temporal schedule list` shows) has under a workflow."""
    return sorted([s.id async for s in await client.list_schedules() if s.id.startswith(f"{prefix}.")])


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert body["code"] == code, body
    return body


async def test_an_every_second_schedule_starts_runs_that_complete(
    api: httpx.AsyncClient, client: Client, fresh: Callable[[str], str]
) -> None:
    name = fresh("ticker")
    await _register(api, ticker(name))
    shown = await _schedule(api, f"{name}.fast")
    assert shown["synced"] is True and shown["every"] == "PT1S" and shown["paused"] is False
    assert len(shown["next_runs"]) == 5 and shown["revision"] == 1 and shown["params"] == {"label": "one"}
    runs = await eventually(lambda: _runs(api, name, "completed"), within=30, what="two scheduled runs",
                            until=lambda items: len(items) >= 2)  # fmt: skip
    detail = (await api.get(f"/executions/{runs[0]['execution_id']}")).json()
    assert detail["workflow_id"] == name and detail["revision"] == 1
    assert detail["output"] == {"label": "one", "revision": 1}
    assert detail["started_by"] == "schedule:fast"
    described = await client.get_schedule_handle(f"{name}.fast").describe()
    assert described.info.num_actions >= 2
    listed = await api.get("/schedules", params={"workflow_id": name})
    assert [item["id"] for item in listed.json()["items"]] == [f"{name}.fast"]
    assert listed.json()["items"][0]["recent_runs"][0]["execution_id"].startswith(f"{name}-fast-")


def _desired(entry: dict[str, Any]) -> DesiredSchedule:
    run_input = RunInput(definition={}, revision=1)
    return DesiredSchedule(workflow_id="w", key="k", entry=ScheduleEntry.model_validate(entry), run_input=run_input,
                           task_queue="q", execution_timeout=None, content_hash="h")  # fmt: skip


def test_a_backfill_counts_the_fires_temporal_starts() -> None:
    """Both ends count; intervals fall on the epoch plus the offset; crons in their time zone (seen on the server)."""
    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    assert backfill_runs(_desired({"every": "1s"}), at, at + timedelta(seconds=5)) == 6
    half = at + timedelta(milliseconds=500)
    assert backfill_runs(_desired({"every": "1s"}), half, half + timedelta(seconds=5)) == 5
    offset = _desired({"every": "1m", "offset": "30s"})
    assert backfill_runs(offset, at, at + 3 * minute) == 3
    assert backfill_runs(offset, at - minute / 2, at + 2.5 * minute) == 4
    assert backfill_runs(offset, at + timedelta(seconds=31), at + timedelta(seconds=89)) == 0
    every_minute = _desired({"cron": "* * * * *"})
    assert backfill_runs(every_minute, at, at + 2 * minute) == 3
    assert backfill_runs(every_minute, at + timedelta(seconds=1), at + 2 * minute + timedelta(seconds=1)) == 2
    paris = _desired({"cron": "0 2 * * *", "timezone": "Europe/Paris"})  # 01:00 UTC in winter
    assert backfill_runs(paris, at, at + 2 * timedelta(days=1)) == 3
    assert backfill_runs(_desired({"every": "1s"}), at, at + timedelta(seconds=999)) == 1000
    for entry, span in (({"every": "1s"}, timedelta(seconds=1000)), ({"cron": "* * * * *"}, timedelta(days=1))):
        with pytest.raises(ValidationFailedError, match="at most 1000 runs"):
            backfill_runs(_desired(entry), at, at + span)
    with pytest.raises(ValidationFailedError, match="end must be after its start"):
        backfill_runs(every_minute, at, at)


def _fire_time(name: str, execution_id: str) -> datetime:
    """When a scheduled run was due: Temporal appends it to the action's workflow id."""
    return datetime.fromisoformat(execution_id.removeprefix(f"{name}-fast-"))


@SQLITE_ONLY
async def test_pause_trigger_backfill_and_unpause_do_what_they_say(
    api: httpx.AsyncClient, fresh: Callable[[str], str]
) -> None:
    name = fresh("steer")
    sid = f"{name}.fast"
    await _register(api, ticker(name))
    await eventually(lambda: _schedule(api, sid), until=lambda s: s["fired"] >= 1, within=10, what="a first fire")
    paused = await api.post(f"/schedules/{sid}/pause", json={"note": "maintenance"})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["paused"], paused.json()["note"]) == (True, "paused by local: maintenance")
    await asyncio.sleep(0.5)  # a fire under way when the pause landed
    base = (await _schedule(api, sid))["fired"]
    await asyncio.sleep(3)  # three fires' worth
    shown = await _schedule(api, sid)
    assert (shown["fired"], shown["paused"], shown["note"]) == (base, True, "paused by local: maintenance")
    await eventually(lambda: _runs(api, name), until=lambda r: len(r) == base, within=5, what="every fire listed")
    assert len(await _runs(api, name)) == base  # and not one more

    triggered = await api.post(f"/schedules/{sid}/trigger")
    assert triggered.status_code == 202, triggered.text
    assert triggered.json() == {"schedule_id": sid, "action": "trigger", "runs": 1}
    await eventually(lambda: _runs(api, name), until=lambda r: len(r) == base + 1, within=5, what="the triggered run")
    await asyncio.sleep(1)
    assert len(await _runs(api, name)) == base + 1
    assert (await _schedule(api, sid))["paused"] is True  # a trigger does not unpause

    start = datetime.now(UTC).replace(microsecond=500_000) - timedelta(seconds=30)  # 5 s between fires: 5 fires
    body = {"start": start.isoformat(), "end": (start + timedelta(seconds=5)).isoformat()}
    backfilled = await api.post(f"/schedules/{sid}/backfill", json=body)
    assert backfilled.status_code == 202, backfilled.text
    assert backfilled.json() == {"schedule_id": sid, "action": "backfill", "runs": 5}
    wanted = base + 1 + 5
    runs = await eventually(lambda: _runs(api, name), until=lambda r: len(r) >= wanted, within=10,
                            what="the backfilled runs")  # fmt: skip
    due = sorted(_fire_time(name, run["execution_id"]) for run in runs)
    in_range = [moment for moment in due if start <= moment <= start + timedelta(seconds=5)]
    assert len(in_range) == 5 and len(due) == wanted, due
    await eventually(lambda: _runs(api, name, "completed"), until=lambda r: len(r) >= wanted, within=15,
                     what="the backfilled runs completing")  # fmt: skip

    too_long = {"start": (start - timedelta(hours=1)).isoformat(), "end": start.isoformat()}
    refused = _assert_problem(await api.post(f"/schedules/{sid}/backfill", json=too_long), 422, "validation_failed")
    assert "at most 1000 runs" in refused["detail"]
    backwards = {"start": body["end"], "end": body["start"]}
    _assert_problem(await api.post(f"/schedules/{sid}/backfill", json=backwards), 422, "validation_failed")
    naive = {"start": "2026-01-01T00:00:00", "end": "2026-01-01T00:00:05"}
    assert (await api.post(f"/schedules/{sid}/backfill", json=naive)).status_code == 422

    unpaused = await api.post(f"/schedules/{sid}/unpause", json={"note": "done"})
    assert unpaused.status_code == 200, unpaused.text
    assert (unpaused.json()["paused"], unpaused.json()["note"]) == (False, "unpaused by local: done")
    fired = (await _schedule(api, sid))["fired"]
    await eventually(lambda: _schedule(api, sid), until=lambda s: s["fired"] >= fired + 2, within=10,
                     what="fires resuming after the unpause")  # fmt: skip


@SQLITE_ONLY
async def test_a_changed_file_resets_the_schedule_and_an_unchanged_one_keeps_a_manual_pause(
    api: httpx.AsyncClient, client: Client, workflows_dir: Path, fresh: Callable[[str], str]
) -> None:
    name = fresh("edited")
    sid = f"{name}.fast"
    path = workflows_dir / f"{name}.yaml"
    path.write_text(ticker(name, "one"))
    reloaded = await api.post("/workflows/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert name in [r["workflow_id"] for r in reloaded.json()["registered"]]
    assert (await _schedule(api, sid))["synced"] is True  # the reload synced it, no periodic round needed
    await eventually(lambda: _runs(api, name, "completed"), within=15, what="a run of revision 1")

    assert (await api.post(f"/schedules/{sid}/pause", json={"note": "hold"})).status_code == 200
    assert (await api.post("/workflows/reload")).status_code == 200  # the unchanged file again
    assert (await _register(api, ticker(name, "one")))["created"] is False  # the unchanged YAML through the API
    shown = await _schedule(api, sid)
    assert (shown["paused"], shown["note"], shown["revision"]) == (True, "paused by local: hold", 1)

    second = await _register(api, ticker(name, "two"))
    assert (second["created"], second["revision"]) == (True, 2)
    shown = await _schedule(api, sid)
    assert (shown["paused"], shown["revision"], shown["params"]) == (False, 2, {"label": "two"})  # reset to the YAML
    runs = await eventually(lambda: _runs(api, name, "completed"), within=15, what="a run of revision 2",
                            until=lambda items: any(r["revision"] == 2 for r in items))  # fmt: skip
    newest = next(r for r in runs if r["revision"] == 2)
    detail = (await api.get(f"/executions/{newest['execution_id']}")).json()
    assert detail["output"] == {"label": "two", "revision": 2} and detail["started_by"] == "schedule:fast"

    third = await _register(api, ticker(name, "two", paused=True))
    assert third["revision"] == 3
    shown = await _schedule(api, sid)
    assert (shown["paused"], shown["note"], shown["revision"]) == (True, "paused in the YAML", 3)

    path.unlink()  # the directory watcher notices (every 2 s) and the schedule goes; the workflow stays
    await eventually(lambda: _exists(client, sid), until=lambda exists: not exists, within=15,
                     what="the schedule of a removed file being deleted")  # fmt: skip
    assert (await api.get(f"/workflows/{name}")).status_code == 200
    _assert_problem(await api.get(f"/schedules/{sid}"), 404, "not_found")


@SQLITE_ONLY
async def test_deleting_the_workflow_deletes_its_schedules(
    api: httpx.AsyncClient, client: Client, fresh: Callable[[str], str]
) -> None:
    name = fresh("doomed")
    sid = f"{name}.fast"
    await _register(api, ticker(name))
    await eventually(lambda: _schedule(api, sid), until=lambda s: s["fired"] >= 1, within=10, what="a first fire")
    await eventually(lambda: _listed_ids(client, name), until=lambda ids: ids == [sid], within=10,
                     what="the schedule listed")  # fmt: skip
    deleted = await api.delete(f"/workflows/{name}", params={"force": True})
    assert deleted.status_code == 204, deleted.text
    assert await _exists(client, sid) is False  # gone before the answer
    _assert_problem(await api.get(f"/schedules/{sid}"), 404, "not_found")
    await eventually(lambda: _listed_ids(client, name), until=lambda ids: ids == [], within=10,
                     what="the schedule leaving Temporal's list")  # fmt: skip


async def test_concurrent_syncs_leave_exactly_one_schedule(
    client: Client, settings: Settings, fresh: Callable[[str], str]
) -> None:
    name = fresh("racing")
    sid = f"{name}.fast"
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            await register_source(session=session, text=ticker(name, paused=True))
        reports = await asyncio.gather(*(
            sync_workflow(sessions=sessions, temporal=client, settings=settings, workflow_id=name) for _ in range(3)
        ))  # fmt: skip
        assert [r.failed for r in reports] == [{}, {}, {}]
        assert sorted(r.done[sid] for r in reports) == ["created", "unchanged", "unchanged"]

        async with sessions() as session:  # a new revision, then two "API processes" reconcile everything at once
            await register_source(session=session, text=ticker(name, "two", paused=True))
        syncers = [ScheduleSyncer(sessions=sessions, connection=TemporalConnection(settings, client), settings=settings)
                   for _ in range(2)]  # fmt: skip
        rounds = await asyncio.gather(*(syncer.everything() for syncer in syncers))
        assert all(r is not None and r.failed == {} and r.done[sid] in ("reset", "unchanged") for r in rounds)
        assert "reset" in [r.done[sid] for r in rounds if r is not None]
    finally:
        await engine.dispose()
    described = await client.get_schedule_handle(sid).describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    run_input = client.data_converter.payload_converter.from_payload(action.args[0])
    assert (run_input["revision"], run_input["params"]) == (2, {"label": "two"})
    await eventually(lambda: _listed_ids(client, name), until=lambda ids: ids == [sid], within=10,
                     what="exactly one schedule listed")  # fmt: skip


async def test_a_stored_schedule_the_current_contract_refuses_is_skipped_not_fatal(
    client: Client, settings: Settings, fresh: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """A revision stored by an older release (croniter allowed 6 fields) must not stop every other schedule."""
    old, good = fresh("legacy"), fresh("good")
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            await register_source(session=session, text=ticker(old, paused=True))
            await register_source(session=session, text=ticker(good, paused=True))
            stored = await repository.get_revision(session=session, workflow_id=old, number=1)
            assert stored is not None
            entry = {**stored.definition["schedules"][0], "every": None, "cron": "0 0 9 * * *"}
            stored.definition = {**stored.definition, "schedules": [entry]}
            await session.commit()
        with caplog.at_level(logging.ERROR, logger="workflow_engine.api.schedules"):
            report = await sync_all(sessions=sessions, temporal=client, settings=settings)
        async with sessions() as session:
            assert [d.id for d in await desired_schedules(session, settings)] == [f"{good}.fast"]
    finally:
        await engine.dispose()
    assert report.done == {f"{good}.fast": "created"} and report.failed == {}
    assert f"schedules of {old} not synced" in caplog.text
    assert await _exists(client, f"{old}.fast") is False


BAD = {
    "bad cron": ('    cron: "every day"\n', "schedules[0].cron", 6, "invalid cron expression"),
    "6-field cron": ('    cron: "0 0 9 * * 1-5"\n', "schedules[0].cron", 6, "invalid cron expression"),
    "cron Temporal refuses": ('    cron: "0 9 L * *"\n', "schedules[0].cron", 6, "invalid cron expression"),
    "bad time zone": ("    every: 1h\n    timezone: Mars/Olympus\n", "schedules[0].timezone", 7, "unknown time zone"),
    "params": ("    every: 1h\n    params: {label: 7}\n", "schedules[0].params.label", 7, "expected string"),
    "unknown param": ("    every: 1h\n    params: {ghost: 1}\n", "schedules[0].params.ghost", 7, "unknown parameter"),
    "duplicate id": ("    every: 1h\n  - id: fast\n    cron: '@daily'\n", "schedules[1].id", 7,
                     "duplicate schedule id 'fast'"),
    "duplicate index": ("    every: 1h\n  - id: '2'\n    every: 2h\n  - every: 3h\n", "schedules[2]", 9,
                        "duplicate schedule id '2'"),
}  # fmt: skip
BAD_BASE = """\
name: NAME
params:
  label: {type: string, default: x}
schedules:
  - id: fast
ENTRY\
tasks:
  - id: say
    activity_type: log
"""


@SQLITE_ONLY
async def test_bad_schedules_are_located_422s_and_register_nothing(
    api: httpx.AsyncClient, client: Client, fresh: Callable[[str], str]
) -> None:
    for case, (entry, path, line, message) in BAD.items():
        name = fresh("bad")
        text = BAD_BASE.replace("NAME", name).replace("ENTRY", entry)
        response = await api.post("/workflows", json={"yaml": text, "file": "bad.yaml"})
        body = _assert_problem(response, 422, "validation_failed")
        located = [(e["path"], e["line"], e["file"]) for e in body["errors"] if message in e["message"]]
        assert located == [(path, line, "bad.yaml")], (case, body["errors"])
        assert (await api.get(f"/workflows/{name}")).status_code == 404, case
        assert await _exists(client, f"{name}.fast") is False, case


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


async def test_viewers_read_schedules_and_operators_change_them(
    authed_api: httpx.AsyncClient, client: Client, fresh: Callable[[str], str]
) -> None:
    name = fresh("roles")
    sid = f"{name}.fast"
    await _register(authed_api, ticker(name, paused=True), _auth("root"))
    assert (await authed_api.get("/schedules")).status_code == 401
    listed = await authed_api.get("/schedules", params={"workflow_id": name}, headers=_auth("viewer"))
    assert listed.status_code == 200 and [i["id"] for i in listed.json()["items"]] == [sid]
    assert (await _schedule(authed_api, sid, _auth("viewer")))["paused"] is True
    for action in ("pause", "unpause", "trigger"):
        _assert_problem(await authed_api.post(f"/schedules/{sid}/{action}", headers=_auth("viewer")), 403, "forbidden")
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:05Z"}
    refused = await authed_api.post(f"/schedules/{sid}/backfill", json=window, headers=_auth("viewer"))
    _assert_problem(refused, 403, "forbidden")
    assert (await client.get_schedule_handle(sid).describe()).info.num_actions == 0
    paused = await authed_api.post(f"/schedules/{sid}/pause", json={"note": "on call"}, headers=_auth("operator"))
    assert paused.status_code == 200 and paused.json()["note"] == "paused by otto: on call"
    for unknown in ("nope.fast", f"{name}.ghost", "no-dot"):
        _assert_problem(await authed_api.get(f"/schedules/{unknown}", headers=_auth("viewer")), 404, "not_found")
        answer = await authed_api.post(f"/schedules/{unknown}/pause", headers=_auth("operator"))
        _assert_problem(answer, 404, "not_found")
    await eventually(lambda: _listed_ids(client, name), until=lambda ids: ids == [sid], within=10,
                     what="`temporal schedule list` showing the schedule")  # fmt: skip


async def _cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workflow_engine", "schedules", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return int(process.returncode or 0), output.decode()


async def test_the_cli_lists_pauses_and_triggers_through_a_running_api(
    served: str, tmp_path: Path, fresh: Callable[[str], str]
) -> None:
    name = fresh("cli")
    sid = f"{name}.fast"
    async with httpx.AsyncClient(base_url=served) as http:
        await _register(http, ticker(name, paused=True))
        env = {**os.environ, "API_URL": served, "PYTHONPATH": str(REPO_ROOT)}
        code, output = await _cli(env, tmp_path, "list", "--workflow", name)
        assert code == 0, output
        assert output.startswith(f"{sid}  every PT1S (UTC)  paused  next: ") and "fired: 0" in output
        code, output = await _cli(env, tmp_path, "unpause", sid, "--note", "from the cli")
        assert (code, output.strip()) == (0, f"{sid}: active (unpaused by local: from the cli)"), output
        code, output = await _cli(env, tmp_path, "pause", sid, "-m", "stop")
        assert (code, output.strip()) == (0, f"{sid}: paused (paused by local: stop)"), output
        fired = (await _schedule(http, sid))["fired"]
        code, output = await _cli(env, tmp_path, "trigger", sid)
        assert (code, output.strip()) == (0, f"{sid}: 1 run starting"), output
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        until = (start + timedelta(seconds=2)).isoformat()
        code, output = await _cli(env, tmp_path, "backfill", sid, "--start", start.isoformat(), "--end", until)
        assert (code, output.strip()) == (0, f"{sid}: 3 run(s) starting"), output
        await eventually(lambda: _schedule(http, sid), until=lambda s: s["fired"] >= fired + 4, within=10,
                         what="the triggered and backfilled runs")  # fmt: skip
        code, output = await _cli(env, tmp_path, "list")
        assert code == 0 and f"{sid}  every PT1S (UTC)  paused" in output, output
        code, output = await _cli(env, tmp_path, "pause", f"{name}.ghost")
        assert code == 1 and f"HTTP 404 not_found: schedule '{name}.ghost' not found" in output, output


class _LateTemporal:
    """A port where Temporal is missing until `arrive()`: then it forwards every connection to the real one."""

    def __init__(self, target: str) -> None:
        """Take a free port for later; `target` is the real Temporal (host:port)."""
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self.port = free_port()
        self._server: asyncio.Server | None = None

    async def arrive(self) -> None:
        """Start forwarding from the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        """Stop forwarding."""
        if self._server is not None:
            self._server.close()


async def test_a_registration_during_a_temporal_outage_is_stored_and_scheduled_once_temporal_is_back(
    client: Client, settings: Settings, fresh: Callable[[str], str]
) -> None:
    name = fresh("outage")
    sid = f"{name}.fast"
    late = _LateTemporal(client.service_client.config.target_host)
    away = settings.model_copy(update={"temporal_address": f"127.0.0.1:{late.port}", "schedules_sync_seconds": 0.3})
    app = create_app(away)  # no client handed in: it connects on first use, as `python -m workflow_engine api` does
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
        ):
            started = time.monotonic()
            registered = await http.post("/workflows", content=ticker(name, paused=True), headers=YAML)
            assert registered.status_code == 201, registered.text
            assert time.monotonic() - started < 5
            assert (await http.get(f"/workflows/{name}")).status_code == 200
            _assert_problem(await http.get(f"/schedules/{sid}"), 503, "unavailable")
            assert await _exists(client, sid) is False
            await late.arrive()
            await eventually(lambda: _exists(client, sid), within=15, what="the periodic sync creating the schedule")
            shown = await _schedule(http, sid)
            assert (shown["synced"], shown["paused"], shown["revision"]) == (True, True, 1)
    finally:
        await late.close()


async def test_a_registration_answers_in_bounded_time_while_temporal_hangs(
    client: Client, settings: Settings, fresh: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule_sync, "CHANGE_SYNC_WAIT", 1.0)  # 5 s in production
    name = fresh("hung")
    proxy = TemporalProxy(client.service_client.config.target_host)
    hung = await Client.connect(await proxy.start(), namespace=settings.temporal_namespace)
    app = create_app(settings, temporal_client=hung)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
        ):
            assert (await http.get("/health")).status_code == 200
            proxy.hang()
            started = time.monotonic()
            registered = await http.post("/workflows", content=ticker(name, paused=True), headers=YAML)
            elapsed = time.monotonic() - started
            assert registered.status_code == 201, registered.text
            assert 1.0 <= elapsed < 3, elapsed  # not the 30 s of a list, a create and an update timing out
            assert (await http.get(f"/workflows/{name}")).status_code == 200
    finally:
        await proxy.stop()


async def test_a_schedule_of_another_deployment_is_left_alone(
    client: Client, settings: Settings, fresh: Callable[[str], str]
) -> None:
    name = fresh("shared")
    sid = f"{name}.fast"
    other = settings.model_copy(update={"temporal_task_queue": f"{settings.temporal_task_queue}-other"})
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            await register_source(session=session, text=ticker(name, paused=True))
        ours = await sync_workflow(sessions=sessions, temporal=client, settings=settings, workflow_id=name)
        assert ours.done == {sid: "created"}
        # a second deployment (its own task queue) registers the same workflow name in the same namespace
        theirs = await sync_workflow(sessions=sessions, temporal=client, settings=other, workflow_id=name)
        assert sid in theirs.failed and "belongs to the deployment on task queue" in theirs.failed[sid], theirs
        with pytest.raises(ScheduleOwnedElsewhere):  # nor deleted by the other deployment
            await delete_schedule(client, sid, other.temporal_task_queue)
    finally:
        await engine.dispose()
    described = await client.get_schedule_handle(sid).describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow) and action.task_queue == settings.temporal_task_queue
