"""`python` tasks call only what the operator allowed (at registration and in the worker), on a thread per slot."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from workflow_engine.cli import app
from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition
from workflow_engine.engine.activities.calls import FunctionRunner
from workflow_engine.engine.activities.modules import allowed_modules
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import RunInput
from workflow_engine.settings import Settings, get_settings
from workflow_engine.worker import user_function_threads

from .conftest import Outcome, Runner

ALLOWED = ("orders", "pkg", "os", "subprocess", "builtins", "pickle")  # refused ones listed: they stay refused


def one_call(function: str, *, name: str = "calls") -> str:
    return f"name: {name}\ntasks:\n  - id: call\n    activity_type: python\n    config:\n      function: {function}\n"


def refusal(text: str, allowed: tuple[str, ...] | None = ALLOWED) -> str:
    with pytest.raises(DslError) as info:
        parse_definition(text, file="f.yaml", python_modules=allowed)
    (issue,) = [i for i in info.value.issues if i.path == "tasks[0].config.function"]
    assert (issue.file, issue.line, issue.column) == ("f.yaml", 6, 7)
    return issue.message


# --- registration: the pure DSL check ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("os:system", "module 'os' is never allowed"),
        ("subprocess:run", "module 'subprocess' is never allowed"),
        ("builtins:eval", "module 'builtins' is never allowed"),
        ("pickle:loads", "module 'pickle' is never allowed"),
        ("importlib:import_module", "module 'importlib' is never allowed"),
        ("os.path:join", "module 'os.path' (part of 'os') is never allowed"),
        ("multiprocessing.pool:Pool", "part of 'multiprocessing'"),
        ("workflow_engine.settings:get_settings", "module 'workflow_engine.settings' (part of 'workflow_engine')"),
        ("orders:_private", "'_private' starts with '_'"),
        ("orders.__init__:x", "'__init__' starts with '_'"),
        ("json:dumps", "module 'json' is not allowed"),
        ("jsonschema:validate", "add 'jsonschema' to PYTHON_MODULES"),
        ("ordersx:validate", "module 'ordersx' is not allowed"),  # a prefix of a name is not a package of it
        ("'${{ params.function }}'", "must be a literal 'module:function', not an expression"),
        ("'orders:${{ params.name }}'", "not an expression"),
        ("orders:validate:now", "is not 'module:function' with Python names"),
        ("orders", "is not 'module:function'"),
        ("'orders:a.b'", "is not 'module:function'"),
        ("42", "must be a string 'module:function'"),
    ],
)
def test_registration_refuses_what_python_tasks_may_not_call_at_its_line(function: str, message: str) -> None:
    assert message in refusal(one_call(function))


def test_the_refused_are_refused_without_an_allowlist_and_on_failure_tasks_are_checked() -> None:
    assert "never allowed" in refusal(one_call("subprocess:run"), allowed=None)
    parse_definition(one_call("json:dumps"))  # no allowlist given: only what is always refused
    handler = "name: h\ntasks: [{id: a, activity_type: log}]\non_failure:\n  - id: b\n    activity_type: python\n"
    with pytest.raises(DslError) as info:
        parse_definition(handler + "    config: {function: 'os:kill'}\n", python_modules=ALLOWED)
    assert [(i.path, i.line) for i in info.value.issues] == [("on_failure[0].config.function", 6)]
    with pytest.raises(DslError, match="python tasks need config.function"):
        parse_definition(handler + "    config: {args: [1]}\n", python_modules=ALLOWED)


def test_allowed_modules_and_their_submodules_register() -> None:
    for function in ("orders:validate", "pkg:run", "pkg.sub.deeper:run"):
        parse_definition(one_call(function), python_modules=ALLOWED)


def test_allowed_modules_are_the_workflows_dir_plugins_and_python_modules(tmp_path: Path) -> None:
    for name in ("orders.py", "_private.py", "not-a-name.py", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "data").mkdir()  # a folder without __init__.py is not a package
    settings = Settings(_env_file=None, workflows_dir=tmp_path, plugins="text_plugins", python_modules=" json, numpy ")
    assert allowed_modules(settings) == ("orders", "pkg", "text_plugins", "json", "numpy")


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Read settings from this test's environment, and forget them afterwards."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_validate_prints_each_refusal_as_file_line_col_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "orders.py").write_text("def validate():\n    return 1\n")
    definition = tmp_path / "f.yaml"
    definition.write_text(
        "name: x\ntasks:\n"
        "  - {id: a, activity_type: python, config: {function: 'orders:validate'}}\n"
        "  - {id: b, activity_type: python, config: {function: 'os:system'}}\n"
        "  - {id: c, activity_type: python, config: {function: 'json:dumps'}}\n"
    )
    monkeypatch.setenv("WORKFLOWS_DIR", str(workflows))
    monkeypatch.setenv("PYTHON_MODULES", "os")  # naming a refused module allows nothing
    result = CliRunner().invoke(app, ["validate", str(definition)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{definition}:4:45: tasks[1].config.function: module 'os' is never allowed")
    assert lines[1].startswith(f"{definition}:5:45: tasks[2].config.function: module 'json' is not allowed")
    monkeypatch.setenv("PYTHON_MODULES", "json")
    get_settings.cache_clear()
    again = CliRunner().invoke(app, ["validate", str(definition)])
    assert again.exit_code == 1
    assert [line.split(": ")[1] for line in again.output.strip().splitlines()] == ["tasks[1].config.function"]


# --- the worker: what slipped past registration is refused again ------------------------------------------

SNEAKY = '''
"""A workflows module that re-exports what python tasks may not call."""
from functools import partial
from json import dumps
from os import system

spawn = partial(system, "true")


def _hidden() -> int:
    return 1
'''


async def run_definition(client: Client, settings: Settings, definition: dict[str, Any]) -> Outcome:
    """Start a run from a definition built without the registration policy, on the test's worker."""
    model = WorkflowDefinition.model_validate(definition)
    execution_id = f"{model.name}-{uuid.uuid4().hex}"
    await start_execution(
        client, workflow_name=model.name, execution_id=execution_id, task_queue=settings.temporal_task_queue,
        run_input=RunInput(definition=model.model_dump(mode="json"), revision=1, params={}),
    )  # fmt: skip
    return await Outcome.of(client, client.get_workflow_handle(execution_id))


