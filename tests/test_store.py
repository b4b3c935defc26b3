"""Store: engine settings, schema creation/versioning, sessions, read helpers."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

import activities.store as store_module
from activities.store import SchemaTooNew, Store
from activities.tables import (
    SCHEMA_VERSION,
    DocumentRecord,
    Outbox,
    SchemaVersion,
    TechnicianSecret,
)
from tests.store_fixtures import Database, database, store  # noqa: F401

TABLE_NAMES = {
    "schema_version", "request_record", "event_record", "document_record", "outbox",
    "technician_record", "technician_secret", "beneficiary_allocation", "number_sequence",
    "issued_number",
}


def test_create_schema_makes_every_table_at_version_1(store: Store) -> None:
    assert SCHEMA_VERSION == 1
    assert store.schema_version() == 1
    assert TABLE_NAMES <= set(sa.inspect(store.engine).get_table_names())
    assert store.create_schema() == 1  # idempotent
    assert store.create_schema() == 1
    with store.session(write=False) as s:
        assert len(s.exec(sa.select(SchemaVersion)).all()) == 1


def create_schema_at_once(stores: list[Store], threads: int = 6) -> list[BaseException]:
    """``create_schema`` from ``threads`` threads spread over ``stores``, released together;
    the errors they raised."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def create(store: Store) -> None:
        try:
            barrier.wait()
            store.create_schema()
        except BaseException as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    running = [threading.Thread(target=create, args=(stores[i % len(stores)],)) for i in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return errors


def test_create_schema_concurrently_from_two_workers(database: Database) -> None:
    stores = [database.open(), database.open()]
    errors = create_schema_at_once(stores)
    assert errors == []
    assert stores[0].schema_version() == 1
    assert TABLE_NAMES <= set(sa.inspect(stores[1].engine).get_table_names())


def test_newer_database_is_refused(store: Store) -> None:
    with store.session() as s:
        s.get(SchemaVersion, 1).version = 99
    with pytest.raises(SchemaTooNew, match="version 99"):
        store.create_schema()


def test_upgrade_steps_run_once_in_order(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []

    def step(version: int):
        def run(conn: sa.Connection) -> None:
            ran.append(version)
            conn.exec_driver_sql("ALTER TABLE outbox ADD COLUMN note_v%d VARCHAR(10)" % version)

        return run

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(store_module, "UPGRADES", [(3, step(3)), (2, step(2))])
    assert store.create_schema() == 3
    assert ran == [2, 3]
    assert store.schema_version() == 3
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("outbox")}
    assert {"note_v2", "note_v3"} <= columns
    assert store.create_schema() == 3
    assert ran == [2, 3]  # nothing runs twice


def test_session_commits_or_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(Outbox(key="k1", template="t", status="sending"))
            s.flush()
            raise RuntimeError("boom")
    with store.session() as s:
        assert s.get(Outbox, "k1") is None
        s.add(Outbox(key="k2", template="t", status="sent", recipients_count=2))
    with store.session(write=False) as s:
        row = s.get(Outbox, "k2")
    assert row is not None and row.attempts == 0 and row.recipients_count == 2


def test_timestamps_come_back_aware_in_utc(store: Store) -> None:
    at = datetime(2026, 3, 10, 9, 30, tzinfo=timezone(timedelta(hours=-3)))
    with store.session() as s:
        s.add(DocumentRecord(sha256="a" * 64, kind="other", filename="x.pdf", size=1,
                             content_type="application/pdf", stored_at=at))
    record = store.document("A" * 64)
    assert record is not None
    assert record.stored_at == at
    assert record.stored_at.utcoffset() == timedelta(0)


def test_technician_secret_is_unique_per_kind(store: Store) -> None:
    with store.session() as s:
        s.add(TechnicianSecret(technician="CREA-MG-1", kind="agv_password", secret_hash="h1"))
    with pytest.raises(sa.exc.IntegrityError):
        with store.session() as s:
            s.add(TechnicianSecret(technician="CREA-MG-1", kind="agv_password", secret_hash="h2"))


def test_read_helpers_on_an_empty_store(store: Store) -> None:
    assert store.technician_status("CREA-MG-00000") is None
    assert store.request_row("gd-request-none") is None
    assert store.events("gd-request-none") == []
    assert store.current_allocation("3000000000") is None
    assert store.allocation_history("3000000000") == []
    assert store.document("0" * 64) is None


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "gd.db"
    store = Store(f"sqlite:///{target}")
    try:
        store.create_schema()
        assert target.exists()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert store.dialect == "sqlite"
    finally:
        store.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_survives_killed_connections(database: Database) -> None:
    app = f"gd-test-kill-{uuid.uuid4().hex[:8]}"
    store = Store(database.url, connect_args={**database.connect_args, "application_name": app})
    database.opened.append(store)
    store.create_schema()
    assert store.dialect == "postgresql"
    with store.session(write=False) as s:
        schema = s.connection().exec_driver_sql("SELECT current_schema()").scalar()
    assert schema == database.schema
    admin = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %(app)s",
                {"app": app},
            ).scalar()
        assert killed >= 1
    finally:
        admin.dispose()
    # The pooled connections were killed; pre-ping replaces them transparently.
    assert store.technician_status("CREA-MG-1") is None
    assert store.schema_version() == 1


def test_workers_starting_together_on_a_new_sqlite_file(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it alone, and SQLite says "database is locked" at
    once instead of waiting: the second store must wait for the first instead of failing.
    (Before the fix, about one round in four failed; 20 rounds make a regression show.)"""
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / f'r{round_}' / 'gd.db'}"
        stores = [Store(url), Store(url)]
        errors = create_schema_at_once(stores)
        assert errors == [], f"round {round_}: {errors}"
        with stores[1].connection(write=False) as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        for store in stores:
            store.dispose()
