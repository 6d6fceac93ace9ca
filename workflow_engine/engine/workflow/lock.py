"""The `wfe.lock` workflow: one per concurrency key, it grants the key to at most `limit` holders, in arrival order."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from ..concurrency import (
        LOCK_ACQUIRE_UPDATE,
        LOCK_CHECK_ACTIVITY,
        LOCK_CHECK_INTERVAL,
        LOCK_GRANTED_SIGNAL,
        LOCK_IDLE_LINGER,
        LOCK_MAX_HISTORY,
        LOCK_RELEASE_SIGNAL,
        LOCK_STATE_QUERY,
        LOCK_WORKFLOW,
        LockAnswer,
        LockGrant,
        LockRequest,
        LockState,
    )

_create_task = asyncio.create_task


@workflow.defn(name=LOCK_WORKFLOW)
class KeyLock:
    """Holders and a FIFO queue of one key; requests by update, releases by signal, grants by signal back.

    A queued request is granted once the holders are fewer than its own `limit`, and only when it is the head of
    the queue (so arrival order is kept even when requests disagree on the limit). A holder that stopped running
    without releasing (terminated, timed out) is found by a periodic check and dropped; a queued requester that
    is gone is dropped when its grant signal cannot be delivered.
    """

    @workflow.init
    def __init__(self, state: LockState) -> None:
        """Take the key and the holders and queue carried over a continue-as-new."""
        self.key = state.key
        self.holders: list[LockRequest] = list(state.holders)
        self.queue: list[LockRequest] = list(state.queue)
        self.changed = False
        self.telling: dict[str, asyncio.Task[None]] = {}  # grant signals in flight, by request id

    @workflow.update(name=LOCK_ACQUIRE_UPDATE)
    def acquire(self, request: LockRequest) -> LockAnswer:
        """Grant the key now, queue the request, or refuse it (skip, fail); asking again answers the same way."""
        if any(held.request_id == request.request_id for held in self.holders):
            return LockAnswer(granted=True)
        for position, waiting in enumerate(self.queue, start=1):
            if waiting.request_id == request.request_id:
                return LockAnswer(granted=False, queued=True, position=position)
        request.at = workflow.now().isoformat()
        if not self.queue and len(self.holders) < request.limit:
            self.holders.append(request)
            self.changed = True
            return LockAnswer(granted=True)
        if request.on_conflict != "queue":
            return LockAnswer(granted=False, holders=[held.workflow_id for held in self.holders])
        self.queue.append(request)
        self.changed = True
        return LockAnswer(granted=False, queued=True, position=len(self.queue))

    @workflow.signal(name=LOCK_RELEASE_SIGNAL)
    def release(self, release: LockGrant) -> None:
        """Drop a holder that is done, or a queued requester that gave up (cancelled, timed out)."""
        self._drop(lambda request: request.request_id == release.request_id)

    @workflow.query(name=LOCK_STATE_QUERY)
    def state(self) -> dict[str, Any]:
        """The key, its holders and its queue, in order."""
        return {"key": self.key, "holders": [vars(r) for r in self.holders], "queue": [vars(r) for r in self.queue]}

    @workflow.run
    async def run(self, state: LockState) -> None:
        """Grant as holders leave, check holders still run, and end once idle for LOCK_IDLE_LINGER."""
        next_check = workflow.now() + LOCK_CHECK_INTERVAL
        while True:
            self._grant()
            if not self.holders and not self.queue:
                try:
                    await workflow.wait_condition(lambda: bool(self.holders or self.queue), timeout=LOCK_IDLE_LINGER)
                except TimeoutError:
                    await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self.telling)
                    if not self.holders and not self.queue:
                        return
                continue
            self.changed = False
            wait = max(next_check - workflow.now(), timedelta(milliseconds=1))
            try:
                await workflow.wait_condition(lambda: self.changed, timeout=wait)
            except TimeoutError:
                await self._check()
                next_check = workflow.now() + LOCK_CHECK_INTERVAL
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > LOCK_MAX_HISTORY:
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self.telling)
                workflow.continue_as_new(LockState(key=self.key, holders=self.holders, queue=self.queue))

    def _grant(self) -> None:
        """Move the head of the queue to the holders while it fits, and tell each one it holds the key."""
        while self.queue and len(self.holders) < self.queue[0].limit:
            head = self.queue.pop(0)
            self.holders.append(head)
            self.telling[head.request_id] = _create_task(self._tell(head))

    async def _tell(self, request: LockRequest) -> None:
        try:
            await workflow.get_external_workflow_handle(request.workflow_id).signal(
                LOCK_GRANTED_SIGNAL, LockGrant(request_id=request.request_id, key=self.key)
            )
        except FailureError as exc:  # the requester no longer runs: its turn passes
            workflow.logger.info("dropping %s from %s: %s", request.request_id, self.key, exc)
            self._drop(lambda held: held.request_id == request.request_id)
        finally:
            del self.telling[request.request_id]

    async def _check(self) -> None:
        """Drop the holders whose workflow no longer runs."""
        running = list(dict.fromkeys(held.workflow_id for held in self.holders))
        closed = await workflow.execute_local_activity(
            LOCK_CHECK_ACTIVITY, running, result_type=list[str], start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)), summary="check holders",
        )  # fmt: skip
        if closed:
            gone = set(closed)
            self._drop(lambda held: held.workflow_id in gone)

    def _drop(self, which: Any) -> None:
        holders = [r for r in self.holders if not which(r)]
        queue = [r for r in self.queue if not which(r)]
        if len(holders) != len(self.holders) or len(queue) != len(self.queue):
            self.holders, self.queue, self.changed = holders, queue, True
