"""The wire contract of keyed concurrency: the lock workflow's names, its state and what requesters send and get."""

# No `from __future__ import annotations`: the SDK reads these dataclasses' type hints for every payload (types.py).
from dataclasses import dataclass, field
from datetime import timedelta

LOCK_WORKFLOW = "wfe.lock"
LOCK_ACQUIRE_UPDATE = "wfe.lock_acquire"
LOCK_RELEASE_SIGNAL = "wfe.lock_release"
LOCK_GRANTED_SIGNAL = "wfe.lock_granted"
LOCK_STATE_QUERY = "wfe.lock_state"
LOCK_ACQUIRE_ACTIVITY = "wfe.lock_acquire"
LOCK_CHECK_ACTIVITY = "wfe.lock_check"
# Runs of a definition (or with a task) that has `concurrency` reached this marker before they asked for a key.
CONCURRENCY_PATCH = "wfe-concurrency"
# How often a lock asks Temporal whether its holders still run (a terminated or timed-out run never releases).
LOCK_CHECK_INTERVAL = timedelta(seconds=10)
# An idle lock waits this long for a new request before it completes (the next request starts it again).
LOCK_IDLE_LINGER = timedelta(seconds=30)
# A lock continues as new past this many events even if Temporal does not suggest it yet.
LOCK_MAX_HISTORY = 5000


@dataclass
class LockRequest:
    """One requester of a key: a run (scope `run`) or one of its tasks (scope: the task id)."""

    request_id: str
    workflow_id: str
    limit: int = 1
    on_conflict: str = "queue"
    at: str = ""  # when the lock took the request (ISO 8601), for its state query


@dataclass
class LockState:
    """A lock workflow's input: its key, and the holders and queue carried over a continue-as-new."""

    key: str
    holders: list[LockRequest] = field(default_factory=list)
    queue: list[LockRequest] = field(default_factory=list)


@dataclass
class LockAnswer:
    """What the lock says to a request: granted now, queued (a `wfe.lock_granted` signal follows), or neither."""

    granted: bool
    queued: bool = False
    position: int = 0  # in the queue, from 1
    holders: list[str] = field(default_factory=list)  # workflow ids holding the key when it was refused


@dataclass
class AcquireInput:
    """What the `wfe.lock_acquire` activity sends: the key, its lock's id and queue, and the request."""

    key: str
    lock_id: str
    task_queue: str
    request: LockRequest


@dataclass
class LockGrant:
    """The `wfe.lock_granted` signal to a queued requester, and the `wfe.lock_release` signal to the lock."""

    request_id: str
    key: str = ""
