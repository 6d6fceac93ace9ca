"""The generic interpreter: one dynamic workflow runs any registered definition as a DAG."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from heapq import heappop, heappush
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflow_engine.dsl import ExpressionError, Task, WorkflowDefinition, is_true, render, task_graph
    from workflow_engine.dsl.model import ApprovalTask, SetTask, SleepTask

    from ..concurrency import LOCK_GRANTED_SIGNAL, LockGrant
    from ..types import (
        APPROVAL_SIGNAL,
        APPROVE_UPDATE,
        FINAL_MEMO,
        FINAL_MEMO_MAX_BYTES,
        FINAL_STATES_PATCH,
        RECORD_APPROVAL_ACTIVITY,
        SA_REVISION,
        SA_WAITING_APPROVAL,
        SA_WORKFLOW_NAME,
        SIGNED_APPROVALS_PATCH,
        STATUS_QUERY,
        VERIFY_APPROVAL_ACTIVITY,
        ApprovalAudit,
        ApprovalDecision,
        RunInput,
        SignatureCheck,
        TaskState,
        TaskStatus,
    )

# the interpreter's own helpers: sandboxed with it (engine/workflow/ is the sandbox boundary)
from .approvals import check, outcome, refusal
from .compensation import Saga
from .keyed import CONFLICT, RUN_SCOPE, Keys, Refused, conflict, skipped_output
from .notifications import notify_failure, notify_waiting
from .steps import SECRETS, FanOutFailed, StepFailed, Steps, cancel_requested

# Looked up once: each read of a module attribute in workflow code goes through the sandbox's module proxy.
_create_task = asyncio.create_task
_FIRST_COMPLETED = asyncio.FIRST_COMPLETED


class _RunFailed(Exception):
    """A task failed (or was rejected) and the run must fail."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(message)
        self.task_id, self.message = task_id, message


def _more_than(approvals: list[dict[str, Any]], seen: int) -> bool:
    return len(approvals) > seen


def _decision(payload: Any, via: str, verified: bool | None = False) -> ApprovalDecision:
    """Read a decision payload (a JSON object) leniently; shape problems surface as refusals.

    Only a verified decision (signed by the API) keeps the roles it names; an unverified one keeps just the
    approver's name, and `via` is ours, never the sender's. `verified=None` reads it as runs did before
    SIGNED_APPROVALS_PATCH, so their histories replay.
    """
    data = payload if isinstance(payload, dict) else {}
    roles = data.get("roles") if verified is not False else None
    return ApprovalDecision(
        task_id=str(data.get("task_id", "")),
        decision=str(data.get("decision", "")),
        approver=str(data.get("approver", "")),
        comment=data.get("comment") if isinstance(data.get("comment"), str) else None,
        roles=[str(r) for r in roles] if isinstance(roles, list) else [],
        via=via,
        verified=verified,
    )


def _signed(payload: Any) -> bool:
    return isinstance(payload, dict) and "signature" in payload


def _count_items(state: TaskState, done: int, total: int) -> None:
    """Keep a fan-out's item counts in its state (the status query shows them; no command depends on them)."""
    state.items_done, state.items_total = done, total


