"""The `shell` activity: run one command (argv, never a shell) in its own process group, capped and killable."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import math
import os
import shlex
import signal
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...settings import Settings
from ..types import ActivityInput, ActivityResult
from . import tasklogs
from .configs import ConfigProblem, ShellSpec

INHERITED_ENV = ("PATH", "HOME", "LANG")
TAIL_LINES = 20
TAIL_CHARS = 2000
_CHUNK = 64 * 1024
_POLL = 0.05


def _fail(message: str, error_type: str, *, non_retryable: bool = False, **details: Any) -> ApplicationError:
    return ApplicationError(
        message, {"attempt": activity.info().attempt, **details}, type=error_type, non_retryable=non_retryable
    )


@dataclass
class ShellConfig:
    """The validated `config` of a `shell` task, with the environment the command gets."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    timeout: float
    max_output_bytes: int

    @classmethod
    def parse(cls, config: dict[str, Any]) -> ShellConfig:
        """Validate a task config against `ShellSpec`; raise a non-retryable `ConfigError` on any problem."""
        try:
            spec = ShellSpec.check(config)
        except ConfigProblem as exc:
            raise _fail(str(exc), "ConfigError", non_retryable=True) from None
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        env.setdefault("PATH", os.defpath)
        env.update(spec.env)
        return cls(argv=spec.argv, env=env, cwd=spec.cwd, timeout=spec.timeout, max_output_bytes=spec.max_output_bytes)


class _Capture:
    """Reads one pipe to EOF, keeping the first `limit` bytes and the last few KiB, so the child never blocks.

    Every line also goes to the task attempt's log (`tasklogs.py`) as it comes, on the stream `name`.
    """

    def __init__(self, limit: int, name: str = "stdout") -> None:
        self.limit = limit
        self.name = name
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.head = bytearray()
        self.tail = bytearray()
        self.size = 0

    async def consume(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            self.size += len(chunk)
            if len(self.head) < self.limit:
                self.head += chunk[: self.limit - len(self.head)]
            self.tail = (self.tail + chunk)[-4 * TAIL_CHARS :]
            tasklogs.write(self.name, self._decoder.decode(chunk))
        tasklogs.write(self.name, self._decoder.decode(b"", final=True))

    @property
    def truncated(self) -> bool:
        return self.size > self.limit

    def text(self) -> str:
        return self.head.decode("utf-8", errors="replace")

    def tail_text(self) -> str:
        """Return the last lines of the stream (at most TAIL_LINES lines and TAIL_CHARS characters)."""
        text = self.tail.decode("utf-8", errors="replace").rstrip()
        return "\n".join(text.splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


def _signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to the process group; return False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    """Return whether any process of the group is still running (zombies awaiting their reaper do not count)."""
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs: the group exists, assume it runs
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


async def _exited(process: asyncio.subprocess.Process, within: float) -> bool:
    """Wait up to `within` seconds for the command itself to exit; return whether it has.

    `returncode` is set as soon as the command exits, whereas `process.wait()` also waits for its pipes to close,
    which a background child may keep open: so poll `returncode`, and use `wait()` only to wake up early.
    """
    if process.returncode is None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        closed = asyncio.ensure_future(process.wait())
        try:
            while process.returncode is None and (remaining := deadline - loop.time()) > 0:
                await asyncio.wait([closed], timeout=min(_POLL, remaining))
        finally:
            closed.cancel()
    return process.returncode is not None


async def _kill_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the command's process group, SIGKILL whatever is left after `grace` seconds, reap the leader."""
    pgid = process.pid
    if _signal_group(pgid, signal.SIGTERM):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            if await _exited(process, deadline - loop.time()) and not _group_alive(pgid):
                break
            await asyncio.sleep(_POLL)
        else:
            _signal_group(pgid, signal.SIGKILL)
    await _exited(process, math.inf)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _heartbeat(*details: Any) -> None:
    """Heartbeat when running as an activity (cancellation is delivered through heartbeats)."""
    with contextlib.suppress(RuntimeError):
        activity.heartbeat(*details)


class ShellActivities:
    """Holds the settings the `shell` activity needs; its bound methods are the activities."""

    def __init__(self, settings: Settings, *, heartbeat_interval: float = 2.0, kill_grace: float = 2.0) -> None:
        """Remember the settings, how often to heartbeat and how long SIGTERM gets before SIGKILL."""
        self.settings = settings
        self.heartbeat_interval = heartbeat_interval
        self.kill_grace = kill_grace

    @activity.defn(name="shell")
    async def shell(self, task: ActivityInput) -> ActivityResult:
        """Run the command and return `{exit_code, stdout, stderr, stdout_truncated, stderr_truncated}`."""
        if not self.settings.shell_enabled:
            raise _fail(
                "shell tasks are disabled on this worker; set SHELL_ENABLED=true to allow them",
                "ShellDisabled",
                non_retryable=True,
            )
        config = ShellConfig.parse(task.config)
        program = shlex.quote(config.argv[0])
        try:
            process = await asyncio.create_subprocess_exec(
                *config.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=config.env,
                cwd=config.cwd,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise _fail(f"cannot run {program}: {exc}", "ShellSpawnError", non_retryable=True) from None
        except OSError as exc:
            raise _fail(f"cannot run {program}: {exc}", "ShellSpawnError") from None
        stdout, stderr = _Capture(config.max_output_bytes, "stdout"), _Capture(config.max_output_bytes, "stderr")
        readers = [
            asyncio.create_task(stdout.consume(process.stdout)),
            asyncio.create_task(stderr.consume(process.stderr)),
        ]
        timed_out = False
        try:
            try:
                async with asyncio.timeout(config.timeout):
                    await self._wait(process, stdout, stderr)
            except TimeoutError:
                timed_out = True
        finally:
            # Always: on success this ends stray background children, on timeout/cancel the command itself.
            await _kill_group(process, self.kill_grace)
            _, pending = await asyncio.wait(readers, timeout=self.kill_grace)
            for reader in pending:  # a grandchild that left the group still holds the pipe
                reader.cancel()
        tail = stderr.tail_text()
        if timed_out:
            message = f"{program} did not finish within {config.timeout:g}s; its process group was killed"
            raise _fail(message + (f"; stderr:\n{tail}" if tail else ""), "ShellTimeout", stderr=tail)
        code = process.returncode if process.returncode is not None else -1
        if code != 0:
            reason = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            message = f"{program} {reason}" + (f"; stderr:\n{tail}" if tail else "")
            raise _fail(message, "ShellExitError", non_retryable=True, exit_code=code, stderr=tail)
        output = {
            "exit_code": code,
            "stdout": stdout.text(),
            "stderr": stderr.text(),
            "stdout_truncated": stdout.truncated,
            "stderr_truncated": stderr.truncated,
        }
        return ActivityResult(output=output, attempt=activity.info().attempt)

    async def _wait(self, process: asyncio.subprocess.Process, stdout: _Capture, stderr: _Capture) -> None:
        """Wait for the command itself to exit, heartbeating every `heartbeat_interval` seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not await _exited(process, self.heartbeat_interval):
            elapsed = round(loop.time() - started, 1)
            _heartbeat({"pid": process.pid, "elapsed_s": elapsed, "output_bytes": stdout.size + stderr.size})
