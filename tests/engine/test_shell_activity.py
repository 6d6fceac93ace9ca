"""The `shell` activity running real processes: argv handling, env, exit codes, caps, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.polling import eventually
from workflow_engine.engine.activities.shell import ShellActivities, ShellConfig
from workflow_engine.engine.types import ActivityInput
from workflow_engine.settings import Settings


def _acts(*, enabled: bool = True, heartbeat_interval: float = 5.0) -> ShellActivities:
    settings = Settings(_env_file=None, shell_enabled=enabled)
    return ShellActivities(settings, heartbeat_interval=heartbeat_interval, kill_grace=0.5)


async def _run(config: dict[str, Any], acts: ShellActivities | None = None) -> Any:
    result = await ActivityEnvironment().run((acts or _acts()).shell, ActivityInput(task_id="t", config=config))
    return result.output


async def _error(config: dict[str, Any], acts: ShellActivities | None = None) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await _run(config, acts)
    return caught.value


def _running(pid: int) -> bool:
    """Return whether `pid` is a live process (a zombie waiting for a reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def _wait_for_pids(path: Path, count: int) -> list[int]:
    return await eventually(
        lambda: _pids(path), until=lambda pids: len(pids) >= count, within=2, interval=0.01,
        what=f"{path} listing {count} pids",
    )  # fmt: skip


def _spawner(pidfile: Path, *, trap: str = "") -> list[str]:
    """Return a command whose shell starts two background sleeps, records all three pids and waits."""
    script = f"{trap} sleep 30 & echo $! >> {pidfile}; sleep 30 & echo $! >> {pidfile}; echo $$ >> {pidfile}; wait"
    return ["sh", "-c", script]


async def test_disabled_by_default() -> None:
    error = await _error({"command": ["echo", "hi"]}, _acts(enabled=False))
    assert error.type == "ShellDisabled" and error.non_retryable
    assert "SHELL_ENABLED" in error.message


async def test_argv_list_runs_without_a_shell() -> None:
    output = await _run({"command": ["echo", "hello", "world", 3]})
    assert output == {
        "exit_code": 0,
        "stdout": "hello world 3\n",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
    }


async def test_string_is_split_not_interpreted() -> None:
    output = await _run({"command": "echo 'a  b' ; echo $(id) `id` > /tmp/x && $HOME"})
    assert output["stdout"] == "a  b ; echo $(id) `id` > /tmp/x && $HOME\n"


async def test_env_is_minimal_and_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFE_TEST_LEAK", "leaked")
    script = 'printf "%s|%s|%s|%s" "$FOO" "$N" "${WFE_TEST_LEAK-unset}" "${PATH:+path}"'
    output = await _run({"command": ["sh", "-c", script], "env": {"FOO": "bar baz", "N": 5}})
    assert output["stdout"] == "bar baz|5|unset|path"


async def test_cwd_is_honoured(tmp_path: Path) -> None:
    output = await _run({"command": ["pwd"], "cwd": str(tmp_path)})
    assert output["stdout"] == f"{tmp_path}\n"


async def test_non_zero_exit_is_non_retryable_with_stderr_tail() -> None:
    script = "echo out; for i in $(seq 1 50); do echo line$i >&2; done; exit 3"
    error = await _error({"command": ["sh", "-c", script]})
    assert error.type == "ShellExitError" and error.non_retryable
    assert "exited with code 3" in error.message
    assert "line50" in error.message and "line31" in error.message and "line30" not in error.message
    assert error.details[0]["exit_code"] == 3


async def test_stderr_tail_is_capped_in_characters() -> None:
    error = await _error({"command": ["sh", "-c", "head -c 10000 /dev/zero | tr '\\0' e >&2; exit 1"]})
    assert error.message.count("e" * 100) and len(error.message) < 2200


async def test_output_caps_mark_truncation() -> None:
    script = "head -c 5000 /dev/zero | tr '\\0' a; printf 0123456789 >&2"
    output = await _run({"command": ["sh", "-c", script], "max_output_bytes": 1000})
    assert output["stdout"] == "a" * 1000 and output["stdout_truncated"] is True
    assert output["stderr"] == "0123456789" and output["stderr_truncated"] is False


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    error = await _error({"command": _spawner(pidfile), "timeout": "500ms"})
    assert error.type == "ShellTimeout" and not error.non_retryable
    assert time.monotonic() - started < 3
    pids = _pids(pidfile)
    assert len(pids) == 3
    assert not any(_running(pid) for pid in pids)


async def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    error = await _error({"command": _spawner(pidfile, trap="trap '' TERM;"), "timeout": 0.3})
    assert error.type == "ShellTimeout"
    pids = _pids(pidfile)
    assert len(pids) == 3 and not any(_running(pid) for pid in pids)


async def test_background_children_do_not_outlive_a_finished_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    output = await _run({"command": ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; echo done"]})
    assert output["stdout"] == "done\n" and time.monotonic() - started < 3
    assert not any(_running(pid) for pid in _pids(pidfile))


async def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    env = ActivityEnvironment()
    task = asyncio.create_task(
        env.run(_acts().shell, ActivityInput(task_id="t", config={"command": _spawner(pidfile)}))
    )
    pids = await _wait_for_pids(pidfile, 3)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(_running(pid) for pid in pids)


async def test_heartbeats_while_running() -> None:
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    acts = _acts(heartbeat_interval=0.05)
    result = await env.run(acts.shell, ActivityInput(task_id="t", config={"command": ["sleep", "0.3"]}))
    assert result.output["exit_code"] == 0
    assert len(beats) >= 2 and "elapsed_s" in beats[0][0]


async def test_missing_program_is_non_retryable() -> None:
    error = await _error({"command": ["wfe-no-such-program-xyz"]})
    assert error.type == "ShellSpawnError" and error.non_retryable


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "config.command"),
        ({"command": ""}, "must name a program"),
        ({"command": "echo 'unterminated"}, "cannot be split"),
        ({"command": ["echo", None]}, "config.command"),
        ({"command": ["echo"], "env": {"A": None}}, "config.env"),
        ({"command": ["echo"], "env": {"A=B": "x"}}, "config.env"),
        ({"command": ["echo"], "cwd": "/no/such/dir"}, "config.cwd"),
        ({"command": ["echo"], "max_output_bytes": 0}, "max_output_bytes"),
        ({"command": ["echo"], "timeout": "forever"}, "config.timeout"),
        ({"command": ["echo"], "shell": True}, "unknown config keys"),
    ],
)
async def test_bad_config_is_non_retryable(config: dict[str, Any], fragment: str) -> None:
    error = await _error(config)
    assert error.type == "ConfigError" and error.non_retryable
    assert fragment in error.message


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"command": None, "shell": 1, "b": 2}, "unknown config keys ['b', 'shell']; allowed: command, cwd, env,"),
        ({"command": ["echo", True], "env": 5}, "config.command is required: a list of arguments or a string"),
        ({"command": "'' x", "env": 5}, "config.command must name a program"),
        ({"command": ["echo"], "env": {"=": "x"}, "cwd": 5}, "config.env must be a mapping of variable names"),
        ({"command": ["echo"], "cwd": 5, "max_output_bytes": 0}, "config.cwd must be an existing directory; got 5"),
        ({"command": ["echo"], "max_output_bytes": True, "timeout": "x"}, "config.max_output_bytes must be a positive"),
        ({"command": ["echo"], "timeout": 0}, "config.timeout must be a positive number of seconds or a duration"),
    ],
)
async def test_config_problems_are_reported_first_key_first(config: dict[str, Any], message: str) -> None:
    error = await _error(config)
    assert error.type == "ConfigError" and error.non_retryable
    assert message in error.message


def test_config_is_taken_as_given() -> None:
    config = {"command": ["echo", 1, 2.5], "env": {"A": True, "B": 1.5, "PATH": "/x"}, "timeout": "5m"}
    parsed = ActivityEnvironment().run(ShellConfig.parse, config)
    assert parsed.argv == ["echo", "1", "2.5"] and parsed.timeout == 300.0 and parsed.cwd is None
    assert parsed.env["A"] == "true" and parsed.env["B"] == "1.5" and parsed.env["PATH"] == "/x"
    assert parsed.max_output_bytes == 1024 * 1024
    empties: list[Any] = [None, [], "", 0, False]
    for empty in empties:  # any false env means no extra variables
        assert ActivityEnvironment().run(ShellConfig.parse, {"command": "true", "env": empty}).argv == ["true"]
