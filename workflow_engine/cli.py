"""Command line: `python -m workflow_engine COMMAND` (api, worker, migrate, prune-payloads, dev, validate, run, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from workflow_engine.cli_view import (
    FanOut,
    approvals_table,
    exit_code,
    fan_out_ids,
    graph_view,
    items_done,
    runs_table,
    status_lines,
    watch_view,
)
from workflow_engine.dsl import DslError, parse_definition
from workflow_engine.engine.types import RunStatus
from workflow_engine.settings import get_settings

if TYPE_CHECKING:
    from pydantic import ValidationError

app = typer.Typer(help="workflow-engine: durable YAML workflows on Temporal.", no_args_is_help=True)
console = Console()


def setting_errors(exc: ValidationError) -> list[str]:
    """Return one `setting NAME: problem` line per bad environment variable of a settings error."""
    return [f"setting {'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}" for error in exc.errors()]


@app.callback()
def _check_settings() -> None:
    """Refuse to start with invalid settings, naming each bad variable (no traceback)."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        for line in setting_errors(exc):
            console.print(f"[red]{line}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


def configure_logging() -> None:
    """Send every logger's records at LOG_LEVEL and above to stderr, one line each."""
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def api() -> None:
    """Run the REST API (registers every YAML file in WORKFLOWS_DIR at start)."""
    import uvicorn

    from workflow_engine.api import create_app
    from workflow_engine.api.auth import parse_tokens

    configure_logging()
    settings = get_settings()
    try:
        tokens = parse_tokens(settings.api_tokens)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="API_TOKENS") from None
    if not tokens and settings.api_host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[red]refusing to serve on {settings.api_host} without authentication[/]: "
            "set API_TOKENS (user:role+role:token, ...) or bind API_HOST to 127.0.0.1"
        )
        raise typer.Exit(2)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")


