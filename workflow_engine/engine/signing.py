"""Signed approval decisions: the API signs what it proved (who, which roles), workers verify it in an activity.

The key is shared by the API and the workers (APPROVAL_SIGNING_KEY, or a key generated once into
APPROVAL_SIGNING_KEY_FILE). It never enters Temporal history: the workflow carries only the signature and asks
the `verify_approval` local activity whether it holds, so replay reads the recorded answer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity

from workflow_engine.settings import Settings

from .types import VERIFY_APPROVAL_ACTIVITY, SignatureCheck

# A signed decision is good for this long after the API issued it: a copy read from history is stale soon.
SIGNATURE_TTL = timedelta(minutes=5)
# The fields a signature covers, in this order; anything else in a payload is not trusted.
SIGNED_FIELDS = ("execution_id", "task_id", "decision", "approver", "roles", "comment", "issued_at")


def signing_key(settings: Settings) -> bytes:
    """Return the shared key: the setting, else the key file (created with a random key on first use)."""
    if settings.approval_signing_key:
        return settings.approval_signing_key.encode()
    return _key_file(Path(settings.approval_signing_key_file).resolve())


@functools.lru_cache(maxsize=8)
def _key_file(path: Path) -> bytes:
    """Read (or create) a key file once per process; a failure is not cached, so it is tried again."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # written whole under another name, then linked into place: a process racing us reads either no file
        # or the complete key of whichever process linked first, never a half-written one
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise ValueError(f"APPROVAL_SIGNING_KEY_FILE {path} is empty; delete it or set APPROVAL_SIGNING_KEY")
    return key.encode()


def _message(payload: dict[str, Any]) -> bytes:
    signed = {name: payload.get(name) for name in SIGNED_FIELDS}
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signature(key: bytes, payload: dict[str, Any]) -> str:
    """Return the HMAC-SHA256 (hex) of a payload's signed fields."""
    return hmac.new(key, _message(payload), hashlib.sha256).hexdigest()


def sign(key: bytes, payload: dict[str, Any]) -> dict[str, Any]:
    """Return `payload` with `issued_at` (now) and the `signature` over its signed fields."""
    signed = {**payload, "issued_at": datetime.now(UTC).isoformat()}
    signed["signature"] = signature(key, signed)
    return signed


def check_signature(key: bytes, payload: dict[str, Any], execution_id: str, now: datetime) -> str | None:
    """Return why a signed payload is not genuine for this run at `now`, or None when it is."""
    given = payload.get("signature")
    if not isinstance(given, str) or not hmac.compare_digest(given, signature(key, payload)):
        return "the decision's signature is not valid (it was not signed by this deployment's API)"
    if payload.get("execution_id") != execution_id:
        return "the decision was signed for another execution"
    try:
        issued = datetime.fromisoformat(str(payload.get("issued_at")))
    except ValueError:
        return "the decision's issued_at is not a timestamp"
    if issued.tzinfo is None or abs(now - issued) > SIGNATURE_TTL:
        return f"the signed decision has expired (signatures are valid for {SIGNATURE_TTL})"
    return None


class ApprovalVerifier:
    """Holds the worker's copy of the key; its bound method is the `verify_approval` local activity."""

    def __init__(self, settings: Settings) -> None:
        """Remember the settings; the key is read on first use."""
        self.settings = settings

    @activity.defn(name=VERIFY_APPROVAL_ACTIVITY)
    async def verify_approval(self, payload: dict[str, Any]) -> SignatureCheck:
        """Tell the workflow whether a decision was signed by the API for this run, and why not."""
        key, run = signing_key(self.settings), activity.info().workflow_id or ""
        reason = check_signature(key, payload, run, datetime.now(UTC))
        return SignatureCheck(valid=reason is None, reason=reason)
