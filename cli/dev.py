"""`gd dev …` and `gd worker`: the local stack of a developer (dev server, SMTP sink,
worker) and the worker alone."""

from __future__ import annotations

import asyncio

import typer

import worker
from cli.common import group
from devstack import DevStackError, up
from models.settings import get_settings

dev_app = group("Ambiente local de desenvolvimento: servidor Temporal, SMTP de teste e worker.")


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
    from cli.demo import load_demo_installations

    try:
        # The small demo customer base, so `gd demo` and hand-made requests pass intake.
        load_demo_installations(get_settings())
        asyncio.run(up(get_settings(), ui_port=ui_port, worker=not no_worker))
    except DevStackError as err:
        typer.echo(f"gd dev up: {err}", err=True)
        raise typer.Exit(err.exit_code) from None


def worker_cmd(
    check: bool = typer.Option(
        False, "--check",
        help="Só verifica: conexão (TLS, chave de API), namespace, atributos de busca e banco; "
        "imprime os comandos `temporal operator …` do que faltar.",
    ),
) -> None:
    """Executa o worker: todos os workflows e atividades, na fila GD_TASK_QUEUE."""
    worker.main(["--check"] if check else [])