@app.command()
def worker() -> None:
    """Run a Temporal worker hosting the interpreter workflow and the built-in activities."""
    from workflow_engine.errors import EngineError
    from workflow_engine.plugins import PluginError
    from workflow_engine.worker import WorkerConfigError, run_worker

    configure_logging()

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(get_settings(), stop)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main())
    except (PluginError, WorkerConfigError, EngineError) as exc:
        console.print(f"[red]worker: {getattr(exc, 'message', exc)}[/]")
        raise typer.Exit(2) from None
    # The worker stopped cleanly. Leave now rather than through interpreter finalization, where the SDK's
    # native threads may still call into Python and abort the process (exit -6, "PyGILState_Release").
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head) to DATABASE_URL."""
    from workflow_engine.storage import upgrade_database

    configure_logging()
    asyncio.run(upgrade_database(get_settings().database_url))


@app.command("prune-payloads")
def prune_payloads(
    older_than: Annotated[
        str, typer.Option(help="Only payloads stored longer ago than this (30m, 12h, 7d, PT1H).")
    ] = "1d",
    dry_run: Annotated[bool, typer.Option(help="Report what would be deleted; delete nothing.")] = False,
) -> None:
    """Delete large payloads stored by reference for runs Temporal no longer has, and task logs older than that."""
    from pydantic import TypeAdapter, ValidationError

    from workflow_engine.dsl.durations import Duration
    from workflow_engine.engine.activities.tasklogs import prune_task_logs
    from workflow_engine.engine.client.connection import connect
    from workflow_engine.errors import EngineError
    from workflow_engine.payloads import prune_payloads as prune
    from workflow_engine.storage import create_engine, session_factory

    try:
        age = TypeAdapter(Duration).validate_python(older_than)
    except ValidationError as exc:
        console.print(f"[red]--older-than: {exc.errors()[0]['msg']}[/]")
        raise typer.Exit(2) from None
    settings = get_settings()

    async def _main() -> None:
        engine = create_engine(settings.database_url)
        try:
            report = await prune(await connect(settings), session_factory(engine), older_than=age, dry_run=dry_run)
            lines = await prune_task_logs(session_factory(engine), older_than=age, dry_run=dry_run)
        finally:
            await engine.dispose()
        verb = "would delete" if dry_run else "deleted"
        console.print(
            f"checked {report.runs_checked} run(s) with payloads older than {older_than}; "
            f"{len(report.runs_gone)} no longer in Temporal; {verb} {report.deleted} payload(s)"
        )
        console.print(f"{verb} {lines} task log line(s) older than {older_than}")

    try:
        asyncio.run(_main())
    except EngineError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(1) from None


@app.command()
def dev() -> None:
    """Run the whole local stack: Temporal dev server (UI :8080), worker and API; Ctrl-C stops all."""
    from workflow_engine.devserver import supervise

    raise typer.Exit(supervise(get_settings()))


@app.command()
def schema(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the schema.")] = Path(
        "workflows/schema.json"
    ),
) -> None:
    """Write the JSON Schema of the DSL (for editors' YAML support) to workflows/schema.json."""
    from workflow_engine.dsl.schema import json_schema_text

    output.write_text(json_schema_text(), encoding="utf-8")
    console.print(f"wrote {output}")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML definitions to check.", exists=False)],
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Check definitions and print every problem as file:line:col: message (warnings too; they do not fail)."""
    from workflow_engine.dsl.notices import definition_warnings
    from workflow_engine.engine.activities.modules import allowed_modules
    from workflow_engine.plugins import PluginError, activity_types

    modules = allowed_modules(get_settings())
    try:
        known = activity_types(get_settings())
    except PluginError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    problems: list[dict[str, object]] = []
    warnings: list[dict[str, object]] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            definition = parse_definition(text, file=str(path), activity_types=known, python_modules=modules)
        except OSError as exc:
            problems.append({"file": str(path), "line": None, "column": None, "path": "", "message": str(exc)})
        except DslError as exc:
            problems.extend(issue.as_dict() for issue in exc.issues)
        else:
            warnings.extend(notice.as_dict() for notice in definition_warnings(definition, text, file=str(path)))
    if output_format == "json":
        typer.echo(json.dumps({"valid": not problems, "errors": problems, "warnings": warnings}, indent=2))
    else:
        for p, kind in [*((p, "") for p in problems), *((w, "warning: ") for w in warnings)]:
            where = ":".join(str(x) for x in (p["file"], p["line"], p["column"]) if x is not None)
            prefix = f"{p['path']}: " if p["path"] else ""
            typer.echo(f"{where}: {kind}{prefix}{p['message']}")
        if not problems:
            console.print(f"[green]{len(files)} file(s) valid[/]")
    raise typer.Exit(1 if problems else 0)


@app.command()
def plan(
    file: Annotated[Path, typer.Argument(help="The YAML definition to plan.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value (repeatable).")] = None,
    params_json: Annotated[str | None, typer.Option("--params", help="Every param as one JSON object.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Show what a run would do with these params, without starting it: levels, skips, configs, worst-case time.

    Child workflows are looked up among the YAML files next to FILE. Invalid params exit with 2, listed as a
    start lists them.
    """
    from workflow_engine.cli_plan import plan_view, sibling_children
    from workflow_engine.dsl.plan import plan_run
    from workflow_engine.engine.activities.modules import allowed_modules
    from workflow_engine.plugins import PluginError, activity_types

    try:
        given = json.loads(params_json) if params_json is not None else {}
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params") from None
    if not isinstance(given, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--params")
    given.update(_parse_param(p) for p in param or [])
    raw = dict(p.partition("=")[::2] for p in param or [])
    modules = allowed_modules(get_settings())
    try:
        known = activity_types(get_settings())
        definition = parse_definition(file.read_text(encoding="utf-8"), file=str(file), activity_types=known,
                                      python_modules=modules)  # fmt: skip
        children = sibling_children(definition, file.parent, activity_types=known, python_modules=modules)
        # `-p version=1.0` of a string param is the text "1.0", not the number JSON would read
        given.update((k, v) for k, v in raw.items() if k in definition.params and
                     definition.params[k].type in ("string", "datetime"))  # fmt: skip
        planned = plan_run(definition, given, children=children, task_queue=get_settings().temporal_task_queue)
    except (OSError, PluginError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    except DslError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(planned.model_dump_json(indent=2))
    else:
        Console(width=max(console.width, 160) if not console.is_terminal else None).print(plan_view(planned))


@app.command("test")
def test_workflows(
    paths: Annotated[list[Path] | None, typer.Argument(help="Test files or folders (default: WORKFLOWS_DIR).")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")] = None,
    keyword: Annotated[str | None, typer.Option("-k", help="Only cases whose `file::name` contains this.")] = None,
    timeout: Annotated[float, typer.Option(help="Wall seconds one case may take.", min=1)] = 60.0,
) -> None:
    """Run workflow test files on Temporal's time-skipping test server (docs/testing.md); exit 1 if a case fails.

    A directory is searched for `tests/*.yaml` and for definitions with a `tests:` section. Sleeps, retry backoff
    and approval timeouts take no wall time. Invalid test files exit with 2, each problem as file:line.
    """
    from workflow_engine.cli_test import run_tests
    from workflow_engine.plugins import PluginError, activity_types

    settings = get_settings()
    try:
        known = activity_types(settings)
    except PluginError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    code = run_tests(settings, paths or [settings.workflows_dir], activity_types=known, junit=junit, keyword=keyword,
                     case_timeout=timeout)  # fmt: skip
    raise typer.Exit(code)


def _api(method: str, path: str, body: Any = None) -> Any:
    from workflow_engine.remote import ApiError, call

    try:
        return call(get_settings(), method, path, body)
    except ApiError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r}: use name=value (value is JSON when it parses, else text)")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _polls(execution_id: str, workflow_id: str, interval: float) -> Iterator[tuple[Any, dict[str, FanOut]]]:
    """Yield a run's detail and its fan-outs' progress every `interval` s, the last time once it has closed."""
    workflow = _api("GET", f"/workflows/{workflow_id}")
    fan_outs = fan_out_ids(workflow.get("source_yaml", ""))
    progress = {task_id: FanOut() for task_id in fan_outs}
    while True:
        detail = _api("GET", f"/executions/{execution_id}")
        # a fan-out run in the workflow counts its items in its state; only batched ones need the history read
        if any(t["id"] in fan_outs and t["status"] == "running" and t.get("items_total") is None
               for t in detail["tasks"]):  # fmt: skip
            progress = items_done(_api("GET", f"/executions/{execution_id}/history")["events"], fan_outs)
        yield detail, progress
        if RunStatus(detail["status"]).closed:
            return
        time.sleep(interval)


def _watch(execution_id: str, workflow_id: str, interval: float) -> Any:
    """Show a run until it closes (a live table on a terminal, a line per task change otherwise); return its detail."""
    view = Console(stderr=True)
    if view.is_terminal:
        detail: Any = None
        with Live(console=view, refresh_per_second=8) as live:
            for detail, progress in _polls(execution_id, workflow_id, interval):
                live.update(watch_view(detail, progress))
        return detail
    seen: dict[str, str] = {}
    view.print(f"run {execution_id} of {workflow_id}", highlight=False)
    last: tuple[Any, dict[str, FanOut]] = ({}, {})
    for last in _polls(execution_id, workflow_id, interval):
        for line in status_lines(seen, last[0]):
            view.print(line, soft_wrap=True, highlight=False, markup=False)
        seen = {task["id"]: task["status"] for task in last[0]["tasks"]}
    view.print(watch_view(*last))
    return last[0]


@app.command()
def run(
    workflow_id: Annotated[str, typer.Argument(help="Registered workflow to start.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value (repeatable).")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Show the tasks live until the run ends; exit 0/1/2 by outcome.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between two looks at the run (--watch).", min=0.1)] = 0.5,
) -> None:
    """Start a run through the API and print its execution id (with --watch: follow it and print its output).

    With --watch the exit code is 0 when the run completed, 1 when it failed (or an approval was rejected), 2 when
    it was cancelled, terminated or timed out.
    """
    parameters = dict(_parse_param(p) for p in param or [])
    answer = _api("POST", f"/executions/workflows/{workflow_id}/execute", {"parameters": parameters})
    if not watch:
        typer.echo(json.dumps(answer, indent=2))
        return
    try:
        detail = _watch(answer["execution_id"], workflow_id, interval)
    except KeyboardInterrupt:
        console.print(f"stopped watching; the run goes on: `show {answer['execution_id']}`, `cancel` to stop it")
        raise typer.Exit(130) from None
    if detail.get("error"):
        Console(stderr=True).print(f"[red]{detail['status']}: {escape(str(detail['error']))}[/]", soft_wrap=True)
    typer.echo(json.dumps(detail.get("output"), indent=2))
    raise typer.Exit(exit_code(detail["status"]))


@app.command("list")
def list_runs(
    workflow_id: Annotated[str | None, typer.Option("--workflow", "-w", help="Only runs of this workflow.")] = None,
    status_: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Only runs in this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs (newest first).", min=1, max=500)] = 20,
) -> None:
    """List recent runs, newest first: id, workflow, status, start and end."""
    pairs = [("limit", str(limit)), *([("workflow_id", workflow_id)] if workflow_id else [])]
    answer = _api("GET", f"/executions?{urlencode([*pairs, *(('status', s) for s in status_ or [])])}")
    if not answer["items"]:
        console.print("no runs")
        return
    console.print(runs_table(answer["items"]))


@app.command()
def show(execution_id: Annotated[str, typer.Argument(help="Execution to show.")]) -> None:
    """Show a run readably: its status, a table of its tasks, and its output or error."""
    detail = _api("GET", f"/executions/{execution_id}")
    console.print(watch_view(detail))
    if detail.get("error"):
        console.print(f"[red]error: {escape(str(detail['error']))}[/]", soft_wrap=True)
    if detail.get("output") is not None:
        console.print("output:")
        typer.echo(json.dumps(detail["output"], indent=2))


def _log_line(item: Any) -> str:
    return f"{item['logged_at']} {item['task_id']}#{item['attempt']} {item['stream']}: {item['line']}"


def _follow_logs(path: str, filters: dict[str, Any]) -> None:
    """Print log lines as the API streams them (SSE) until the run has closed; say how it ended."""
    from workflow_engine.remote import ApiError, stream_events

    try:
        for event, data in stream_events(get_settings(), f"{path}?{urlencode({**filters, 'follow': 'true'})}"):
            if event == "end":
                Console(stderr=True).print(f"run {data.get('status')}", highlight=False)
            else:
                typer.echo(_log_line(data))
    except ApiError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@app.command()
def logs(
    execution_id: Annotated[str, typer.Argument(help="The run whose task logs to print.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Only this task's lines.")] = None,
    attempt: Annotated[int | None, typer.Option(help="Only this attempt's lines.", min=1)] = None,
) -> None:
    """Print a run's task logs (stdout, stderr, logging, errors), oldest first; -f follows them live."""
    filters = {key: value for key, value in {"task_id": task, "attempt": attempt}.items() if value is not None}
    path = f"/executions/{execution_id}/logs"
    if follow:
        _follow_logs(path, filters)
        return
    after = 0
    while True:
        answer = _api("GET", f"{path}?{urlencode({**filters, 'after': after})}")
        for item in answer["items"]:
            typer.echo(_log_line(item))
        if answer.get("next_after") is None:
            return
        after = answer["next_after"]


@app.command()
def cancel(
    execution_id: Annotated[str, typer.Argument(help="The running execution to cancel.")],
    reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why (kept in the run's history).")] = None,
) -> None:
    """Ask a running run to cancel: running tasks are cancelled and its cleanup runs."""
    answer = _api("POST", f"/executions/{execution_id}/cancel", {"reason": reason})
    console.print(f"{answer['execution_id']}: {answer['detail']}")


@app.command()
def approvals() -> None:
    """List every approval waiting for a decision, with the command that decides it."""
    answer = _api("GET", "/approvals")
    if not answer["items"]:
        console.print("no approvals waiting")
        return
    console.print(approvals_table(answer["items"]))


@app.command()
def graph(workflow_id: Annotated[str, typer.Argument(help="Registered workflow to draw.")]) -> None:
    """Draw a workflow's task DAG in the terminal: one level per line group, arrows from each task's parents."""
    workflow = _api("GET", f"/workflows/{workflow_id}")
    console.print(graph_view(workflow, fan_out_ids(workflow.get("source_yaml", ""))))


@app.command()
def status(execution_id: Annotated[str, typer.Argument(help="Execution to show.")]) -> None:
    """Show a run's status, tasks, output and error."""
    typer.echo(json.dumps(_api("GET", f"/executions/{execution_id}"), indent=2))


@app.command()
def approve(
    execution_id: Annotated[str, typer.Argument(help="The waiting execution.")],
    task_id: Annotated[str, typer.Argument(help="The approval task.")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="Why.")] = None,
) -> None:
    """Approve (or with --reject, reject) a waiting approval task as the API token's user."""
    body = {"decision": "reject" if reject else "approve", "comment": comment}
    answer = _api("POST", f"/executions/{execution_id}/approvals/{task_id}", body)
    task = answer["task"]
    console.print(f"{task['id']}: {task['status']} ({len(task.get('approvals') or [])} decision(s) so far)")


@app.command()
def retry(
    execution_id: Annotated[str, typer.Argument(help="The closed run to retry.")],
    from_task: Annotated[
        str | None, typer.Option("--from-task", help="Run this task and its descendants again.")
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Run every task again (nothing is kept).")] = False,
    latest: Annotated[bool, typer.Option("--latest", help="Resume on the workflow's current revision.")] = False,
) -> None:
    """Resume a closed run from its failure (default), from a task, or restart it; print the new run."""
    if from_task is not None and restart:
        raise typer.BadParameter("--from-task and --restart exclude each other")
    mode = "restart" if restart else ("from_task" if from_task is not None else "from_failure")
    body = {"mode": mode, "task_id": from_task, "revision": "latest" if latest else "same"}
    typer.echo(json.dumps(_api("POST", f"/executions/{execution_id}/retry", body), indent=2))


schedules_app = typer.Typer(help="Schedules of registered workflows (through the API).", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")

_SCHEDULE_ID = typer.Argument(help="The schedule: <workflow>.<schedule id> (see `schedules list`).")


@schedules_app.command("list")
def schedules_list(
    workflow_id: Annotated[str | None, typer.Option("--workflow", "-w", help="Only this workflow's.")] = None,
) -> None:
    """List schedules: paused or not, next fire times, last runs."""
    answer = _api("GET", "/schedules" + (f"?workflow_id={workflow_id}" if workflow_id else ""))
    if not answer["items"]:
        console.print("no schedules")
    for item in answer["items"]:
        when = item["cron"] or f"every {item['every']}"
        state = "paused" if item["paused"] else ("active" if item["synced"] else "not synced yet")
        upcoming = ", ".join(item["next_runs"][:2]) or "-"
        typer.echo(f"{item['id']}  {when} ({item['timezone']})  {state}  next: {upcoming}  fired: {item['fired']}")


@schedules_app.command("pause")
def schedules_pause(
    schedule_id: Annotated[str, _SCHEDULE_ID],
    note: Annotated[str | None, typer.Option("--note", "-m", help="Why (shown in the Temporal UI).")] = None,
) -> None:
    """Pause a schedule until it is unpaused (or its YAML changes)."""
    answer = _api("POST", f"/schedules/{schedule_id}/pause", {"note": note})
    console.print(f"{answer['id']}: paused ({answer['note']})")


@schedules_app.command("unpause")
def schedules_unpause(
    schedule_id: Annotated[str, _SCHEDULE_ID],
    note: Annotated[str | None, typer.Option("--note", "-m", help="Why (shown in the Temporal UI).")] = None,
) -> None:
    """Let a paused schedule start runs again."""
    answer = _api("POST", f"/schedules/{schedule_id}/unpause", {"note": note})
    console.print(f"{answer['id']}: active ({answer['note']})")


@schedules_app.command("trigger")
def schedules_trigger(schedule_id: Annotated[str, _SCHEDULE_ID]) -> None:
    """Start one run now with the schedule's params."""
    answer = _api("POST", f"/schedules/{schedule_id}/trigger")
    console.print(f"{answer['schedule_id']}: {answer['runs']} run starting")


@schedules_app.command("backfill")
def schedules_backfill(
    schedule_id: Annotated[str, _SCHEDULE_ID],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 with a time zone, e.g. 2026-12-01T00:00:00Z.")],
    end: Annotated[str, typer.Option("--end", help="ISO 8601 with a time zone.")],
) -> None:
    """Start the runs the schedule would have started between --start and --end."""
    answer = _api("POST", f"/schedules/{schedule_id}/backfill", {"start": start, "end": end})
    console.print(f"{answer['schedule_id']}: {answer['runs']} run(s) starting")
