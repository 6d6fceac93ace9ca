"""`workflow_engine test`: the shipped examples pass, broken expectations fail with a diff, on the test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from workflow_engine.cli import app
from workflow_engine.plugins import activity_types
from workflow_engine.settings import Settings, get_settings
from workflow_engine.testing import CaseResult, collect, run_suites

EXAMPLES = REPO_ROOT / "workflows"


def _cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKFLOWS_DIR": str(EXAMPLES)}
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", "test", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip


def _hello_dir(tmp_path: Path, tests: str) -> Path:
    """A workflows directory with the hello example and one test file."""
    folder = tmp_path / "workflows"
    (folder / "tests").mkdir(parents=True)
    for name in ("hello.yaml", "greetings.py"):
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "tests" / "hello.yaml").write_text(tests)
    return folder


async def _run(paths: list[Path], keyword: str = "") -> list[CaseResult]:
    settings = Settings(_env_file=None, workflows_dir=paths[0])
    suites, issues = collect(paths, settings, activity_types(settings))
    assert issues == []
    return await run_suites(suites, settings, select=lambda suite, case: keyword in case.name)


def test_the_shipped_examples_pass_and_write_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    done = _cli("workflows/", "--junit", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("PASS ") for line in lines[:-1]), done.stdout
    shipped = sorted((REPO_ROOT / "workflows" / "tests").glob("*.yaml"))
    cases = sum(len(yaml.safe_load(path.read_text())["cases"]) for path in shipped)
    assert cases >= 17 and f"{cases} passed, 0 failed" in lines[-1]
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("failures")) == (str(cases), "0")
    files = [suite.get("name") for suite in root.iter("testsuite")]
    assert files == [f"workflows/tests/{path.name}" for path in shipped]
    # every shipped example has tests
    examples = sorted(path.stem for path in (REPO_ROOT / "workflows").glob("*.yaml"))
    assert [path.stem for path in shipped] == examples
    names = [case.get("name") for case in root.iter("testcase")]
    assert "a big order nobody approves in 48 hours is not charged" in names
    assert not list(root.iter("failure")) and not list(root.iter("error"))


BROKEN = """\
workflow: hello
cases:
  - name: right
    params: {who: Bob}
    expect: {status: completed, output: {greeting: "Hello, Bob!"}}
  - name: wrong
    params: {who: Bob}
    expect:
      status: failed
      tasks: {greet: skipped, repeat: {output: {count: 3}}}
      output: {greeting: "Hello, Ada!"}
"""


def test_a_broken_expectation_fails_with_a_diff_and_exit_1(tmp_path: Path) -> None:
    folder = _hello_dir(tmp_path, BROKEN)
    report = tmp_path / "out" / "junit.xml"
    done = _cli(str(folder), "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    test_file = folder / "tests" / "hello.yaml"
    assert f"PASS {test_file}::right" in done.stdout
    assert f"FAIL {test_file}::wrong" in done.stdout
    diff = done.stdout.split("::wrong", 1)[1].splitlines()[1:5]
    assert [line.strip() for line in diff] == [
        "status: expected failed, got completed",
        "tasks.greet.status: expected skipped, got completed",
        "tasks.repeat.output.count: expected 3, got 2",
        'output.greeting: expected "Hello, Ada!", got "Hello, Bob!"',
    ]
    assert "1 passed, 1 failed" in done.stdout
    failure = ET.parse(report).getroot().find("testsuite/testcase[@name='wrong']/failure")
    assert failure is not None and failure.get("message") == "status: expected failed, got completed"
    assert failure.text is not None and "tasks.repeat.output.count: expected 3, got 2" in failure.text
    only = _cli(str(folder), "-k", "right")
    assert only.returncode == 0 and "1 passed, 0 failed" in only.stdout and "wrong" not in only.stdout


def test_an_invalid_test_file_exits_2_with_its_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _hello_dir(tmp_path, "workflow: hello\ncases:\n  - name: x\n    mocks: {nope: {output: 1}}\n")
    (folder / "tests" / "other.yaml").write_text("workflow: nowhere\ncases: [{name: y}]\n")
    monkeypatch.setenv("WORKFLOWS_DIR", str(folder))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["test", str(folder)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert (
        f"cases[0].mocks.nope: cannot mock 'nope': it is not a task of the workflow ({folder}/tests/hello.yaml:4:13)"
        in result.output
    )
    assert f"workflow: no workflow 'nowhere' next to the test file ({folder}/tests/other.yaml:1:1)" in result.output
    assert "nothing was run" in result.output and "PASS" not in result.output


async def test_a_48_hour_approval_timeout_takes_no_wall_time() -> None:
    began = time.monotonic()
    results = await _run([EXAMPLES / "tests" / "order_processing_workflow.yaml"], "48 hours")
    took = time.monotonic() - began
    assert [(r.name, r.passed) for r in results] == [("a big order nobody approves in 48 hours is not charged", True)]
    print(f"48 h approval timeout: case {results[0].seconds:.2f} s, with server start {took:.2f} s")
    assert took < 30  # generous: ~0.5 s on this machine, the figure is printed above


TIMES = """\
workflow: hello
cases:
  - name: fails twice of three attempts
    mocks: {repeat: {error: flaky, times: 2, output: {lines: [x], count: 1}}}
    expect: {status: completed, tasks: {repeat: {status: completed, output: {count: 1}}}, output: {count: 1}}
  - name: fails all three attempts
    mocks: {repeat: {error: flaky, times: 3, output: {lines: [x], count: 1}}}
    expect: {status: failed, tasks: {repeat: {status: failed, error: flaky}}}
  - name: a non-retryable mocked error fails at once
    mocks: {repeat: {error: nope, error_type: ValueError}}
    expect: {status: failed, tasks: {repeat: failed}}
"""


async def test_mocks_fail_their_first_attempts_then_answer_within_the_retry_policy(tmp_path: Path) -> None:
    folder = _hello_dir(tmp_path, TIMES)  # repeat retries at most 3 attempts
    began = time.monotonic()
    results = await _run([folder])
    assert [(r.name, r.lines()) for r in results] == [
        ("fails twice of three attempts", []), ("fails all three attempts", []),
        ("a non-retryable mocked error fails at once", []),
    ]  # fmt: skip
    assert time.monotonic() - began < 30  # the retries do not wait out their 1 s, 2 s backoff


async def test_a_refused_approval_fails_the_case_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    (folder / "tests").mkdir(parents=True)
    for name in ("order_processing_workflow.yaml", "orders.py"):
        shutil.copy(EXAMPLES / name, folder / name)
    text = (EXAMPLES / "tests" / "order_processing_workflow.yaml").read_text()
    mine = text.replace("{decision: approve, approver: alice}", "{approver: alice, roles: [viewer]}")
    assert mine != text
    (folder / "tests" / "orders.yaml").write_text(mine)
    results = await _run([folder], "big orders")
    assert len(results) == 1 and not results[0].passed
    assert results[0].error is not None
    assert results[0].error.startswith("approvals.manager_approval: the run refused alice's decision:"), results[
        0
    ].error


def test_the_api_scan_of_the_workflows_directory_leaves_the_test_files_out() -> None:
    from workflow_engine.api.registration import directory_snapshot

    names = [name for name, _, _ in directory_snapshot(EXAMPLES)]
    assert names and not any("tests" in Path(name).parts for name in names)
    assert (EXAMPLES / "tests" / "hello.yaml").is_file()
