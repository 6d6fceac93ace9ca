"""Migrations and registration on both SQLite and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from workflow_engine.api.registry import register_directory, register_source
from workflow_engine.dsl import DslError
from workflow_engine.storage import create_engine, repository, session_factory, upgrade_database

HELLO = "name: hello\ntasks:\n  - id: a\n    activity_type: log\n    config: {message: hi}\n"
HELLO_V2 = "name: hello\ntasks:\n  - id: a\n    activity_type: log\n    config: {message: bonjour}\n"


async def test_migrations_create_the_registry_tables_and_are_idempotent(database_url: str) -> None:
    await upgrade_database(database_url)  # a second upgrade is a no-op
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    assert {"definition", "revision", "execution", "alembic_version"} <= tables


async def test_same_content_is_a_no_op_and_changes_make_new_revisions(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            first = await register_source(session=session, text=HELLO)
            await session.commit()
        async with sessions() as session:
            # Comments and layout do not change the canonical content.
            again = await register_source(session=session, text="# comment\n" + HELLO)
            await session.commit()
        async with sessions() as session:
            second = await register_source(session=session, text=HELLO_V2)
            await session.commit()
        async with sessions() as session:
            back = await register_source(session=session, text=HELLO)
            await session.commit()
            record = await repository.get_definition(session=session, workflow_id="hello")
        assert (first.revision, first.created) == (1, True)
        assert (again.revision, again.created) == (1, False)
        assert (second.revision, second.created) == (2, True)
        assert (back.revision, back.created) == (1, False)
        assert record is not None and record.current_revision == 1
    finally:
        await engine.dispose()


async def test_invalid_source_registers_nothing(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            with pytest.raises(DslError):
                await register_source(session=session, text="name: bad\ntasks: []\n")
            await session.commit()
            assert await repository.count_definitions(session=session) == 0
    finally:
        await engine.dispose()


async def test_directory_scan_registers_valid_files_and_reports_invalid_ones(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HELLO)
    (tmp_path / "b.yaml").write_text("name: other\ntasks:\n  - id: x\n    activity_type: nope\n")
    (tmp_path / "c.yml").write_text(HELLO_V2)  # same name as a.yaml: refused, a.yaml wins
    (tmp_path / "notes.txt").write_text("ignored")
    engine = create_engine(database_url)
    try:
        report = await register_directory(sessions=session_factory(engine), directory=tmp_path)
        rerun = await register_directory(sessions=session_factory(engine), directory=tmp_path)
    finally:
        await engine.dispose()
    assert [(r.workflow_id, r.revision, r.created) for r in report.registered] == [("hello", 1, True)]
    assert [(r.workflow_id, r.created) for r in rerun.registered] == [("hello", False)]
    invalid = {Path(p).name: issues for p, issues in report.invalid.items()}
    assert set(invalid) == {"b.yaml", "c.yml"}
    assert "unknown activity_type 'nope'" in str(invalid["b.yaml"][0])
    assert invalid["b.yaml"][0].line == 4
    assert "also defined in a.yaml" in str(invalid["c.yml"][0])


async def test_executions_are_indexed(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            await repository.add_execution(
                session=session, execution_id="run-1", workflow_id="hello", revision=3,
                parameters={"n": 1, "items": [1, 2]}, started_by="alice",
            )  # fmt: skip
            await session.commit()
        async with sessions() as session:
            found = await repository.get_execution(session=session, execution_id="run-1")
            missing = await repository.get_execution(session=session, execution_id="run-2")
        assert found is not None and found.parameters == {"n": 1, "items": [1, 2]} and found.revision == 3
        assert missing is None
    finally:
        await engine.dispose()
