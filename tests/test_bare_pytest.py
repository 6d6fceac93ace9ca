"""A bare `pytest` finds PostgreSQL by itself: without TEST_POSTGRES_DSN, conftest runs scripts/test-postgres.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, dsn_from_script

_TEST = "tests/storage/test_registry_storage.py::test_migrations_create_the_registry_tables_and_are_idempotent"


def test_pytest_without_the_dsn_starts_postgresql_through_the_script(tmp_path: Path) -> None:
    """The PostgreSQL case of a storage test passes in a pytest started without TEST_POSTGRES_DSN."""
    env = {key: value for key, value in os.environ.items() if key != "TEST_POSTGRES_DSN"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{_TEST}[postgresql]"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_dsn_is_read_from_the_script_output(tmp_path: Path) -> None:
    script = tmp_path / "pg.sh"
    script.write_text("echo 'starting...' >&2\necho \"export TEST_POSTGRES_DSN='postgresql+asyncpg://u:p@h:5/db'\"\n")
    assert dsn_from_script(script) == ("postgresql+asyncpg://u:p@h:5/db", "")


def test_a_script_without_a_dsn_says_why(tmp_path: Path) -> None:
    """The real script prints nothing on stdout (and exits 0) when the machine has no PostgreSQL cluster."""
    script = tmp_path / "pg.sh"
    script.write_text("echo 'scripts/test-postgres.sh: no pg_ctlcluster; set TEST_POSTGRES_DSN' >&2\n")
    dsn, why = dsn_from_script(script)
    assert dsn is None
    assert why == "pg.sh exited 0 without a DSN: scripts/test-postgres.sh: no pg_ctlcluster; set TEST_POSTGRES_DSN"
    script.write_text("exit 3\n")
    assert dsn_from_script(script) == (None, "pg.sh exited 3 without a DSN")
