"""Plans: worst-case arithmetic (retries, backoff, branches, waves), `when` decisions and what renders at plan time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from workflow_engine.dsl import DslError, parse_definition, resolve_params
from workflow_engine.dsl.plan import Plan, TaskPlan, format_seconds, plan_run, retry_worst_case


def _plan(text: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Plan:
    return plan_run(parse_definition(text), params or {}, **kwargs)


def _task(plan: Plan, task_id: str) -> TaskPlan:
    return next(task for task in plan.tasks if task.id == task_id)


def test_retries_wait_a_backoff_that_grows_until_the_maximum_interval() -> None:
    # 5 attempts of 10 s, waits 1 + 2 + 3 + 3 (capped at 3 s)
    assert retry_worst_case(timedelta(seconds=10), 5, timedelta(seconds=1), 2.0, timedelta(seconds=3)) == 59
    assert retry_worst_case(timedelta(seconds=10), 1, timedelta(seconds=1), 2.0, timedelta(seconds=3)) == 10
    assert retry_worst_case(timedelta(seconds=1), 4, timedelta(seconds=2), 1.0, timedelta(seconds=200)) == 4 + 6


def test_a_huge_attempt_count_is_counted_without_looping_or_overflowing() -> None:
    seconds = retry_worst_case(timedelta(seconds=1), 10**9, timedelta(seconds=1), 100.0, timedelta(hours=1))
    assert seconds == 10**9 + 1 + 100 + (10**9 - 3) * 3600


ACTIVITIES = """\
name: timing
defaults: {timeout: 20s, retry_policy: {max_attempts: 2, initial_interval: 5s}}
tasks:
  - {id: engine_defaults_only, activity_type: log, retry_policy: {max_attempts: 3}}
  - {id: own_timeout, activity_type: log, timeout: 1m}
  - {id: capped, activity_type: log, timeouts: {schedule_to_close: 30s}}
  - {id: forever, activity_type: log, retry_policy: {initial_interval: 1s}}
  - {id: forever_capped, activity_type: log, retry_policy: {initial_interval: 1s}, timeouts: {schedule_to_close: 2h}}
"""


def test_activity_worst_cases_follow_the_timeouts_and_retry_policies_the_engine_applies() -> None:
    plan = _plan(ACTIVITIES)
    seconds = {task.id: task.worst_case.seconds for task in plan.tasks}
    assert seconds == {
        "engine_defaults_only": 3 * 20 + 1 + 2,  # the definition's timeout; Temporal's 1 s initial interval
        "own_timeout": 2 * 60 + 5,
        "capped": 30,  # 2 x 20 s + 5 s would be longer than the schedule-to-close timeout
        "forever": None,
        "forever_capped": 7200,
    }
    assert _task(plan, "forever").worst_case.text == "unbounded (retries without limit)"
    assert plan.worst_case.text == "unbounded (retries without limit) at forever"


def test_the_engine_defaults_apply_when_nothing_is_set() -> None:
    plan = _plan("name: bare\ntasks: [{id: a, activity_type: log}]\n")
    assert plan.worst_case.seconds == 3 * 300 + 1 + 2  # 5 min start-to-close, 3 attempts, 1 s then 2 s backoff
    assert plan.worst_case.text == "15m 3s"


BRANCHES = """\
name: branches
defaults: {retry_policy: {max_attempts: 1}}
tasks:
  - {id: start, activity_type: log, timeout: 1s}
  - {id: short, depends_on: [start], activity_type: log, timeout: 10s}
  - {id: long, depends_on: [start], activity_type: log, timeout: 20s}
  - {id: nap, depends_on: [short], type: sleep, config: {duration: 5s}}
  - {id: join, depends_on: [nap, long], activity_type: log, timeout: 2s}
