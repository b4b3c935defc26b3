"""Alembic environment: the store's tables, on the caller's connection when given."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import activities.tables  # noqa: F401 - registers every table in SQLModel.metadata

cfg = context.config


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=SQLModel.metadata,
        compare_type=True,
        **kwargs,
    )


def run_offline() -> None:
    """``alembic upgrade --sql``: the DDL as a script (for a DBA to review)."""
    _configure(url=cfg.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = cfg.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or cfg.get_main_option("sqlalchemy.url")
    from activities.store import Store

    store = Store(url)
    try:
        with store.engine.begin() as conn:
            _run(conn)
    finally:
        store.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
