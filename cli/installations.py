"""`gd installations …`: the customer base (installations, their holders, connected GD
plants) that intake checks a request's installation against (activities/installations.py).

    gd installations import base.csv     # validated, idempotent; bad rows by line number
    gd installations list --document CPF_OU_CNPJ
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, emit_json, fail, group, json_opt, settings_now
from gd_errors import GdRefused

installations_app = group("Base de clientes: instalações, titulares e usinas de GD já conectadas.")


def _store():
    from activities.store import Store

    store = Store(settings_now().database_url)
    store.create_schema()  # idempotent; the CLI may run before the first worker did
    return store


@installations_app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="CSV: instalacao;documento_titular;endereco;classe;gd_conectada"),
    json_out: bool = json_opt(),
) -> None:
    """Importa a base de instalações (CSV). Tudo ou nada: uma linha ruim não grava nenhuma e todas as ruins são listadas."""  # noqa: E501
    from activities.installations import ImportRefused, import_csv

    try:
        report = import_csv(_store(), file)
    except (ImportRefused, GdRefused) as error:
        fail(2, f"gd installations import: {error}", json_out)
        return
    if not report.ok:
        lines = [f"linha {line}: {message}" for line, message in report.problems]
        if report.more_problems:
            lines.append(f"e mais {report.more_problems} linha(s) com problema")
        problems = [{"line": line, "message": message} for line, message in report.problems]
        if not json_out:
            for text in lines:
                console(stderr=True).print(text, markup=False)
        fail(2, f"gd installations import: {len(report.problems) + report.more_problems} "
                "linha(s) inválida(s); nada foi importado", json_out, problems)
        return
    summary = {"ok": True, "rows": report.rows, "inserted": report.inserted,
               "updated": report.updated, "unchanged": report.unchanged}
    if json_out:
        emit_json(summary)
    else:
        console().print(f"{report.rows} instalação(ões): {report.inserted} nova(s), "
                        f"{report.updated} atualizada(s), {report.unchanged} sem mudança")


@installations_app.command("list")
def list_cmd(
    document: str = typer.Option(..., "--document", help="CPF ou CNPJ do titular"),
    json_out: bool = json_opt(),
) -> None:
    """Lista as instalações de um titular (o CPF, ou todas da raiz do CNPJ)."""
    from pydantic_core import PydanticCustomError

    from activities.installations import of_holder
    from models.common import normalize_tax_id

    try:
        normalized = normalize_tax_id(document)
    except PydanticCustomError as error:
        fail(2, f"--document: {error.message()}", json_out)
        return
    rows = [installation_json(r) for r in of_holder(_store(), normalized)]
    if json_out:
        emit_json(rows)
        return
    if not rows:
        console().print("nenhuma instalação para este titular")
    for row in rows:
        gd = " · GD conectada" if row["gd_connected"] else ""
        console().print(f"{row['number']}  {row['customer_class']}  {row['address']}{gd}", markup=False)


def installation_json(row) -> dict:
    return {"number": row.number, "holder_document": row.holder_document,
            "address": row.address, "customer_class": row.customer_class,
            "gd_connected": row.gd_connected}
