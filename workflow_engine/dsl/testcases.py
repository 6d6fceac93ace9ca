"""Workflow test files (`workflow_engine test`): the model of a case, and its checks against the definition."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .errors import DslError, Issue
from .model import ActivityTask, ApprovalTask, WorkflowDefinition
from .params import resolve_params
from .parser import Marks, Path, format_path, load_yaml, locate

RunEnd = Literal["completed", "failed", "cancelled", "terminated", "timed_out"]
TaskEnd = Literal[
    "pending", "running", "completed", "failed", "rejected", "skipped", "cancelled", "compensated",
    "compensation_failed",
]  # fmt: skip
RUN_STATUSES: tuple[str, ...] = get_args(RunEnd)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def given(self, name: str) -> bool:
        """Whether the test file set this field (so `output: null` is checked, a missing `output` is not)."""
        return name in self.model_fields_set


class Mock(_Closed):
    """What a mocked activity task answers: its output, or an error for the first `times` attempts (or all)."""

    output: Any = None
    error: str | None = None
    error_type: str = Field("MockError", description="The error's type, as `non_retryable_errors` names them.")
    times: int | None = Field(None, ge=1, description="Fail this many attempts, then answer `output`.")

    @model_validator(mode="after")
    def _times_need_an_error(self) -> Mock:
        if self.times is not None and self.error is None:
            raise ValueError("`times` needs an `error` (the attempts that fail before `output` is answered)")
        return self

    def answer(self, attempt: int) -> tuple[Any, str | None]:
        """Return (output, error message) for this attempt (1-based): the error while it still fails."""
        if self.error is not None and (self.times is None or attempt <= self.times):
            return None, self.error
        return self.output, None


class Approval(_Closed):
    """One decision the runner sends once the task waits; `timeout: true` sends none (the task times out)."""

    decision: Literal["approve", "reject"] = "approve"
    approver: str = "tester"
    roles: list[str] = Field(default_factory=lambda: ["approver"])
    comment: str | None = None
    timeout: bool = False


class TaskExpect(_Closed):
    """What one task should end as: its status, its output (a subset) and its error (a substring)."""

    status: TaskEnd | None = None
    output: Any = None
    error: str | None = None


def _status_alone(value: Any) -> Any:
    """Read `task: completed` as `task: {status: completed}`, so a wrong status gets one message, not two."""
    return {"status": value} if isinstance(value, str) else value


class Expect(_Closed):
    """What the run should end as; anything left out is not checked."""

    status: RunEnd | None = None
    tasks: dict[str, Annotated[TaskExpect, BeforeValidator(_status_alone)]] = Field(default_factory=dict)
    output: Any = None
    error: str | None = None


class Case(_Closed):
    """One test case: params to start the run with, mocks, approvals to send, and what to expect."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    mocks: dict[str, Mock] = Field(default_factory=dict)
    approvals: dict[str, Approval | list[Approval]] = Field(default_factory=dict)
    expect: Expect = Field(default_factory=Expect)

    def decisions(self, task_id: str) -> list[Approval]:
        """The decisions to send to an approval task, in order (none: let it time out)."""
        entry = self.approvals.get(task_id, [])
        return [a for a in (entry if isinstance(entry, list) else [entry]) if not a.timeout]


class _TestFile(_Closed):
    workflow: str = Field(min_length=1, description="The workflow's name, or a path to its YAML file.")
    cases: list[Case] = Field(min_length=1)


class _Embedded(_Closed):
    tests: list[Case] = Field(min_length=1)


class TestFile(BaseModel):
    """A parsed test file: the workflow it tests (None: the file is a definition with `tests:`), its cases."""

    model_config = ConfigDict(frozen=True)
    __test__ = False  # not a pytest class

    file: str
    workflow: str | None
    cases: list[Case]
    marks: dict[Path, tuple[int, int]]
    prefix: str  # `cases` or `tests`: where the cases are in the file

    def issue(self, loc: tuple[str | int, ...], message: str) -> Issue:
        """An issue at `loc` of the file (e.g. ("cases", 0, "mocks", "charge")), with its line."""
        path, position = locate_marks(self.marks, loc)
        line, column = position if position else (None, None)
        return Issue(format_path(path), message, self.file, line, column)


