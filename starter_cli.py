"""The `gd` command line (CONTRACT.md): one entry point, grouped by who uses it.

Imports stay light here (typer only): each command imports what it needs, so
`gd --help` answers fast. Exit codes: 0 success, 2 refused action or bad input (one clear
line on stderr), 1 anything unexpected.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gd",
    help="Acesso de micro e minigeração distribuída (GD) na CEMIG — orquestração com Temporal.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _project_on_path() -> None:
    """`devstack` sits next to this file; an editable install that does not list it in
    pyproject's py-modules would not find it from the `gd` script, so look here too."""
    import importlib.util
    import sys
    from pathlib import Path

    if importlib.util.find_spec("devstack") is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))


def _group(name: str, help: str) -> typer.Typer:
    """A command group (a typer sub-app) registered under `gd NAME`."""
    group = typer.Typer(help=help, no_args_is_help=True)

    @group.callback()
    def _callback() -> None:  # makes the group a group even before it has commands
        pass

    _callback.__doc__ = help
    app.add_typer(group, name=name, help=help)
    return group


dev_app = _group("dev", "Ambiente local de desenvolvimento: servidor Temporal, SMTP de teste e worker.")
docs_app = _group("docs", "Documentos: envio ao repositório de arquivos (gera o DocumentRef).")
request_app = _group("request", "Solicitações de acesso: abrir, consultar a situação e listar.")
inquiry_app = _group("inquiry", "Consultas de acesso (informação prévia) do cliente ou integrador.")
apr_app = _group("apr", "APR Web: registro da Nota de Serviço e do Protocolo pelo responsável técnico.")
analyst_app = _group(
    "analyst",
    "Analista: fila de trabalho, aprovar, suspender, reprovar, responder consultas, "
    "pausar e retomar o prazo.",
)
reanalysis_app = _group(
    "reanalysis", "Reanálise após suspensão, reprovação ou reprovação por decurso de prazo."
)
inspection_app = _group("inspection", "Vistoria: pedido e registro do resultado.")
technician_app = _group(
    "technician", "Responsáveis técnicos (CREA/CAU): cadastrar, aprovar e recusar o cadastro."
)
beneficiaries_app = _group(
    "beneficiaries", "Unidades beneficiárias (rateio dos créditos): cadastrar, confirmar, recusar."
)
audit_app = _group("audit", "Auditoria: exportar o histórico, reexecutar (replay) e linha do tempo.")
report_app = _group("report", "Relatórios: cumprimento dos prazos (SLA).")


@dev_app.command("up")
def dev_up(
    ui_port: int = typer.Option(
        8233, "--ui-port", envvar="GD_UI_PORT", help="Porta da Web UI do Temporal."
    ),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Não inicia o worker (rode `gd worker` à parte)."
    ),
) -> None:
    """Sobe o servidor Temporal (estado em var/temporal.db), o SMTP de teste (e-mails em var/mail/) e o worker; Ctrl-C para tudo."""  # noqa: E501
    import asyncio

    _project_on_path()
    from devstack import DevStackError, up
    from models.settings import get_settings

    try:
        asyncio.run(up(get_settings(), ui_port=ui_port, worker=not no_worker))
    except DevStackError as err:
        typer.echo(f"gd dev up: {err}", err=True)
        raise typer.Exit(err.exit_code) from None


@app.command("worker")
def worker_cmd() -> None:
    """Executa o worker: todos os workflows e atividades, na fila GD_TASK_QUEUE."""
    import worker

    worker.main()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
