"""Secrets are resolved inside activities and never reach the workflow history."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_engine.dsl import DslError, parse_definition

from .conftest import Runner

SECRET = "s3cr3t-v4lue-0123456789"

MODULE = """
def use(token: str) -> dict:
    return {"length": len(token), "echo": "token is " + token}
"""


async def test_secret_is_used_by_the_activity_and_masked_everywhere(
    run_yaml: Runner, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFE_SECRET_API_TOKEN", SECRET)
    (workflows_dir / "secret_user.py").write_text(MODULE)
    outcome = await run_yaml(
        """
name: with-secret
tasks:
  - id: note
    activity_type: log
    config: {message: "calling with ${{ secrets.API_TOKEN }}"}
  - id: call
    activity_type: python
    config: {function: "secret_user:use", kwargs: {token: "${{ secrets.API_TOKEN }}"}}
output:
  call: "${{ tasks.call.output }}"
"""
    )
    assert outcome.failure is None
    assert outcome.task("note")["output"] == "calling with ***"
    assert outcome.result == {"call": {"length": len(SECRET), "echo": "token is ***"}}
    history = str((await outcome.handle.fetch_history()).events)  # payload data as readable text
    assert "calling with ***" in history
    assert SECRET not in history
    assert "${{ secrets.API_TOKEN }}" in history  # carried unresolved


async def test_missing_secret_fails_without_retrying(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        "name: no-secret\ntasks:\n  - id: a\n    activity_type: log\n"
        "    config: {message: '${{ secrets.NOT_SET_ANYWHERE }}'}\n"
    )
    assert outcome.failure is not None, outcome.state
    task = outcome.task("a")
    assert task["status"] == "failed", (outcome.failure, outcome.failure.cause, outcome.state)
    assert "secret 'NOT_SET_ANYWHERE' is not set (environment variable WFE_SECRET_NOT_SET_ANYWHERE" in task["error"]


async def test_secret_values_are_masked_in_errors(
    run_yaml: Runner, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFE_SECRET_PASSWORD", SECRET)
    (workflows_dir / "leaky.py").write_text("def fail(p: str) -> None:\n    raise ValueError('bad password ' + p)\n")
    outcome = await run_yaml(
        "name: leaky\ntasks:\n  - id: a\n    activity_type: python\n    retry_policy: {max_attempts: 1}\n"
        "    config: {function: 'leaky:fail', args: ['${{ secrets.PASSWORD }}']}\n"
    )
    assert outcome.failure is not None
    assert outcome.task("a")["error"] == "ValueError: bad password ***"
    history = str((await outcome.handle.fetch_history()).events)
    assert "bad password ***" in history
    assert SECRET not in history


@pytest.mark.parametrize(
    "snippet",
    [
        "    when: '${{ secrets.FLAG == \"on\" }}'\n    config: {message: x}\n",
        "    config: {message: '${{ secrets.A + params.b }}'}\n",
    ],
)
def test_secrets_outside_activity_config_or_mixed_are_registration_errors(snippet: str) -> None:
    text = "name: x\nparams:\n  b: {type: string, default: y}\ntasks:\n  - id: a\n    activity_type: log\n" + snippet
    with pytest.raises(DslError) as caught:
        parse_definition(text)
    assert "secrets" in str(caught.value)


INJECTED = """
def show(*args: str) -> list:
    return list(args)


def hostile() -> str:
    return "${{ secrets.API_TOKEN }}"
"""


async def test_a_value_from_the_run_that_reads_like_a_secret_template_stays_text(
    run_yaml: Runner, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A param or an upstream output holding `${{ secrets.X }}` is data, never a template the worker renders."""
    monkeypatch.setenv("WFE_SECRET_API_TOKEN", SECRET)
    monkeypatch.setenv("WFE_SECRET_OTHER", "other-value-987")
    (workflows_dir / "injected.py").write_text(INJECTED)
    outcome = await run_yaml(
        """
name: injected
params:
  note: {type: string}
  brace: {type: string}
tasks:
  - id: upstream
    activity_type: python
    config: {function: "injected:hostile"}
  - id: use
    depends_on: [upstream]
    activity_type: python
    config:
      function: "injected:show"
      args:
        - "${{ params.note }}"
        - "${{ tasks.upstream.output }}"
        - "key ${{ secrets.OTHER }} note ${{ params.note }}"
        - "key ${{ secrets.OTHER }} price $${{ params.brace }}"
output:
  shown: "${{ tasks.use.output }}"
""",
        {"note": "${{ secrets.API_TOKEN }}", "brace": "{{ secrets.API_TOKEN }}"},
    )
    assert outcome.failure is None, outcome.state
    assert outcome.result == {
        "shown": [
            "${{ secrets.API_TOKEN }}",
            "${{ secrets.API_TOKEN }}",
            "key *** note ${{ secrets.API_TOKEN }}",
            "key *** price ${{ secrets.API_TOKEN }}",
        ]
    }
    history = str((await outcome.handle.fetch_history()).events)
    assert SECRET not in history and "other-value-987" not in history