async def test_the_worker_refuses_functions_that_slipped_past_registration(
    run_yaml: Runner, client: Client, settings: Settings, workflows_dir: Path, tmp_path: Path
) -> None:
    (workflows_dir / "sneaky.py").write_text(SNEAKY)
    marker = tmp_path / "pwned"
    calls = {
        "shell": ("os:system", [f"touch {marker}"], "module 'os' is never allowed"),
        "spawn": ("subprocess:run", [["touch", str(marker)]], "module 'subprocess' is never allowed"),
        "evaluate": ("builtins:exec", [f"open({str(marker)!r}, 'w')"], "module 'builtins' is never allowed"),
        "reexport": ("sneaky:system", [f"touch {marker}"], "'sneaky:system' is a function of 'posix'"),
        "wrapped": ("sneaky:spawn", [], "'sneaky:spawn' is a function of 'posix'"),
        "private": ("sneaky:_hidden", [], "'_hidden' starts with '_'"),
        "installed": ("json:dumps", [[1]], "add 'json' to PYTHON_MODULES"),
    }
    tasks = [
        {"id": task_id, "depends_on": [], "activity_type": "python", "continue_on_error": True,
         "retry_policy": {"max_attempts": 3}, "config": {"function": function, "args": args}}
        for task_id, (function, args, _) in calls.items()
    ]  # fmt: skip
    tasks.append({"id": "fine", "depends_on": [], "activity_type": "python",
                  "config": {"function": "sneaky:dumps", "args": [[1, 2]]}})  # fmt: skip
    outcome = await run_definition(client, settings, {"name": "slipped", "tasks": tasks})
    for task_id, (_, _, message) in calls.items():
        task = outcome.task(task_id)
        assert task["status"] == "failed", task_id
        assert task["attempts"] == 1, task_id  # non-retryable
        assert message in task["error"], (task_id, task["error"])
    assert outcome.task("fine")["output"] == "[1, 2]"  # json is not refused, only not allowed by name
    assert not marker.exists()


