"""The relational store: one SQLAlchemy engine (via sqlmodel) for SQLite or PostgreSQL.

Back-ends
---------
* SQLite (``sqlite:///var/gd.db``, the default; the parent directory is created): the
  file is put in ``journal_mode=WAL`` by the first connection (retried while another
  holds a lock: two workers starting on a new file), and every connection gets
  ``busy_timeout=30000``, ``foreign_keys=ON`` and ``synchronous=NORMAL``. The driver's own transaction handling is switched off and
  transactions are opened by us: ``BEGIN IMMEDIATE`` for writes (the write lock is taken
  up front, so two writers queue on ``busy_timeout`` instead of failing with
  ``SQLITE_BUSY`` when a read lock is upgraded) and ``BEGIN`` (deferred) for
  ``session(write=False)``.
* PostgreSQL (``postgresql+psycopg://user@host:5432/db``): ``pool_pre_ping=True`` so a
  connection killed by ``pg_terminate_backend`` or a restart is replaced at the next
  checkout. A statement that was running on the killed connection fails; the activity
  retry policy runs it again.

Schema and its migrations
-------------------------
The schema is versioned by Alembic revisions in ``migrations/versions/`` (one file per
change; migrations/README.md). ``create_schema()`` (what ``gd db upgrade`` runs, and a
worker at start in dev) runs in one transaction holding a lock (``BEGIN IMMEDIATE`` on
SQLite, ``pg_advisory_xact_lock`` on PostgreSQL), so processes that start together never
race:

1. a database newer than this code is refused (``SchemaTooNew``): an Alembic revision this
   code does not know, or a legacy ``schema_version`` above ``SCHEMA_VERSION``;
2. ``migrations.upgrade`` brings it to the newest revision: a new database gets every
   table of ``activities/tables.py`` and is stamped; one created before Alembic is
   stamped as the first revision (0001) and upgraded; others are upgraded;
3. the legacy ``schema_version`` row (1) is kept for older tools; ``UPGRADES`` is the
   old hand-written step list, empty and kept only so that mechanism stays tested.

A production worker does not migrate: ``check_schema()`` refuses a database that is not
at the newest revision (run ``gd db upgrade``, e.g. the deploy's migration job, first).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, select

from activities.tables import (
    SCHEMA_VERSION,
    BeneficiaryAllocation,
    DocumentRecord,
    EventRecord,
    RequestRecord,
    SchemaVersion,
    TechnicianRecord,
    utcnow,
)

DEFAULT_URL = "sqlite:///var/gd.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000

# (version reached, step): run in order for every version above the stored one.
UpgradeStep = Callable[[Connection], None]
UPGRADES: list[tuple[int, UpgradeStep]] = []


class SchemaTooNew(RuntimeError):
    """The database was upgraded by a newer release than the running code."""


class SchemaOutdated(RuntimeError):
    """The database is behind this code's migrations (run ``gd db upgrade``)."""


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Disable pysqlite's implicit BEGIN: transactions are opened in _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _ensure_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _ensure_wal(cursor: Any) -> None:
    """Put the file in WAL mode, once: the mode belongs to the file, so later connections
    find it set and change nothing. Switching needs the file to itself, and SQLite answers
    "database is locked" at once, without waiting on ``busy_timeout``, when another
    connection (a second worker starting on a new file) holds a lock meanwhile: retry."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(0.1, pause * 2)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("gd_sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """Engine, sessions, schema and the read helpers used by activities, CLI and audit."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        connect_args: dict[str, Any] | None = None,
        **engine_kwargs: Any,
    ) -> None:
        self.url = make_url(url)
        args = dict(connect_args or {})
        # SQLite has one writer at a time: threads of this process queue on a lock
        # (cheap) rather than on SQLite's busy handler (sleeps); other processes still
        # wait on busy_timeout.
        self._write_lock: Any = nullcontext()
        # A failed statement's text must not quote its parameters (an RT's e-mail, a
        # holder's CPF): it would reach worker logs and activity failures in history.
        engine_kwargs.setdefault("hide_parameters", True)
        if self.url.get_backend_name() == "sqlite":
            database = self.url.database or ""
            memory = database in ("", ":memory:") or "mode=memory" in database
            if not memory and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            args.setdefault("check_same_thread", False)
            args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
            if memory:
                engine_kwargs.setdefault("poolclass", StaticPool)
            self.engine: Engine = sa.create_engine(self.url, connect_args=args, **engine_kwargs)
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
            sa.event.listen(self.engine, "begin", _sqlite_on_begin)
            self._reader: Engine = self.engine.execution_options(gd_sqlite_begin="DEFERRED")
            self._write_lock = threading.RLock()
        else:
            engine_kwargs.setdefault("pool_pre_ping", True)
            engine_kwargs.setdefault("pool_size", 10)
            engine_kwargs.setdefault("max_overflow", 20)
            engine_kwargs.setdefault("pool_recycle", 1800)
            self.engine = sa.create_engine(self.url, connect_args=args, **engine_kwargs)
            self._reader = self.engine

    # --- basics ---------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        Objects stay readable after the block (``expire_on_commit=False``).
        ``write=False`` opens a deferred (non-locking) transaction on SQLite.
        """
        with self._write_lock if write else nullcontext():
            session = Session(self.engine if write else self._reader, expire_on_commit=False)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[Connection]:
        """A Core connection in one transaction (committed on success): for hot paths
        that need a statement or two and no ORM unit of work (the e-mail outbox)."""
        with self._write_lock if write else nullcontext():
            with (self.engine if write else self._reader).begin() as conn:
                yield conn

    # --- schema ---------------------------------------------------------------------

    def create_schema(self) -> int:
        """Upgrade the database to the newest migration; returns ``SCHEMA_VERSION``.

        Idempotent and safe when several processes call it at the same time.
        """
        self.upgrade()
        return SCHEMA_VERSION

    def upgrade(self) -> tuple[str | None, str]:
        """``gd db upgrade``: (revision before, revision after); see the module doc."""
        import migrations

        with self._write_lock, self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(hashtext('gd-schema:' || current_schema()))"
                )
            version_table = SchemaVersion.__table__  # type: ignore[attr-defined]
            stored = None
            if sa.inspect(conn).has_table(version_table.name):
                stored = conn.execute(
                    sa.select(version_table.c.version).where(version_table.c.id == 1)
                ).scalar()
            if stored is not None and stored > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"database schema is at version {stored}, this code knows up to "
                    f"{SCHEMA_VERSION}: upgrade the code"
                )
            try:
                before, after = migrations.upgrade(conn)
            except migrations.UnknownRevision as error:
                raise SchemaTooNew(str(error)) from None
            if stored is None:
                conn.execute(
                    version_table.insert().values(id=1, version=SCHEMA_VERSION, updated_at=utcnow())
                )
                return before, after
            for target, step in sorted(UPGRADES, key=lambda pair: pair[0]):
                if stored < target <= SCHEMA_VERSION:
                    step(conn)
                    stored = target
            conn.execute(
                version_table.update()
                .where(version_table.c.id == 1)
                .values(version=SCHEMA_VERSION, updated_at=utcnow())
            )
            return before, after

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None: never migrated)."""
        import migrations

        with self.engine.connect() as conn:
            return migrations.current(conn)

    def check_schema(self) -> str:
        """The revision, if it is this code's newest; else ``SchemaOutdated``/``SchemaTooNew``."""
        import migrations

        revision = self.schema_revision()
        newest = migrations.head()
        if revision == newest:
            return revision
        if revision is not None and revision not in migrations.revisions():
            raise SchemaTooNew(
                f"database schema is at revision {revision}, unknown to this code "
                f"(its newest is {newest}): upgrade the code"
            )
        raise SchemaOutdated(
            f"banco de dados na revisão {revision or '(nenhuma)'}, o código espera {newest}: "
            "rode `gd db upgrade` antes de iniciar o worker"
        )

    def schema_version(self) -> int | None:
        with self.session(write=False) as s:
            row = s.get(SchemaVersion, 1)
            return row.version if row else None

    # --- read helpers ---------------------------------------------------------------

    def technician_status(self, key: str) -> str | None:
        """Status of an RT by key (``CREA-MG-12345``); None if never registered."""
        with self.session(write=False) as s:
            row = s.get(TechnicianRecord, key)
            return row.status if row else None

    def technician_email(self, key: str) -> str | None:
        """Where the e-mails of requests signed by this RT go (None if unknown)."""
        with self.session(write=False) as s:
            row = s.get(TechnicianRecord, key)
            return row.email if row else None

    def request_row(self, workflow_id: str) -> RequestRecord | None:
        with self.session(write=False) as s:
            return s.get(RequestRecord, workflow_id)

    def request_by_request_id(self, request_id: str, kind: str | None = None) -> RequestRecord | None:
        """The request started under its own id (``gd-request-{request_id}``): a record
        written by a process started under another id never shadows it."""
        with self.session(write=False) as s:
            query = select(RequestRecord).where(
                RequestRecord.request_id == request_id,
                RequestRecord.workflow_id == f"gd-request-{request_id}",
            )
            if kind is not None:
                query = query.where(RequestRecord.kind == kind)
            return s.exec(query.order_by(RequestRecord.updated_at.desc())).first()  # type: ignore[attr-defined]

    def events(self, workflow_id: str) -> list[EventRecord]:
        """The event log of one workflow, in the order it was written."""
        with self.session(write=False) as s:
            query = (
                select(EventRecord)
                .where(EventRecord.workflow_id == workflow_id)
                .order_by(EventRecord.id)  # type: ignore[arg-type]
            )
            return list(s.exec(query).all())

    def current_allocation(self, generator_installation: str) -> BeneficiaryAllocation | None:
        with self.session(write=False) as s:
            query = select(BeneficiaryAllocation).where(
                BeneficiaryAllocation.generator_installation == generator_installation,
                BeneficiaryAllocation.current == True,  # noqa: E712
            )
            return s.exec(query).first()

    def allocation_history(self, generator_installation: str) -> list[BeneficiaryAllocation]:
        """Every allocation of a generating installation, oldest first (none is deleted)."""
        with self.session(write=False) as s:
            query = (
                select(BeneficiaryAllocation)
                .where(BeneficiaryAllocation.generator_installation == generator_installation)
                .order_by(BeneficiaryAllocation.id)  # type: ignore[arg-type]
            )
            return list(s.exec(query).all())

    def document(self, sha256: str) -> DocumentRecord | None:
        with self.session(write=False) as s:
            return s.get(DocumentRecord, sha256.lower())
