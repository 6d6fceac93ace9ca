"""Migrations and registration on both SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from workflow_engine.api.registration import content_hash, register_directory, register_source
from workflow_engine.dsl import DslError, parse_definition
from workflow_engine.errors import ConflictError
from workflow_engine.storage import create_engine, repository, session_factory, upgrade_database
from workflow_engine.storage.migrate import alembic_config
from workflow_engine.storage.models import utcnow

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


def _engine(database_url: str, *, lock_wait_ms: int | None = None) -> AsyncEngine:
    """Return an engine; `lock_wait_ms` makes a writer give up waiting for a lock that soon (a conflict)."""
    if lock_wait_ms is None:
        return create_engine(database_url)
    if database_url.startswith("sqlite"):
        return create_async_engine(database_url, connect_args={"timeout": lock_wait_ms / 1000})
    return create_async_engine(database_url, connect_args={"server_settings": {"lock_timeout": str(lock_wait_ms)}})


async def _current(sessions: async_sessionmaker[AsyncSession], workflow_id: str = "hello") -> tuple[int, int]:
    """Return (current revision, number of revisions) of a definition."""
    async with sessions() as session:
        record = await repository.get_definition(session=session, workflow_id=workflow_id)
        assert record is not None
        return record.current_revision, len(await repository.list_revisions(session=session, workflow_id=workflow_id))


async def test_a_scan_registers_a_file_only_when_it_changed_so_it_never_reverts_the_api(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        await register_directory(sessions=sessions, directory=tmp_path)
        async with sessions() as session:
            api = await register_source(session=session, text=HELLO_V2)  # through the API
        assert (api.revision, api.created) == (2, True)
        rescan = await register_directory(sessions=sessions, directory=tmp_path)
        assert [(r.revision, r.created, r.current_revision) for r in rescan.registered] == [(1, False, 2)]
        assert await _current(sessions) == (2, 2)  # the unchanged file did not revert the API's revision
        async with sessions() as session:
            record = await repository.get_definition(session=session, workflow_id="hello")
        assert record is not None and record.file_path == str(tmp_path / "hello.yaml")
        assert record.file_hash == content_hash(parse_definition(HELLO))
        # Editing the file is a change: a new revision, current.
        (tmp_path / "hello.yaml").write_text(HELLO.replace("hi", "salut"))
        edited = await register_directory(sessions=sessions, directory=tmp_path)
        assert [(r.revision, r.created) for r in edited.registered] == [(3, True)]
        assert await _current(sessions) == (3, 3)
        # Editing it back to known content makes that revision current again, without a new one.
        (tmp_path / "hello.yaml").write_text(HELLO)
        back = await register_directory(sessions=sessions, directory=tmp_path)
        assert [(r.revision, r.created, r.moved) for r in back.registered] == [(1, False, True)]
        assert await _current(sessions) == (1, 3)
    finally:
        await engine.dispose()


async def test_concurrent_scans_from_two_processes_register_each_file_once(database_url: str, tmp_path: Path) -> None:
    for index in range(5):
        (tmp_path / f"flow{index}.yaml").write_text(HELLO.replace("hello", f"flow{index}"))
    engines = [create_engine(database_url) for _ in range(2)]  # two API processes: two pools on one database
    try:
        reports = await asyncio.gather(
            *(register_directory(sessions=session_factory(engine), directory=tmp_path) for engine in engines * 3)
        )
        assert all(not report.invalid and not report.conflicts for report in reports)
        assert sum(r.created for report in reports for r in report.registered) == 5
        for index in range(5):
            assert await _current(session_factory(engines[0]), f"flow{index}") == (1, 1)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_concurrent_registrations_each_get_a_distinct_revision_once(database_url: str) -> None:
    contents = [HELLO.replace("hi", f"hi {index}") for index in range(12)] * 2
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def register(text: str) -> tuple[str, int, bool]:
        async with sessions() as session:
            result = await register_source(session=session, text=text)
            return text, result.revision, result.created

    try:
        results = await asyncio.gather(*(register(text) for text in contents))
        assert sorted(revision for _, revision, created in results if created) == list(range(1, 13))
        by_text = {text: {revision for t, revision, _ in results if t == text} for text in contents}
        assert all(len(revisions) == 1 for revisions in by_text.values())  # a repeat maps to the same revision
        assert (await _current(sessions))[1] == 12
    finally:
        await engine.dispose()


async def test_a_registration_that_keeps_conflicting_is_a_clear_409_and_stores_nothing(database_url: str) -> None:
    engine = create_engine(database_url)
    impatient = _engine(database_url, lock_wait_ms=50)
    try:
        async with session_factory(engine)() as session:
            await register_source(session=session, text=HELLO)
        async with engine.connect() as holder:
            # Another writer holds the definition's row (SQLite: the database's write lock) past the lock wait.
            await holder.execute(text("UPDATE definition SET updated_at = updated_at WHERE workflow_id = 'hello'"))
            async with session_factory(impatient)() as session:
                with pytest.raises(ConflictError, match=r"registering 'hello' conflicted .* 5 times; try again"):
                    await register_source(session=session, text=HELLO_V2)
            await holder.rollback()
        assert await _current(session_factory(engine)) == (1, 1)
        async with session_factory(impatient)() as session:
            assert (await register_source(session=session, text=HELLO_V2)).created  # once the writer is gone
    finally:
        await impatient.dispose()
        await engine.dispose()


OLD_REVISION = (
    "INSERT INTO revision (workflow_id, number, content_hash, source_yaml, source_path, definition, created_at)"
    " VALUES ('hello', :n, :h, '', :p, '{}', :now)"
)


async def test_migration_0005_backfills_the_file_source_and_is_reversible(database_url: str) -> None:
    await _migrate(database_url, "downgrade", "0004")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("definition")}
            )
            assert "file_hash" not in columns
            now = utcnow()
            await connection.execute(
                text("INSERT INTO definition VALUES ('hello', 2, :now, :now)"), {"now": now}
            )  # current: revision 2, registered through the API after the file's revision 1
            for number, path in ((1, "/w/hello.yaml"), (2, None)):
                values = {"n": number, "h": f"hash{number}", "p": path, "now": now}
                await connection.execute(text(OLD_REVISION), values)
        await upgrade_database(database_url)
        async with session_factory(engine)() as session:
            record = await repository.get_definition(session=session, workflow_id="hello")
            assert record is not None and (record.file_path, record.file_hash) == ("/w/hello.yaml", "hash1")
    finally:
        await engine.dispose()


async def _migrate(url: str, direction: str, revision: str) -> None:
    engine = create_engine(url)
    config = alembic_config(url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()
