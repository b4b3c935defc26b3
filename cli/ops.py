"""`gd db …`: the store's schema (Alembic migrations, see migrations/)."""

from __future__ import annotations

import typer

from cli.common import group
from models.settings import get_settings

db_app = group("Banco de dados da aplicação: migrações do esquema (Alembic).")


def _store():
    from activities.store import Store

    return Store(get_settings().database_url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Leva o banco (GD_DATABASE_URL) à revisão mais nova; seguro com vários processos ao mesmo tempo."""
    from activities.store import SchemaTooNew

    store = _store()
    try:
        before, after = store.upgrade()
    except SchemaTooNew as error:
        typer.echo(f"gd db upgrade: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.dispose()
    if before == after:
        typer.echo(f"banco já na revisão {after} (a mais nova)")
    else:
        typer.echo(f"banco atualizado: {before or '(vazio)'} → {after}")


@db_app.command("current")
def db_current() -> None:
    """Mostra a revisão do banco e a mais nova que este código conhece."""
    import migrations

    store = _store()
    try:
        revision = store.schema_revision()
    finally:
        store.dispose()
    newest = migrations.head()
    state = "a mais nova" if revision == newest else f"a mais nova é {newest}: rode `gd db upgrade`"
    typer.echo(f"revisão {revision or '(nenhuma)'} ({state})")
    if revision != newest:
        raise typer.Exit(1)
