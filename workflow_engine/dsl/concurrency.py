"""`concurrency`: at most `limit` runs (or tasks) holding the same rendered key at once, across every worker."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .durations import Duration

# Temporal workflow ids are capped (1000 bytes by default); longer keys, or keys with control characters, are hashed.
MAX_KEY_CHARS = 200
LOCK_ID_PREFIX = "wfe-lock:"


class Concurrency(BaseModel):
    """A key (an expression or a literal) and how many holders of it may run at once; the rest queue, skip or fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=1000, description="Rendered once, e.g. ${{ params.environment }}.")
    limit: int = Field(1, ge=1, le=1000, description="At most this many holders of the key at once.")
    on_conflict: Literal["queue", "skip", "fail"] = Field(
        "queue", description="When the key is taken: wait in arrival order, skip, or fail with ConcurrencyConflict."
    )
    timeout: Duration | None = Field(None, description="With queue: fail with ConcurrencyConflict after this long.")

    @model_validator(mode="after")
    def _timeout_needs_queue(self) -> Concurrency:
        """Only a queued request waits, so only it can time out."""
        if self.timeout is not None and self.on_conflict != "queue":
            raise ValueError(f"timeout needs on_conflict: queue, not {self.on_conflict}")
        return self


def key_text(value: Any) -> str:
    """The key a rendered `key` value names: a string as it is, anything else as compact sorted JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def lock_id(key: str, task_queue: str) -> str:
    """The workflow id of the lock of `key` for the deployment on `task_queue`: `wfe-lock:<queue>:<key>`.

    The key is hashed (SHA-256) when long or not printable. The task queue is part of the id because the lock runs
    on the deployment's workers: two deployments sharing a namespace (staging beside production, test runs) never
    share a lock whose workers may be gone.
    """
    if key and len(key) <= MAX_KEY_CHARS and key.isprintable():
        return f"{LOCK_ID_PREFIX}{task_queue}:{key}"
    return f"{LOCK_ID_PREFIX}{task_queue}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
