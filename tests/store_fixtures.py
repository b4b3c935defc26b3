"""Fixtures and helpers for the store tests (import them into a test module).

``store`` runs every test twice: on a SQLite file in ``tmp_path`` and on the machine's
PostgreSQL (``GD_TEST_PG_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
each PostgreSQL test in a schema of its own that is dropped afterwards. An unreachable
PostgreSQL fails the tests (it is never skipped).
"""

from __future__ import annotations

from tests.pdf_fixture import make_pdf, make_png
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from activities.blobs import BlobStore, upload
from activities.records import RecordActivities
from activities.store import Store
from models.activities import TechnicianRow, Transition
from models.common import DocumentRef

PG_URL = os.environ.get("GD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Database:
    """One isolated database (SQLite file or PostgreSQL schema); ``open()`` more stores."""

    kind: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None
    opened: list[Store] = field(default_factory=list)

    def open(self, **engine_kwargs: Any) -> Store:
        store = Store(self.url, connect_args=dict(self.connect_args), **engine_kwargs)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.dispose()


def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database("sqlite", f"sqlite:///{tmp_path / 'db' / 'gd.db'}")
        try:
            yield db
        finally:
            db.close()
        return
    schema = f"gd_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:  # fails (never skips) when PostgreSQL is unreachable
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        db = Database(
            "postgres", PG_URL, connect_args={"options": f"-csearch_path={schema}"}, schema=schema
        )
        try:
            yield db
        finally:
            db.close()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture
def store(database: Database) -> Store:
    opened = database.open()
    opened.create_schema()
    return opened


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def records(store: Store, blobs: BlobStore) -> RecordActivities:
    from activities.installations import import_csv

    # The customer base (GD_INSTALLATIONS_CHECK is on): access_raw's installation and holder.
    report = import_csv(store, (
        "instalacao;documento_titular;endereco;classe;gd_conectada\n"
        f"3001234567;{make_cpf(123456789)};Rua A, 1 - Belo Horizonte/MG;residencial;nao\n"
    ).encode())
    assert report.ok, report.problems
    return RecordActivities(store, blobs)


# --- helpers ------------------------------------------------------------------------


def make_cpf(base: int) -> str:
    """A valid CPF from a 9-digit base (check digits computed)."""
    digits = [int(c) for c in f"{base % 10**9:09d}"]
    if len(set(digits)) == 1:
        digits[-1] = (digits[-1] + 1) % 10
    for length in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(length + 1, 1, -1)))
        check = (total * 10) % 11
        digits.append(0 if check == 10 else check)
    return "".join(map(str, digits))


def pdf_bytes(size: int = 2048, salt: str = "") -> bytes:
    return make_pdf(f"gd {salt}", size)


def png_bytes(salt: str = "") -> bytes:
    return make_png(f"gd {salt}")


def upload_pdf(store: Store, blobs: BlobStore, kind: str = "commercial_id", salt: str = "") -> DocumentRef:
    return upload(store, blobs, pdf_bytes(salt=salt or uuid.uuid4().hex), kind=kind,
                  filename=f"{kind}.pdf")


def fake_ref(kind: str = "commercial_id", size: int = 1234) -> DocumentRef:
    return DocumentRef(
        sha256=uuid.uuid4().hex * 2, kind=kind, filename=f"{kind}.pdf", size=size,
        content_type="application/pdf",
    )


def access_raw(
    documents: list[DocumentRef],
    *,
    request_id: str = "req-1",
    kind: str = "request",
    cpf: str | None = None,
    registration: str = "12345",
    installation_number: str | None = "3001234567",
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": kind,
        "customer": {
            "name": "Maria da Silva",
            "document": cpf or make_cpf(123456789),
            "email": "maria@example.com",
            "phone": "31 99999-0000",
        },
        "installation_number": installation_number,
        "technician": {"council": "CREA", "uf": "MG", "registration": registration},
        "generation": {"source": "solar", "installed_power_kw": 8.5, "modality": "local"},
        "documents": [d.model_dump(mode="json") for d in documents],
    }


def set_technician(records: RecordActivities, key: str, status: str, n: int = 0) -> None:
    now = datetime.now(timezone.utc)
    records.record_transition(
        Transition(
            workflow_id=f"gd-technician-{key}",
            event_key=f"{status.lower()}-{n}",
            process="technician",
            action=status.lower(),
            status=status,
            at=now,
            technician=TechnicianRow(
                key=key, workflow_id=f"gd-technician-{key}", status=status, updated_at=now
            ),
        )
    )


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())