def locate_marks(marks: Marks, loc: tuple[str | int, ...]) -> tuple[Path, tuple[int, int] | None]:
    """The nearest known position of `loc`, cutting it from the end."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in marks:
            return loc, marks[loc[:cut]]
    return loc, None


def is_test_document(data: Any) -> bool:
    """Whether a YAML document is a test file (`workflow` and `cases`) or a definition with `tests:`."""
    return isinstance(data, dict) and ("cases" in data or "tests" in data)


def parse_test_file(text: str, *, file: str = "<string>") -> TestFile:
    """Read a test file, or the `tests:` of a workflow file; raise `DslError` with file:line for every issue."""
    data, marks = load_yaml(text, file=file)
    embedded = isinstance(data, dict) and "tasks" in data and "tests" in data
    if not isinstance(data, dict) or not is_test_document(data):
        raise DslError([Issue("", "a test file is a mapping with `workflow` and `cases`", file, 1, 1)])
    try:
        if embedded:
            cases = _Embedded.model_validate({"tests": data["tests"]}).tests
            return TestFile(file=file, workflow=None, cases=cases, marks=marks, prefix="tests")
        parsed = _TestFile.model_validate(data)
    except ValidationError as exc:
        raise DslError(_issues(exc, data, marks, file)) from None
    return TestFile(file=file, workflow=parsed.workflow, cases=parsed.cases, marks=marks, prefix="cases")


def _issues(exc: ValidationError, data: Any, marks: Marks, file: str) -> list[Issue]:
    issues = []
    for error in exc.errors(include_url=False):
        path, position = locate(data, marks, error["loc"])
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
        line, column = position if position else (None, None)
        issues.append(Issue(format_path(path), message, file, line, column))
    return sorted(set(issues), key=lambda i: (i.line or 0, i.column or 0, i.path))


def check_cases(tests: TestFile, definition: WorkflowDefinition) -> list[Issue]:
    """Every reference of the cases to the definition that does not hold: unknown tasks, wrong kinds, bad params."""
    issues: list[Issue] = []
    tasks = {task.id: task for task in (*definition.tasks, *definition.on_failure)}
    names: dict[str, int] = {}
    for index, case in enumerate(tests.cases):
        at: tuple[str | int, ...] = (tests.prefix, index)
        if case.name in names:
            issues.append(tests.issue((*at, "name"), f"another case (#{names[case.name] + 1}) has this name"))
        names.setdefault(case.name, index)
        for task_id in case.mocks:
            task = tasks.get(task_id)
            if not isinstance(task, ActivityTask):
                why = (
                    "is not a task of the workflow" if task is None else f"is not an activity task (type: {task.type})"
                )
                issues.append(tests.issue((*at, "mocks", task_id), f"cannot mock {task_id!r}: it {why}"))
        for task_id in case.approvals:
            if not isinstance(tasks.get(task_id), ApprovalTask):
                issues.append(tests.issue((*at, "approvals", task_id), f"{task_id!r} is not an approval task"))
        for task_id in case.expect.tasks:
            if task_id not in tasks:
                issues.append(tests.issue((*at, "expect", "tasks", task_id), f"{task_id!r} is not a task"))
        try:
            resolve_params(definition, case.params)
        except DslError as exc:
            for problem in exc.issues:
                name = problem.path.removeprefix("parameters.")
                loc = (*at, "params", name) if name in case.params else (*at, "params")
                issues.append(
                    tests.issue(loc, problem.message if name in case.params else f"{name}: {problem.message}")
                )
    return sorted(issues, key=lambda i: (i.line or 0, i.column or 0))
