"""Mocked activity tasks: an interceptor answering a case's mocks by (run, task id), before the real activity runs.

It sits on the client the test worker is built on, so every activity worker runs it first (outermost) and the
interpreter schedules exactly what it would in production: the mock replaces the activity's body, not its
options, so its retry policy, timeouts and `non_retryable_errors` apply to a mocked failure as to a real one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, client, worker
from temporalio.exceptions import ApplicationError

from workflow_engine.dsl.testcases import Mock
from workflow_engine.engine.types import ActivityInput, ActivityResult

# The test server skips timers but not an activity's retry backoff (it holds the clock while an activity is due),
# so a mocked failure asks for its retry at once instead: `times: 3` costs no wall time.
RETRY_AT_ONCE = timedelta(milliseconds=1)


class MockTable(client.Interceptor, worker.Interceptor):
    """The mocks of the cases running now, by execution id; unmocked tasks run their real activity."""

    def __init__(self) -> None:
        """Start with no case."""
        self.runs: dict[str, dict[str, Mock]] = {}

    def lookup(self, workflow_id: str, task_id: str) -> Mock | None:
        """The mock of a task of a run, or of a fan-out batch child of it (`<run>/<task>/batch-N`)."""
        run = workflow_id
        if workflow_id not in self.runs and "/batch-" in workflow_id:
            run = workflow_id.split("/", 1)[0]
        return self.runs.get(run, {}).get(task_id)

    def intercept_activity(self, next: worker.ActivityInboundInterceptor) -> worker.ActivityInboundInterceptor:
        """Answer mocked tasks in place of the activity."""
        return _Inbound(next, self)


class _Inbound(worker.ActivityInboundInterceptor):
    def __init__(self, next: worker.ActivityInboundInterceptor, table: MockTable) -> None:
        super().__init__(next)
        self.table = table

    async def execute_activity(self, input: worker.ExecuteActivityInput) -> Any:
        task = input.args[0] if input.args else None
        info = activity.info()
        mock = self.table.lookup(info.workflow_id or "", task.task_id) if isinstance(task, ActivityInput) else None
        if mock is None:
            return await self.next.execute_activity(input)
        output, error = mock.answer(info.attempt)
        if error is not None:
            raise ApplicationError(error, type=mock.error_type, next_retry_delay=RETRY_AT_ONCE)
        return ActivityResult(output=output, attempt=info.attempt)
