"""docs/quickstart.md run as written: every `sh` block, in order, in a fresh copy of the repository.

The commands are read from the markdown, so the page cannot drift from what works. A line marked
`# keeps running` (a server the page starts in a terminal of its own) runs in the background; the
page's own `until ...` loops do the waiting. Only the ports are changed, to free ones, so the test
never meets another server on this machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO_ROOT
from workflow_engine.settings import Settings

QUICKSTART = REPO_ROOT / "docs" / "quickstart.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
KEEPS_RUNNING = "# keeps running"
SETTINGS_NAMES = {name.upper() for name in Settings.model_fields}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy_repository(target: Path) -> None:
    """Copy what a clone holds (tracked and not ignored files), not this checkout's venv or data."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())


def script(markdown: str, ports: dict[str, int]) -> str:
    """Turn the page's `sh` blocks into one bash script, on the given ports instead of the defaults."""
    lines = ["set -euo pipefail"]
    for number, block in enumerate(BLOCK.findall(markdown)):
        for default, port in ports.items():
            block = block.replace(default, str(port))
        lines.append(f"echo '::block {number}::'")
        for line in block.splitlines():
            if KEEPS_RUNNING in line:
                command = line.split(KEEPS_RUNNING)[0].rstrip()
                lines.append(f"{command} > background-{number}.log 2>&1 &")
            else:
                lines.append(line)
    return "\n".join(lines) + "\n"


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    markdown = QUICKSTART.read_text()
    blocks = BLOCK.findall(markdown)
    assert any("/executions/workflows/order_processing_workflow/execute" in b for b in blocks)
    assert sum(KEEPS_RUNNING in b for b in blocks) == 3  # Temporal, the worker, the API
    clone = tmp_path / "workflow-engine"
    _copy_repository(clone)
    ports = {"7233": _free_port(), "7243": _free_port(), "8080": _free_port(), "8000": _free_port()}
    # the settings the page relies on come from .env (copied from .env.example); only the ports differ
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_NAMES and key != "VIRTUAL_ENV"}
    env |= {
        "TEMPORAL_ADDRESS": f"localhost:{ports['7233']}",
        "TEMPORAL_HTTP_PORT": str(ports["7243"]),
        "TEMPORAL_UI_PORT": str(ports["8080"]),
        "API_PORT": str(ports["8000"]),
        "UVICORN_PORT": str(ports["8000"]),
        "PATH": os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(REPO_ROOT))),
    }
    (clone / "quickstart.sh").write_text(script(markdown, ports))
    process = subprocess.Popen(
        ["bash", "quickstart.sh"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=420)
    finally:
        for stop in (signal.SIGTERM, signal.SIGKILL):  # the servers the page left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, stop)
            time.sleep(3)
        process.wait(timeout=30)
    text = output.decode(errors="replace")
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(clone.glob("background-*.log")))
    assert process.returncode == 0, text[-6000:] + logs
    sections = dict(re.findall(r"::block (\d+)::\n(.*?)(?=::block \d+::|\Z)", text, re.DOTALL))
    final = [sections[str(n)] for n, b in enumerate(blocks) if '"status":"completed"' in b]
    assert final and '"status":"completed"' in final[-1] and '"manager_approval"' in final[-1], text[-6000:]
    own = sections[str(len(blocks) - 1)]  # the custom workflow: completed online, a named DNS failure offline
    assert '"status":"completed"' in own or "DNS lookup of 'httpbin.org' failed" in own, own
