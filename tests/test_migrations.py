"""Schema migrations (Alembic, migrations/): the FIRST schema, with data in it, upgraded to
head by `gd db upgrade` on SQLite and PostgreSQL; the upgraded schema is the one the code
declares (activities/tables.py), so a table or column added without a revision fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import migrations
from activities.blobs import DatabaseBlobs, upload
from activities.documents import link
from activities.store import SchemaOutdated, SchemaTooNew, Store
from activities.tables import TABLES, TechnicianRecord
from tests.pdf_fixture import make_pdf
from tests.store_fixtures import Database, database  # noqa: F401

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
GD = [sys.executable, "-c", "import starter_cli; starter_cli.main()"]
AT = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)


def url_of(database: Database) -> str:
    """A URL a child process can use alone (the PostgreSQL schema in its options)."""
    if database.schema is None:
        return database.url
    return f"{database.url}?options={quote('-csearch_path=' + database.schema)}"


def gd(database: Database, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GD_DATABASE_URL": url_of(database),
           "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(GD + list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def load_first_schema(store: Store) -> None:
    """The tables exactly as the first release's create_schema() made them, and data."""
    dialect = "postgresql" if store.dialect == "postgresql" else "sqlite"
    ddl = (DATA / f"first_schema_{dialect}.sql").read_text()
    statements = ddl.split(";")
    ts = AT.replace(tzinfo=None) if dialect == "sqlite" else AT
    with store.engine.begin() as conn:
        for statement in statements:
            body = "\n".join(l for l in statement.splitlines() if not l.startswith("--")).strip()
            if body:
                conn.exec_driver_sql(body)
        rows = {
            "schema_version": dict(id=1, version=1, updated_at=ts),
            "request_record": dict(
                workflow_id="gd-request-SOL-1", request_id="SOL-1", kind="request",
                status="IN_ANALYSIS", generation_class="micro", installation_number="3001234567",
                service_note="NS0000001", protocol="P2026000001", due_at=ts, due_rule="analysis",
                sla_breaches=0, technician="CREA-MG-123456", cycle=1, created_at=ts, updated_at=ts),
            "event_record": dict(
                workflow_id="gd-request-SOL-1", event_key="received", process="access",
                action="received", status="RECEIVED", at=ts, actor_id="cli", actor_role="customer",
                reasons='[{"code": "DOC-ART-AUSENTE"}]', documents="[]", data='{"n": 1}',
                recorded_at=ts),
            "document_record": dict(
                sha256="ab" * 32, kind="art_rrt", filename="art.pdf", size=2048,
                content_type="application/pdf", stored_at=ts),
            "technician_record": dict(key="CREA-MG-123456", workflow_id="gd-technician-CREA-MG-123456",
                                      status="APPROVED", updated_at=ts),
            "number_sequence": dict(name="service_note", value=7),
            "beneficiary_allocation": dict(
                workflow_id="gd-beneficiaries-1", request_id="B-1",
                generator_installation="3001234567", modality="autoconsumo", mode="percent",
                units="[]", status="REGISTERED", effective_from=date(2026, 4, 1), recorded_at=ts,
                current=True),
        }
        for table, values in rows.items():
            columns = ", ".join(f'"{c}"' for c in values)
            marks = ", ".join(f":{c}" for c in values)
            conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), values)


def schema_differences(store: Store) -> list:
    ours = {t.__tablename__ for t in TABLES}  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, kind, parent: kind != "table" or name in ours,
        })
        return compare_metadata(context, SQLModel.metadata)


def test_gd_db_upgrade_takes_the_first_schema_with_data_to_head(database: Database, tmp_path: Path):
    store = database.open()
    load_first_schema(store)
    with pytest.raises(SchemaOutdated, match="rode `gd db upgrade`"):
        store.check_schema()  # what a production worker does at start: refuse
    assert "email" not in {c["name"] for c in sa.inspect(store.engine).get_columns("technician_record")}

    run = gd(database, "db", "upgrade", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "banco atualizado: 0001 → 0010"
    again = gd(database, "db", "upgrade", cwd=tmp_path)
    assert again.stdout.strip() == "banco já na revisão 0010 (a mais nova)"
    assert gd(database, "db", "current", cwd=tmp_path).stdout.strip() == "revisão 0010 (a mais nova)"

    assert store.check_schema() == "0010"
    assert schema_differences(store) == []
    # The data of the first release is all there.
    request = store.request_row("gd-request-SOL-1")
    assert (request.status, request.protocol, request.due_at) == ("IN_ANALYSIS", "P2026000001", AT)
    (event,) = store.events("gd-request-SOL-1")
    assert (event.reasons, event.data) == ([{"code": "DOC-ART-AUSENTE"}], {"n": 1})
    assert store.document("ab" * 32).filename == "art.pdf"
    assert store.technician_status("CREA-MG-123456") == "APPROVED"
    assert store.technician_email("CREA-MG-123456") is None
    assert store.current_allocation("3001234567").effective_from == date(2026, 4, 1)
    # And what the later releases added works on it: an RT's e-mail, links, blobs in the DB.
    with store.session() as s:
        s.get(TechnicianRecord, "CREA-MG-123456").email = "rt@example.com"
    assert store.technician_email("CREA-MG-123456") == "rt@example.com"
    blobs = DatabaseBlobs(store)
    ref = upload(store, blobs, make_pdf("parecer", 4096), kind="other", filename="p.pdf",
                 for_workflow="gd-request-SOL-1")
    link(store, ref.sha256, "gd-request-SOL-2", source="upload")
    assert blobs.get(ref.sha256)[:5] == b"%PDF-"
    assert store.schema_version() == 1  # the legacy marker is kept


def test_every_revision_from_empty_gives_the_schema_the_code_declares(database: Database):
    """Running 0001…head one by one (not the fast path a new database takes) ends in
    exactly the tables, columns, indexes and constraints of activities/tables.py."""
    store = database.open()
    with store.engine.begin() as conn:
        migrations.command.upgrade(migrations.config(conn), "head")
        assert migrations.current(conn) == migrations.head()
    assert schema_differences(store) == []
    fresh = database.open()  # and a new database (create_all + stamp) is at the same head
    fresh.create_schema()
    assert fresh.schema_revision() == migrations.head()
    assert migrations.revisions() == ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010"]


def test_a_database_at_an_unknown_revision_is_refused(database: Database, tmp_path: Path):
    store = database.open()
    store.create_schema()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaTooNew, match="revision 9999"):
        store.check_schema()
    run = gd(database, "db", "upgrade", cwd=tmp_path)
    assert run.returncode == 1
    assert "revision 9999, unknown to this code" in run.stderr