@workflow.defn(dynamic=True)
class Interpreter:
    """Runs the tasks of the pinned definition and answers `status`, `approval` and `approve`."""

    @workflow.init
    def __init__(self, args: Sequence[RawValue]) -> None:
        """Load the pinned definition before any handler runs, so early signals see real tasks."""
        self.run_input = workflow.payload_converter().from_payload(args[0].payload, RunInput)
        self.ignored: list[dict[str, Any]] = []
        self.tasks: dict[str, TaskState] = {}
        self.context: dict[str, Any] = {}
        self.waiting = False
        self.audited: dict[str, int] = {}
        self.steps = Steps(self.run_input)
        self.saga = Saga(self.steps)
        self.keys = Keys(self.run_input.resume)
        self.definition: WorkflowDefinition | None = None
        self.load_error: str | None = None
        try:
            self.definition = WorkflowDefinition.from_stored(self.run_input.definition)
        except ValidationError as exc:
            self.load_error = f"the pinned definition is invalid: {exc}"
            return
        info = workflow.info()
        all_tasks = [*self.definition.tasks, *self.definition.on_failure]
        self.tasks = {t.id: TaskState(id=t.id, name=t.display_name, type=t.type) for t in all_tasks}
        pending = TaskStatus.PENDING.value
        self.context = {
            "params": self.run_input.params,
            "tasks": {t.id: {"status": pending, "output": None, "error": None} for t in all_tasks},
            "workflow": {"name": info.workflow_type, "revision": self.run_input.revision,
                         "execution_id": info.workflow_id, "started_at": info.start_time.isoformat()},
        }  # fmt: skip
        if self.run_input.resume:
            self.tasks.update((tid, TaskState.from_json(s)) for tid, s in self.run_input.resume["tasks"].items())
            self.context["tasks"].update(self.run_input.resume["context"])

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> dict[str, Any]:
        """Every task's state in definition order, refused signals, who started the run and each waiting policy.

        `approval_policies` holds the config of each task waiting for approval, so the console's inbox can apply
        the same `check` the run will (a query adds no command: recorded histories still replay).
        """
        policies = {
            task_id: config.model_dump(mode="json", exclude={"message"})
            for task_id, state in self.tasks.items()
            if state.status == TaskStatus.WAITING_APPROVAL and (config := self._approval_config(task_id)) is not None
        }
        return {"tasks": [state.as_json() for state in self.tasks.values()], "ignored_signals": self.ignored,
                "started_by": self.run_input.started_by, "approval_policies": policies,
                **self.keys.status()}  # fmt: skip

    @workflow.signal(name=LOCK_GRANTED_SIGNAL)
    def lock_granted(self, grant: LockGrant) -> None:
        """Note that a concurrency key this run queued for is now its own (engine/workflow/keyed.py)."""
        self.keys.granted(grant)

    @workflow.signal(name=APPROVAL_SIGNAL)
    def approval(self, payload: Any) -> None:
        """Take a decision sent as a signal (unverified: a name, no roles); an invalid one is recorded and ignored."""
        decision = _decision(payload, "signal", False if workflow.patched(SIGNED_APPROVALS_PATCH) else None)
        reason = self._refusal(decision)
        if reason is not None:
            workflow.logger.warning("ignored approval signal: %s", reason)
            self.ignored.append({"payload": payload, "reason": reason, "at": workflow.now().isoformat()})
            return
        self._record(decision)

    @workflow.update(name=APPROVE_UPDATE)
    async def approve(self, payload: Any) -> dict[str, Any]:
        """Take a decision synchronously; answer once it is audited or has decided the task.

        A signed decision (from the API) is checked by the `verify_approval` activity, which holds the key; an
        unsigned one is an unverified decision, like a signal.
        """
        if not workflow.patched(SIGNED_APPROVALS_PATCH):
            decision = _decision(payload, str(payload.get("via", "update")) if isinstance(payload, dict) else "update",
                                 None)  # fmt: skip
        elif _signed(payload):
            verdict = await workflow.execute_local_activity(
                VERIFY_APPROVAL_ACTIVITY, payload, result_type=SignatureCheck,
                start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=3),
                summary="verify approval signature",
            )  # fmt: skip
            if not verdict.valid:
                raise ApplicationError(verdict.reason or "invalid signature", type="invalid_signature",
                                       non_retryable=True)  # fmt: skip
            decision = _decision(payload, "api", True)
            self._refuse_update(decision)  # the task may have changed while the signature was checked
        else:
            decision = _decision(payload, "update", False)
            self._refuse_update(decision)
        self._record(decision)
        state = self.tasks[decision.task_id]
        position = len(state.approvals or ())
        await workflow.wait_condition(
            lambda: state.status != TaskStatus.WAITING_APPROVAL or self.audited.get(decision.task_id, 0) >= position
        )
        return state.as_json()

    @approve.validator
    def _validate_approve(self, payload: Any) -> None:
        # a signed payload is judged on what it claims here and proven in the handler; the rest is unverified
        self._refuse_update(_decision(payload, "update", _signed(payload)))

    def _refuse_update(self, decision: ApprovalDecision) -> None:
        config = self._approval_config(decision.task_id)
        state = self.tasks.get(decision.task_id) if config is not None else None
        found = check(state, config, decision, self.run_input.started_by)
        if found is not None:
            raise ApplicationError(found[1], type=found[0], non_retryable=True)

    def _approval_config(self, task_id: str) -> Any:
        if self.definition is None:
            return None
        task = next((t for t in self.definition.tasks if t.id == task_id), None)
        return task.config if isinstance(task, ApprovalTask) else None

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        config = self._approval_config(decision.task_id)
        state = self.tasks.get(decision.task_id) if config is not None else None
        return refusal(state, config, decision, self.run_input.started_by)

    def _record(self, decision: ApprovalDecision) -> None:
        entry: dict[str, Any] = {
            "approver": decision.approver, "decision": decision.decision, "comment": decision.comment,
            "at": workflow.now().isoformat(), "via": decision.via,
        }  # fmt: skip
        if decision.verified is not None:
            entry["verified"] = decision.verified
        state = self.tasks[decision.task_id]
        if state.approvals is None:  # accepted decisions come while the task waits, which sets the list
            state.approvals = []
        state.approvals.append(entry)

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> Any:
        """Run every task, then render and return the workflow `output`."""
        if self.definition is None:
            raise ApplicationError(self.load_error or "no definition", type="InvalidDefinition", non_retryable=True)
        if self.run_input.batch is not None:
            return await self.steps.run_batch(self.definition, self.run_input.batch)
        if RUN_SCOPE not in self.keys.entered:  # a run holding its key comes back here once, from _hold_run
            workflow.upsert_search_attributes(
                [SA_WORKFLOW_NAME.value_set(self.definition.name), SA_REVISION.value_set(self.run_input.revision)]
            )
        if self.keys.wants(RUN_SCOPE, self.definition.concurrency):
            return await self._hold_run(args)
        try:
            try:
                await self._run_dag(self.definition.tasks, fail_fast=True)
            except _RunFailed as failure:
                await self.saga.run(self.definition, self.tasks, self.context)
                await self._run_on_failure(failure)
                raise ApplicationError(
                    f"task {failure.task_id!r} failed: {failure.message}",
                    {"task_id": failure.task_id},
                    type="TaskFailed",
                    non_retryable=True,
                ) from None
            try:
                output = render(self.definition.output, self.context, defer=SECRETS)
            except ExpressionError as exc:
                raise ApplicationError(f"output: {exc}", type="ExpressionError", non_retryable=True) from None
        except ApplicationError as failure:  # the run fails: say so, and keep its final states
            try:
                await self._notify_failure(failure)
            finally:  # also when the run is cancelled while it notifies
                self._keep_final_states()
            raise
        except asyncio.CancelledError:
            await self.saga.run(self.definition, self.tasks, self.context)
            self._keep_final_states()
            raise
        self._keep_final_states()
        return output

    async def _hold_run(self, args: Sequence[RawValue]) -> Any:
        """Run the whole run holding its concurrency key; a refused key skips or fails it before any task runs."""
        definition = self.definition_or_fail()
        assert definition.concurrency is not None
        try:
            return await self.keys.hold(RUN_SCOPE, definition.concurrency, self.context, partial(self.run, args))
        except Refused as refused:
            if refused.skip:
                for task in definition.tasks:
                    self.finish(task.id, TaskStatus.SKIPPED)
            self._keep_final_states()
            if refused.skip:
                return skipped_output(refused.key)
            raise conflict(refused) from None
        except ExpressionError as exc:
            raise ApplicationError(f"concurrency.key: {exc}", type="ExpressionError", non_retryable=True) from None
        except asyncio.CancelledError:
            if self.keys.run_hold is None:  # cancelled while it waited for its key (else the body kept them)
                self._keep_final_states()
            raise

    async def _hold_task(self, task: Task) -> None:
        """Run a task holding its concurrency key: it is running (waiting_for the key) until the lock grants it."""
        assert task.concurrency is not None
        state, body = self.tasks[task.id], partial(self._run_task, task)
        try:
            if task.when is not None and not is_true(render(task.when, self.context)):
                self.keys.entered.add(task.id)  # skipped by the body, which asks for no key
                await body()
                return
            self._set_status(task.id, TaskStatus.RUNNING)
            await self.keys.hold(task.id, task.concurrency, self.context, body, state)
        except ExpressionError as exc:
            self.finish(task.id, TaskStatus.FAILED, error=f"ExpressionError: {exc}")
        except Refused as refused:
            if refused.skip:
                self.finish(task.id, TaskStatus.SKIPPED, output=skipped_output(refused.key))
            else:
                self.finish(task.id, TaskStatus.FAILED, error=f"{CONFLICT}: {refused.message}")
        except asyncio.CancelledError:
            if not state.status.finished:
                self.finish(task.id, TaskStatus.CANCELLED)
            raise
        finally:
            self.keys.entered.discard(task.id)

    async def _notify_failure(self, failure: ApplicationError) -> None:
        details = failure.details[0] if failure.details and isinstance(failure.details[0], dict) else {}
        state = self.tasks.get(str(details.get("task_id")))
        await notify_failure(self.definition_or_fail(), state, failure.message, self.context)

    def _keep_final_states(self) -> None:
        """Put what `status` answers in the memo as the run closes, unless it is too large for a memo."""
        if not workflow.patched(FINAL_STATES_PATCH):
            return
        final = self.status()
        try:
            size = workflow.payload_converter().to_payload(final).ByteSize()
        except Exception:  # noqa: BLE001 - the memo must never keep a run from closing; readers ask a worker then
            return
        if size <= FINAL_MEMO_MAX_BYTES:
            workflow.upsert_memo({FINAL_MEMO: final})

    async def _run_on_failure(self, failure: _RunFailed) -> None:
        assert self.definition is not None
        if not self.definition.on_failure:
            return
        self.context["error"] = {"message": failure.message, "task_id": failure.task_id}
        await self._run_dag(self.definition.on_failure, fail_fast=False)

    async def _run_dag(self, tasks: Sequence[Task], *, fail_fast: bool) -> None:
        """Run `tasks` as their dependencies allow, ready ones in definition order, at most `max_parallel` at once."""
        assert self.definition is not None
        max_parallel = self.definition.max_parallel
        ready, dependents, remaining, pending = self._readiness(tasks)
        running: dict[int, asyncio.Task[None]] = {}  # by definition index, in start order
        inline = self._may_run_inline()
        while pending or running:
            if not running and fail_fast and workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
            if inline and not running and ready and (len(ready) == 1 or max_parallel == 1):
                index = heappop(ready)  # the one task that would start, while nothing runs: run it here, no task
                pending -= 1
                await self._run_task(tasks[index])
                if cancel_requested():  # the run was cancelled and the task ended without saying so
                    raise asyncio.CancelledError
                await self._stop_if_fatal(tasks[index], fail_fast, running)
                self._release(dependents[index], remaining, ready)
                continue
            while ready and len(running) < max_parallel:
                index = heappop(ready)
                pending -= 1
                running[index] = _create_task(self._run_task(tasks[index]))
            if not running:
                return
            try:
                await workflow.wait(list(running.values()), return_when=_FIRST_COMPLETED)
            except asyncio.CancelledError:  # the run is cancelled: stop what runs so each task records it
                for other in running.values():
                    other.cancel()
                await workflow.wait(list(running.values()))
                raise
            for index in [i for i, fut in running.items() if fut.done()]:
                running.pop(index).result()
                await self._stop_if_fatal(tasks[index], fail_fast, running)
                self._release(dependents[index], remaining, ready)

    def _may_run_inline(self) -> bool:
        """Whether a task that starts alone may run in the run's own coroutine instead of a task of its own.

        Inline, it spends fewer event-loop callbacks, which changes nothing a history records while the DAG is the
        only code that sends commands. An approval `update` sends its own (accepted, completed), and finishing in
        the same workflow task as a step it could then come after that step's commands instead of before: runs
        of a definition with an approval task keep a task per step, so their histories replay as they were.
        """
        assert self.definition is not None
        return not any(isinstance(t, ApprovalTask) for t in (*self.definition.tasks, *self.definition.on_failure))

    def _readiness(self, tasks: Sequence[Task]) -> tuple[list[int], list[list[int]], list[int], int]:
        """Index the tasks not finished yet: ready ones, dependents, dependencies left, how many there are.

        Ready tasks are a heap of definition indexes (so they start in definition order); each task lists the
        unfinished tasks that depend on it and counts its own unfinished dependencies.
        """
        graph = task_graph(tasks)
        position = {t.id: i for i, t in enumerate(tasks)}
        dependents: list[list[int]] = [[] for _ in tasks]
        remaining = [0] * len(tasks)
        ready: list[int] = []  # increasing, so already a heap
        pending = 0
        for index, task in enumerate(tasks):
            if self.tasks[task.id].status.finished:
                continue
            pending += 1
            for dep in graph[task.id]:
                if not self.tasks[dep].status.finished:
                    remaining[index] += 1
                    if dep in position:  # one outside these tasks stays unfinished, as the task waiting for it
                        dependents[position[dep]].append(index)
            if not remaining[index]:
                ready.append(index)
        return ready, dependents, remaining, pending

    @staticmethod
    def _release(dependents: list[int], remaining: list[int], ready: list[int]) -> None:
        """Count one more finished dependency for each of `dependents`; those with none left become ready."""
        for index in dependents:
            remaining[index] -= 1
            if not remaining[index]:
                heappush(ready, index)

    async def _stop_if_fatal(self, task: Task, fail_fast: bool, running: dict[int, asyncio.Task[None]]) -> None:
        """Fail the run when `task` ended fatally and it may not go on, once the tasks still running are cancelled."""
        state = self.tasks[task.id]
        if fail_fast and state.status.fatal and not task.continue_on_error:
            for other in running.values():
                other.cancel()
            if running:
                await workflow.wait(list(running.values()))
            raise _RunFailed(task.id, state.error or state.status.value)

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        tasks = {task_id: state.as_json() for task_id, state in self.tasks.items()}
        workflow.continue_as_new(
            self.run_input.for_continue_as_new({"tasks": tasks, "context": self.context["tasks"], **self.keys.carry()})
        )

    async def _run_task(self, task: Task) -> None:
        if self.keys.wants(task.id, task.concurrency):
            await self._hold_task(task)
            return
        state = self.tasks[task.id]
        try:
            if task.when is not None and not is_true(render(task.when, self.context)):
                self.finish(task.id, TaskStatus.SKIPPED)
                return
            state.started_at = workflow.now().isoformat()
            self._set_status(task.id, TaskStatus.RUNNING)
            if isinstance(task, ApprovalTask):
                await self._wait_for_approval(task)
                return
            if isinstance(task, SetTask):
                output, attempts = render(task.config, self.context, defer=SECRETS), 0
            elif isinstance(task, SleepTask):
                await self.steps.sleep(task, self.context)
                output, attempts = None, 0
            else:
                done = {int(index): output for index, output in (state.items or {}).items()}
                output, attempts = await self.steps.execute(
                    task, self.definition_or_fail(), self.context, done, partial(_count_items, state)
                )
                state.items = None
            state.attempts = attempts
            self.finish(task.id, TaskStatus.COMPLETED, output=output)
            self.saga.note(task)
        except ExpressionError as exc:
            self.finish(task.id, TaskStatus.FAILED, error=f"ExpressionError: {exc}")
        except StepFailed as exc:
            if cancel_requested():  # a cancelled activity or child reports the cancellation as a failure
                self.finish(task.id, TaskStatus.CANCELLED)
                raise asyncio.CancelledError from None
            state.attempts = exc.attempts or state.attempts
            if isinstance(exc, FanOutFailed):  # what a resume keeps
                state.items = {str(index): output for index, output in sorted(exc.completed.items())}
            self.finish(task.id, TaskStatus.FAILED, error=exc.message)
            if state.items:  # a fan-out that failed part-way: its completed items are undone too
                self.saga.note(task)
        except asyncio.CancelledError:
            self.finish(task.id, TaskStatus.CANCELLED)
            self._set_waiting()  # a cancelled approval no longer waits
            raise

    def _set_status(self, task_id: str, status: TaskStatus) -> None:
        """Move a task that has not finished to `status`, both for the status query and for expressions."""
        self.tasks[task_id].status = status
        self.context["tasks"][task_id]["status"] = status.value

    def finish(self, task_id: str, status: TaskStatus, *, output: Any = None, error: str | None = None) -> None:
        """Record a task's final state, both for the status query and for expressions."""
        state = self.tasks[task_id]
        state.status, state.finished_at, state.output, state.error = status, workflow.now().isoformat(), output, error
        self.context["tasks"][task_id] = {"status": status.value, "output": output, "error": error}

    def definition_or_fail(self) -> WorkflowDefinition:
        """Return the loaded definition (run() refuses to start without one)."""
        assert self.definition is not None
        return self.definition

    async def _wait_for_approval(self, task: ApprovalTask) -> None:
        config, state = task.config, self.tasks[task.id]
        message = render(config.message, self.context)
        deadline = workflow.now() + config.timeout if config.timeout else None
        approvals: list[dict[str, Any]] = []
        state.message, state.approvals, state.approvers = message, approvals, config.approvers
        state.required_approvals, state.deadline = config.required_approvals, deadline.isoformat() if deadline else None
        self._set_status(task.id, TaskStatus.WAITING_APPROVAL)
        self._set_waiting()
        notify_waiting(self.definition_or_fail(), task, state, self.context)
        timed_out, recorded = False, 0
        while (decision := outcome(config, state)) is None:
            remaining = None if deadline is None else max(deadline - workflow.now(), timedelta(milliseconds=1))
            try:
                await workflow.wait_condition(partial(_more_than, approvals, recorded), timeout=remaining)
            except TimeoutError:
                timed_out, decision = True, config.on_timeout
                break
            for given in approvals[recorded:]:
                await self._audit(task.id, given)
            recorded = self.audited[task.id] = len(approvals)
        for given in approvals[recorded:]:
            await self._audit(task.id, given)
        self.audited[task.id] = len(approvals)
        output = {"decision": decision, "approvals": list(approvals), "timed_out": timed_out}
        if decision == "approve":
            self.finish(task.id, TaskStatus.COMPLETED, output=output)
        elif decision == "reject":
            who = [a["approver"] for a in approvals if a["decision"] == "reject"]
            self.finish(task.id, TaskStatus.REJECTED, output=output, error=f"rejected by {', '.join(who)}" if who else
                        "rejected: the approval timed out")  # fmt: skip
        else:
            self.finish(task.id, TaskStatus.FAILED, output=output, error=f"approval timed out after {config.timeout}")
        self._set_waiting()

    async def _audit(self, task_id: str, given: dict[str, Any]) -> None:
        """Write one decision to the audit trail in the database; a failure is noted, not fatal."""
        info = workflow.info()
        record = ApprovalAudit(
            execution_id=info.workflow_id, workflow_name=info.workflow_type, task_id=task_id,
            approver=given["approver"], decision=given["decision"], comment=given["comment"], via=given["via"],
            at=given["at"],
        )  # fmt: skip
        try:
            await workflow.execute_local_activity(
                RECORD_APPROVAL_ACTIVITY, record, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=5), summary=f"audit {task_id}",
            )  # fmt: skip
        except (ActivityError, ApplicationError) as exc:
            workflow.logger.warning("approval audit not stored: %s", exc)
            given["audit_error"] = str(exc)

    def _set_waiting(self) -> None:
        waiting = any(state.status == TaskStatus.WAITING_APPROVAL for state in self.tasks.values())
        if waiting != self.waiting:
            self.waiting = waiting
            workflow.upsert_search_attributes([SA_WAITING_APPROVAL.value_set(waiting)])