"""


def test_parallel_branches_take_the_longest_and_a_chain_adds_up() -> None:
    plan = _plan(BRANCHES)
    assert plan.levels == [["start"], ["short", "long"], ["nap"], ["join"]]
    assert plan.critical_path == ["start", "long", "join"]
    assert plan.worst_case.seconds == 1 + 20 + 2  # short + nap (15 s) is shorter than long
    slower = _plan(BRANCHES.replace("duration: 5s", "duration: 15s"))
    assert slower.critical_path == ["start", "short", "nap", "join"]
    assert slower.worst_case.seconds == 1 + 10 + 15 + 2


FAN_OUT = """\
name: fan
params:
  rows: {type: array, default: [1, 2, 3, 4, 5]}
defaults: {retry_policy: {max_attempts: 1}, timeout: 10s}
tasks:
  - {id: each, activity_type: log, for_each: "${{ params.rows }}", max_parallel: 2, config: {message: "${{ item }}"}}
  - {id: literal, activity_type: log, for_each: [a, b, c], config: {message: "${{ index }}"}}
  - {id: upstream, activity_type: log, for_each: "${{ tasks.each.output }}", config: {}}
"""


def test_a_static_for_each_runs_in_waves_of_max_parallel() -> None:
    plan = _plan(FAN_OUT)
    each, literal, upstream = (_task(plan, t) for t in ("each", "literal", "upstream"))
    assert (each.for_each and (each.for_each.size, each.for_each.waves)) == (5, 3)
    assert each.worst_case.seconds == 30
    assert literal.for_each and (literal.for_each.size, literal.for_each.waves) == (3, 1)
    assert literal.worst_case.seconds == 10
    assert upstream.for_each and upstream.for_each.size is None
    assert upstream.for_each.reason == "depends on each"
    assert upstream.worst_case.text == "unknown (for_each size depends on each)"
    assert [(u.path, u.reason) for u in each.unrendered] == [("config.message", "per item of for_each")]
    assert _task(_plan(FAN_OUT, {"rows": []}), "each").worst_case.seconds == 0


APPROVALS = """\
name: approvals
params:
  amount: {type: number, required: true}
timeout: 7d
tasks:
  - id: big
    type: approval
    when: "${{ params.amount > 100 }}"
    config: {message: "approve ${{ params.amount }} for ${{ workflow.name }}?", timeout: 2h}
  - {id: forever, type: approval, depends_on: [], when: "${{ params.amount > 1000 }}"}
"""


def test_when_decided_by_params_skips_and_an_approval_without_timeout_is_unbounded() -> None:
    small = _plan(APPROVALS, {"amount": 50})
    assert [(t.id, t.outcome) for t in small.tasks] == [("big", "skipped"), ("forever", "skipped")]
    assert small.worst_case.seconds == 0
    medium = _plan(APPROVALS, {"amount": 500})
    assert [(t.id, t.outcome) for t in medium.tasks] == [("big", "runs"), ("forever", "skipped")]
    assert _task(medium, "big").config["message"] == "approve 500.0 for approvals?"
    assert medium.worst_case.seconds == 7200
    large = _plan(APPROVALS, {"amount": 5000})
    assert _task(large, "forever").worst_case.text == "unbounded (waits for approval)"
    assert large.worst_case == large.worst_case.model_copy(
        update={"seconds": 7 * 86400, "text": "7d (the workflow's timeout)"}
    )


UPSTREAM = """\
name: upstream
params:
  region: {type: string, default: eu}
tasks:
  - {id: probe, activity_type: log, config: {message: "${{ params.region }}"}}
  - id: follow
    activity_type: http_request
    when: "${{ tasks.probe.output != null && params.region == 'eu' }}"
    config:
      url: "https://example.com/${{ params.region }}/${{ tasks.probe.output }}"
      headers: {Authorization: "Bearer ${{ secrets.TOKEN }}"}
  - id: tagged
    activity_type: log
    when: "${{ workflow.execution_id != '' }}"
    config: {message: "${{ workflow.revision }}"}
  - {id: broken, activity_type: log, when: "${{ params.region > 3 }}"}
