"""The approval signing key and signatures: one key per deployment, bound to a run, expiring."""

from __future__ import annotations

import multiprocessing
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workflow_engine.engine.signing import SIGNATURE_TTL, check_signature, sign, signing_key
from workflow_engine.settings import Settings


def _key_of(path: str) -> bytes:
    return signing_key(Settings(_env_file=None, approval_signing_key_file=Path(path)))


def test_processes_racing_to_create_the_key_file_all_get_the_one_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "signing.key"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        keys = pool.map(_key_of, [str(path)] * 8)
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["signing.key"]  # no drafts left behind
    assert _key_of(str(path)) == keys[0]  # read again, not replaced


def test_the_setting_wins_and_an_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("")
    assert signing_key(Settings(_env_file=None, approval_signing_key="s3cret", approval_signing_key_file=empty)) == (
        b"s3cret"
    )
    with pytest.raises(ValueError, match="is empty"):
        signing_key(Settings(_env_file=None, approval_signing_key_file=empty))


def test_a_signature_holds_only_for_its_run_its_fields_and_a_while() -> None:
    payload = sign(b"k", {"execution_id": "run-1", "task_id": "t", "decision": "approve", "approver": "alice",
                          "roles": ["approver"], "comment": None})  # fmt: skip
    now = datetime.fromisoformat(payload["issued_at"])
    assert check_signature(b"k", payload, "run-1", now) is None
    assert "another execution" in (check_signature(b"k", payload, "run-2", now) or "")
    assert "not valid" in (check_signature(b"other", payload, "run-1", now) or "")
    for field, forged in (("approver", "mallory"), ("roles", ["admin"]), ("decision", "reject"), ("comment", "x")):
        assert "not valid" in (check_signature(b"k", {**payload, field: forged}, "run-1", now) or ""), field
    later = now + SIGNATURE_TTL + timedelta(seconds=1)
    assert "expired" in (check_signature(b"k", payload, "run-1", later) or "")
    assert check_signature(b"k", payload, "run-1", datetime.now(UTC)) is None
