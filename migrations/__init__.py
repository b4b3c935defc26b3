"""Schema migrations of the store (Alembic), run by ``gd db upgrade``.

The revisions are in ``migrations/versions/``; ``env.py`` runs them on the connection
``activities.store.Store`` hands over (inside its schema lock), or on ``-x url=…`` when
Alembic's own command line is used. See migrations/README.md for adding a revision.

Three kinds of database reach :func:`upgrade`:

* a new one (no table of ours): every table of ``activities/tables.py`` is created in its
  current shape and stamped ``head`` (what running every revision gives, only faster;
  ``tests/test_migrations.py`` proves the two are the same schema);
* one created before Alembic (``schema_version`` present, no ``alembic_version``): it is
  the first schema, stamped :data:`BASELINE`, then upgraded like any other;
* one with an ``alembic_version``: upgraded from there to ``head``. A revision this code
  does not know means the database was upgraded by a newer release: refused.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

SCRIPT_DIR = Path(__file__).resolve().parent
BASELINE = "0001"  # the first schema: what create_schema() made before Alembic
VERSION_TABLE = "alembic_version"


class UnknownRevision(RuntimeError):
    """The database is at a revision this code does not have (a newer release wrote it)."""


def config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    heads = script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations/versions has {len(heads)} heads ({heads}): merge them")
    return heads[0]


def current(connection: sa.Connection) -> str | None:
    """The revision stored in the database (None: not under Alembic yet)."""
    return MigrationContext.configure(connection).get_current_revision()


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    return [rev.revision for rev in reversed(list(script().walk_revisions()))]


def upgrade(connection: sa.Connection, target: str = "head") -> tuple[str | None, str]:
    """Bring the database on ``connection`` (inside the caller's transaction) to
    ``target``; returns (revision before, revision after)."""
    from activities.tables import TABLES

    before = current(connection)
    cfg = config(connection)
    if before is None:
        existing = set(sa.inspect(connection).get_table_names())
        ours = {table.__tablename__ for table in TABLES}  # type: ignore[attr-defined]
        if not existing & ours and target == "head":
            from sqlmodel import SQLModel

            SQLModel.metadata.create_all(
                connection, tables=[t.__table__ for t in TABLES]  # type: ignore[attr-defined]
            )
            command.stamp(cfg, "head")
            return None, head()
        if existing & ours:
            command.stamp(cfg, BASELINE)  # made by create_schema() before Alembic
            before = BASELINE
    elif before not in revisions():
        raise UnknownRevision(
            f"database schema is at revision {before}, unknown to this code "
            f"(its newest is {head()}): upgrade the code"
        )
    command.upgrade(cfg, target)
    return before, current(connection) or target