"""


def test_templates_reading_upstream_outputs_secrets_or_run_facts_stay_as_written() -> None:
    plan = _plan(UPSTREAM)
    follow, tagged, broken = (_task(plan, t) for t in ("follow", "tagged", "broken"))
    assert (follow.outcome, follow.reason, follow.when_reads) == ("depends", "depends on probe", ["probe"])
    assert follow.config["url"] == "https://example.com/eu/${{ tasks.probe.output }}"
    assert follow.config["headers"] == {"Authorization": "Bearer ${{ secrets.TOKEN }}"}
    assert [(u.path, u.reason) for u in follow.unrendered] == [
        ("config.url", "depends on probe"),
        ("config.headers.Authorization", "reads secrets (resolved in the worker, never here)"),
    ]
    assert (tagged.outcome, tagged.reason) == ("depends", "known when the run starts (reads workflow.execution_id)")
    assert tagged.unrendered[0].reason == "known when the run starts (reads workflow.revision)"
    assert broken.outcome == "fails" and broken.reason and broken.reason.startswith("fails: ")
    assert _task(plan, "probe").config == {"message": "eu"}


PARENT = """\
name: parent
params:
  n: {type: integer, default: 2}
tasks:
  - {id: child, type: workflow, config: {workflow: kid, params: {n: "${{ params.n }}"}}}
  - {id: capped, type: workflow, timeout: 30s, config: {workflow: stranger}}
"""
KID = """\
name: kid
params:
  n: {type: integer, required: true}
tasks:
  - {id: work, activity_type: log, timeout: 10s, retry_policy: {max_attempts: 1}, for_each: [1, 2, 3], max_parallel: 1}
  - {id: extra, activity_type: log, timeout: 1m, retry_policy: {max_attempts: 1}, when: "${{ params.n > 5 }}"}
"""


def test_child_workflows_are_planned_with_their_params_and_unknown_ones_only_bounded_by_timeouts() -> None:
    kid = parse_definition(KID)
    small = _plan(PARENT, children={"kid": kid})
    assert _task(small, "child").worst_case.seconds == 30  # three waves of 10 s; `extra` skipped as n is 2
    assert _task(_plan(PARENT, {"n": 9}, children={"kid": kid}), "child").worst_case.seconds == 90
    assert _task(small, "capped").worst_case.seconds == 30
    alone = _plan(PARENT)
    assert _task(alone, "child").worst_case.text == "unknown (child workflow 'kid' not given)"


def test_invalid_params_raise_the_errors_a_start_raises() -> None:
    definition = parse_definition(APPROVALS)
    with pytest.raises(DslError) as planned:
        plan_run(definition, {"amount": "x", "other": 1})
    with pytest.raises(DslError) as started:
        resolve_params(definition, {"amount": "x", "other": 1})
    assert planned.value.issues == started.value.issues


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.25, "250ms"), (93, "1m 33s"), (90061.5, "1d 1h 1m 1.5s"), (7200, "2h")]
)
def test_durations_are_written_short(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_concurrency_keys_are_rendered_from_params_and_compensations_listed() -> None:
    definition = parse_definition(
        """
name: plan-keys
params:
  env: {type: string, default: prod}
concurrency: {key: "deploy-${{ params.env }}", timeout: 1h}
tasks:
  - id: a
    type: set
    config: {x: 1}
  - id: b
    depends_on: [a]
    activity_type: log
    config: {message: hi}
    concurrency: {key: "${{ tasks.a.output.x }}", on_conflict: skip, limit: 2}
    compensate: {activity_type: log, config: {message: "undo ${{ output }}"}}
"""
    )
    planned = plan_run(definition, {"env": "staging"}, task_queue="q")
    assert planned.concurrency is not None
    assert (planned.concurrency.key, planned.concurrency.lock) == ("deploy-staging", "wfe-lock:q:deploy-staging")
    assert (planned.concurrency.on_conflict, planned.concurrency.timeout) == ("queue", "1h")
    b = next(task for task in planned.tasks if task.id == "b")
    assert b.concurrency is not None and not b.concurrency.rendered and b.concurrency.lock is None
    assert (b.concurrency.key, b.concurrency.limit) == ("${{ tasks.a.output.x }}", 2)
    assert b.compensate == "log" and planned.tasks[0].compensate is None