PACKAGE_INIT = "from .text import shout\n"
PACKAGE_TEXT = "from ._case import upper\n\n\ndef shout(text):\n    return upper(text) + '!'\n"


async def test_allowed_modules_run_packages_of_the_workflows_dir_and_python_modules(
    run_yaml: Runner, workflows_dir: Path
) -> None:
    package = workflows_dir / "tools"
    package.mkdir()
    (package / "__init__.py").write_text(PACKAGE_INIT)
    (package / "text.py").write_text(PACKAGE_TEXT)
    (package / "_case.py").write_text("def upper(text):\n    return text.upper()\n")
    outcome = await run_yaml(
        "name: tools\ntasks:\n"
        "  - {id: a, activity_type: python, config: {function: 'tools:shout', args: [hi]}}\n"
        "  - {id: b, activity_type: python, config: {function: 'tools.text:shout', args: [ho]}}\n"
        "output: ['${{ tasks.a.output }}', '${{ tasks.b.output }}']\n"
    )
    assert outcome.result == ["HI!", "HO!"]
    flow = "name: stdlib\ntasks:\n  - {id: a, activity_type: python, config: {function: 'json:dumps', args: [[1]]}}\n"
    refused = await run_yaml(flow)
    assert refused.task("a")["status"] == "failed"
    assert "PYTHON_MODULES" in refused.task("a")["error"]
    allowed = await run_yaml(flow + "output: '${{ tasks.a.output }}'\n", settings_update={"python_modules": "json"})
    assert allowed.result == "[1]"


# --- threads and heartbeats -----------------------------------------------------------------------------

NAPS = """
import asyncio
import time


def nap(seconds):
    time.sleep(seconds)
    return seconds


async def async_nap(seconds):
    await asyncio.sleep(seconds)
    return seconds
"""


async def test_python_tasks_heartbeat_while_the_function_runs(run_yaml: Runner, workflows_dir: Path) -> None:
    (workflows_dir / "naps.py").write_text(NAPS)
    task = "activity_type: python\n    timeouts: {heartbeat: 1s}\n    retry_policy: {max_attempts: 1}\n"
    outcome = await run_yaml(
        "name: beats\ntasks:\n"
        f"  - id: sync\n    depends_on: []\n    {task}    config: {{function: 'naps:nap', args: [2.5]}}\n"
        f"  - id: async\n    depends_on: []\n    {task}    config: {{function: 'naps:async_nap', args: [2.5]}}\n"
    )
    assert outcome.failure is None, outcome.state  # without heartbeats a 1 s heartbeat timeout fails both
    assert [outcome.task(t)["attempts"] for t in ("sync", "async")] == [1, 1]


async def test_a_cancelled_sync_call_keeps_its_thread_until_it_returns_an_async_one_stops() -> None:
    runner = FunctionRunner(2)
    try:
        sync = asyncio.create_task(runner.call(time.sleep, 0.6))
        slow = asyncio.create_task(runner.call(asyncio.sleep, 30))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert time.monotonic() - began < 0.2
        sync.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sync
        assert time.monotonic() - began >= 0.4  # the thread cannot be interrupted: its slot waits for it
    finally:
        await runner.close()


async def test_the_runner_has_a_thread_for_every_slot() -> None:
    runner = FunctionRunner(30)
    try:
        began = time.monotonic()
        await asyncio.gather(*(runner.call(time.sleep, 0.5) for _ in range(30)))
        assert time.monotonic() - began < 1.5  # the default pool (cpu + 4 threads) needs 0.5 s per 6 calls
    finally:
        await runner.close()
    settings = Settings(_env_file=None)
    assert user_function_threads(settings, ("python",)) == 200  # the main worker's 100 slots + python's 100
    limited = settings.model_copy(update={"worker_activity_concurrency": "python=5,slugify=3"})
    assert user_function_threads(limited, ("python", "slugify")) == 108
