"""The interpreter's side of keyed concurrency: take a run's or a task's key from its lock, and give it back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from workflow_engine.dsl import render
    from workflow_engine.dsl.concurrency import Concurrency, key_text, lock_id

    from ..concurrency import (
        CONCURRENCY_PATCH,
        LOCK_ACQUIRE_ACTIVITY,
        LOCK_RELEASE_SIGNAL,
        AcquireInput,
        LockAnswer,
        LockGrant,
        LockRequest,
    )
    from ..types import TaskState

CONFLICT = "ConcurrencyConflict"
RUN_SCOPE = "run"
_ContinueAsNew = workflow.ContinueAsNewError


@dataclass
class Held:
    """A key this run holds (or waits for): which key, its lock, and the request."""

    key: str
    lock: str
    request_id: str

    def as_json(self) -> dict[str, str]:
        """What a continue-as-new carries to the next run."""
        return {"key": self.key, "lock": self.lock, "request_id": self.request_id}


class Refused(Exception):
    """The key is taken and the request does not queue (skip, fail) or waited past its timeout."""

    def __init__(self, key: str, skip: bool, message: str) -> None:
        super().__init__(message)
        self.key, self.skip, self.message = key, skip, message


class Keys:
    """The keys of one run: grants received by signal, the run's own hold, and what the status query shows."""

    def __init__(self, resume: dict[str, Any] | None) -> None:
        """Take over the run's hold from the run it continues (if it held its key)."""
        carried = (resume or {}).get("concurrency")
        self.carried = Held(**carried) if isinstance(carried, dict) else None
        self.run_hold: Held | None = None
        self.entered: set[str] = set()  # scopes (run, task ids) whose body runs under their key now
        self.grants: dict[str, str] = {}  # request id -> key, from `wfe.lock_granted`
        self.waiting: dict[str, str] = {}  # scope -> key it waits for (for the status query)

    def granted(self, grant: LockGrant) -> None:
        """Note a grant signal (it may come before the acquire activity's answer does)."""
        self.grants[grant.request_id] = grant.key

    def wants(self, scope: str, concurrency: Concurrency | None) -> bool:
        """Whether `scope` must take a key before its body runs (once per scope, and only after the patch)."""
        return concurrency is not None and scope not in self.entered and workflow.patched(CONCURRENCY_PATCH)

    def carry(self) -> dict[str, Any]:
        """What the resume of a continue-as-new keeps: the run's hold, so the next run does not ask again."""
        return {"concurrency": self.run_hold.as_json()} if self.run_hold is not None else {}

    def status(self) -> dict[str, Any]:
        """The status query's `concurrency` entry: keys waited for and the run's own key, if any."""
        if not self.waiting and self.run_hold is None:
            return {}
        held = self.run_hold.key if self.run_hold is not None and RUN_SCOPE not in self.waiting else None
        return {"concurrency": {"waiting_for": dict(self.waiting), "run_key": held}}

    async def hold(
        self,
        scope: str,
        concurrency: Concurrency,
        context: dict[str, Any],
        body: Callable[[], Awaitable[Any]],
        state: TaskState | None = None,
    ) -> Any:
        """Run `body` holding the key (waiting for it first as `on_conflict` says) and release it in all cases.

        Raises:
            Refused: The key is taken and the request skips or fails, or it waited past `timeout`.
            ExpressionError: The key does not render.
        """
        self.entered.add(scope)
        held = self.carried if scope == RUN_SCOPE else None
        self.carried = None
        if held is None:
            held = await self._acquire(scope, concurrency, key_text(render(concurrency.key, context)), state)
        if scope == RUN_SCOPE:
            self.run_hold = held
        release = True
        try:
            return await body()
        except _ContinueAsNew:
            release = False  # the next run holds it (`carry`)
            raise
        finally:
            if release:
                await self._release(held)
            self.entered.discard(scope)

    async def _acquire(self, scope: str, concurrency: Concurrency, key: str, state: TaskState | None) -> Held:
        info = workflow.info()
        held = Held(
            key=key,
            lock=lock_id(key, info.task_queue),
            request_id=f"{info.workflow_id}/{scope}/{workflow.uuid4().hex[:12]}",
        )
        request = LockRequest(held.request_id, info.workflow_id, concurrency.limit, concurrency.on_conflict)
        try:
            answer = await workflow.execute_local_activity(
                LOCK_ACQUIRE_ACTIVITY, AcquireInput(key, held.lock, info.task_queue, request), result_type=LockAnswer,
                start_to_close_timeout=timedelta(seconds=30), summary=f"concurrency {key}"[:200],
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            )  # fmt: skip
        except asyncio.CancelledError:
            await self._release(held)  # the lock may have queued it before the cancellation
            raise
        if answer.granted:
            return held
        if not answer.queued:
            holders = ", ".join(answer.holders) or "others"
            raise Refused(key, concurrency.on_conflict == "skip", f"concurrency key {key!r} is held by {holders}")
        self.waiting[scope] = key
        if state is not None:
            state.waiting_for = key
        try:
            await workflow.wait_condition(lambda: held.request_id in self.grants, timeout=concurrency.timeout)
        except TimeoutError:
            await self._release(held)  # leave the queue
            raise Refused(key, False, f"waited {concurrency.timeout} for concurrency key {key!r}") from None
        except asyncio.CancelledError:
            await self._release(held)  # leave the queue (or give back a grant on its way)
            raise
        finally:
            self.waiting.pop(scope, None)
            if state is not None:
                state.waiting_for = None
        return held

    @staticmethod
    async def _release(held: Held) -> None:
        """Tell the lock the key is free (or that the request leaves its queue); a missing lock has nothing to free."""
        try:
            await workflow.get_external_workflow_handle(held.lock).signal(
                LOCK_RELEASE_SIGNAL, LockGrant(request_id=held.request_id, key=held.key)
            )
        except FailureError as exc:
            workflow.logger.warning("could not release concurrency key %r: %s", held.key, exc)


def conflict(refused: Refused) -> ApplicationError:
    """The run's (or task's) failure when it may not take its key."""
    return ApplicationError(refused.message, {"key": refused.key}, type=CONFLICT, non_retryable=True)


def skipped_output(key: str) -> dict[str, Any]:
    """The output of a run or task skipped because its key was taken."""
    return {"skipped": "concurrency", "key": key}
