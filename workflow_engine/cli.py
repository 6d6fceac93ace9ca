"""Command line: `python -m workflow_engine COMMAND` (api, worker, migrate, prune-payloads, dev, validate, run, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from workflow_engine.dsl import DslError, parse_definition
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
    """Delete large payloads stored by reference for runs Temporal no longer has (removed by retention)."""
    from pydantic import TypeAdapter, ValidationError

    from workflow_engine.dsl.model import Duration
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
        finally:
            await engine.dispose()
        verb = "would delete" if dry_run else "deleted"
        console.print(
            f"checked {report.runs_checked} run(s) with payloads older than {older_than}; "
            f"{len(report.runs_gone)} no longer in Temporal; {verb} {report.deleted} payload(s)"
        )

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


@app.command()
def run(
    workflow_id: Annotated[str, typer.Argument(help="Registered workflow to start.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value (repeatable).")] = None,
) -> None:
    """Start a run through the API and print its execution id."""
    parameters = dict(_parse_param(p) for p in param or [])
    answer = _api("POST", f"/executions/workflows/{workflow_id}/execute", {"parameters": parameters})
    typer.echo(json.dumps(answer, indent=2))


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
