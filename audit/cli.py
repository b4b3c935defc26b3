"""``gd audit export|replay|timeline`` and ``gd report sla``.

Mounted by starter_cli.py (``app.add_typer(audit_app, name="audit")``,
``app.add_typer(report_app, name="report")``). Connection and store come from the ``GD_*``
settings. Exit codes: 0 success; 2 bad input, unknown workflow, or (replay) any history
the current code does not explain; 1 anything unexpected.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any, Coroutine, Optional

import typer

audit_app = typer.Typer(
    help="Auditoria: exportar o histórico, reexecutar (replay) e linha do tempo.",
    no_args_is_help=True,
)
report_app = typer.Typer(help="Relatórios: cumprimento dos prazos (SLA).", no_args_is_help=True)


@audit_app.callback()
def _audit() -> None:
    """Auditoria: exportar o histórico, reexecutar (replay) e linha do tempo."""


@report_app.callback()
def _report() -> None:
    """Relatórios: cumprimento dos prazos (SLA)."""


class Refused(Exception):
    """Bad input: one pt-BR line on stderr, exit 2."""


class Unreachable(Exception):
    """The Temporal server did not answer: one line, exit 1."""


def _fail(message: str, code: int) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _run(command: str, coroutine: Coroutine[Any, Any, Any]) -> Any:
    from audit.export import ExportError

    try:
        return asyncio.run(coroutine)
    except (Refused, ExportError, ValueError) as error:
        _fail(f"gd {command}: {error}", 2)
    except typer.Exit:
        raise
    except Unreachable as error:
        _fail(f"gd {command}: {error}", 1)
    except Exception as error:  # noqa: BLE001 - the one line a person reads, exit 1
        _fail(f"gd {command}: erro inesperado: {type(error).__name__}: {error}", 1)


async def _client():
    from models.settings import get_settings
    from worker import connect

    settings = get_settings()
    try:
        return await connect(settings)
    except Exception as error:  # noqa: BLE001
        raise Unreachable(
            f"não foi possível conectar ao Temporal em {settings.temporal_address} "
            f"(namespace {settings.namespace}): {error}"
        ) from None


# --- gd audit export ----------------------------------------------------------------------


@audit_app.command("export")
def export_cmd(
    workflow_id: str = typer.Argument(..., help="Id do processo, ex.: gd-request-ABC123."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Arquivo de saída (.json; .json.gz compactado). Padrão: a saída padrão."
    ),
    run_id: Optional[str] = typer.Option(
        None, "--run-id", help="Última execução da cadeia a exportar (padrão: a mais recente)."
    ),
) -> None:
    """Exporta o histórico completo (todas as execuções da cadeia continue-as-new) em JSON."""
    from audit.export import fetch_chain

    async def go():
        client = await _client()
        return await fetch_chain(client, workflow_id, run_id)

    export = _run("audit export", go())
    if output is None:
        sys.stdout.write(export.to_json() + "\n")
    else:
        export.write(output)
    typer.echo(
        f"{workflow_id}: {len(export.runs)} execução(ões), {export.event_count} eventos"
        + (f" → {output}" if output else ""),
        err=True,
    )


# --- gd audit replay ----------------------------------------------------------------------


@audit_app.command("replay")
def replay_cmd(
    workflow_id: Optional[str] = typer.Argument(None, help="Id de um processo no servidor."),
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Diretório de exportações (*.json, *.json.gz)."
    ),
    files: list[Path] = typer.Option([], "--file", help="Arquivo de exportação (repetível)."),
    query: Optional[str] = typer.Option(
        None, "--query", help="Consulta de visibilidade, ex.: 'GdStatus=\"CONNECTED\"'."
    ),
    no_sandbox: bool = typer.Option(
        False, "--no-sandbox", help="Sem a sandbox de workflows: mais rápido, não detecta chamadas proibidas."
    ),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", min=1,
        help="Processos em paralelo (padrão: 1 a cada 100 históricos, até o nº de núcleos).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Resultado em JSON."),
) -> None:
    """Reexecuta históricos com o código atual; uma linha por processo; sai com 2 se algum falhar."""
    sources = [s for s in (workflow_id, directory, files or None, query) if s]
    if len(sources) != 1:
        _fail("gd audit replay: informe exatamente uma origem: ID, --dir, --file ou --query", 2)

    async def go():
        from audit import export as exports
        from audit.replay import fetch_exports, ids_from_query, replay_processes

        if directory is not None:
            loaded = exports.read_dir(directory)
            if not loaded:
                raise Refused(f"--dir: nenhuma exportação (*.json, *.json.gz) em {directory}")
        elif files:
            loaded = [exports.read(path) for path in files]
        else:
            client = await _client()
            ids = [workflow_id] if workflow_id else await ids_from_query(client, query or "")
            if not ids:
                raise Refused(f"--query: nenhum processo atende a {query}")
            loaded = await fetch_exports(client, ids)
        began = time.perf_counter()
        outcomes = await replay_processes(loaded, jobs=jobs, sandbox=not no_sandbox)
        return outcomes, time.perf_counter() - began

    outcomes, elapsed = _run("audit replay", go())
    failed = [o for o in outcomes if not o.ok]
    runs = sum(len(o.runs) for o in outcomes)
    if as_json:
        typer.echo(json.dumps([_outcome_dict(o) for o in outcomes], ensure_ascii=False, indent=1))
    else:
        for outcome in outcomes:
            typer.echo(outcome.line())
        typer.echo(
            f"{len(outcomes)} processo(s), {runs} histórico(s): {len(outcomes) - len(failed)} OK, "
            f"{len(failed)} com falha ({elapsed:.2f} s, {runs / elapsed if elapsed else 0:.0f} históricos/s)"
        )
    if failed:
        raise typer.Exit(2)


def _outcome_dict(outcome) -> dict[str, Any]:
    return {
        "workflow_id": outcome.workflow_id,
        "workflow_type": outcome.workflow_type,
        "ok": outcome.ok,
        "runs": [
            {
                "run_id": r.run_id,
                "events": r.events,
                "ok": r.error is None,
                "nondeterminism": r.nondeterminism,
                "event_id": r.event_id,
                "event": r.event,
                "error": r.error,
            }
            for r in outcome.runs
        ],
    }


# --- gd audit timeline --------------------------------------------------------------------


@audit_app.command("timeline")
def timeline_cmd(
    workflow_id: Optional[str] = typer.Argument(None, help="Id do processo no servidor."),
    file: Optional[Path] = typer.Option(None, "--file", help="Ler de uma exportação em vez do servidor."),
    html: Optional[Path] = typer.Option(None, "--html", help="Grava a linha do tempo em HTML neste arquivo."),
    full_recipients: bool = typer.Option(
        False, "--full-recipients", help="Mostra os endereços de e-mail completos (dado pessoal)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Linha do tempo em JSON."),
) -> None:
    """Linha do tempo: etapas, quem agiu, prazo vigente e se foi cumprido, documentos e e-mails."""
    if (workflow_id is None) == (file is None):
        _fail("gd audit timeline: informe o ID do processo ou --file (um dos dois)", 2)

    async def go():
        from audit import export as exports
        from audit import timeline

        if file is not None:
            loaded = exports.read(file)
        else:
            loaded = await exports.fetch_chain(await _client(), workflow_id)
        return await timeline.build(loaded, full_recipients=full_recipients)

    result = _run("audit timeline", go())
    from audit import timeline

    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(timeline.render_html(result), encoding="utf-8")
        typer.echo(f"linha do tempo gravada em {html}", err=True)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
    elif html is None:
        _print(*timeline.rich_tables(result))


def _print(*tables) -> None:
    from rich.console import Console

    console = Console()
    for table in tables:
        console.print(table)


# --- gd report sla ------------------------------------------------------------------------


def parse_day(value: str, option: str) -> date:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value.strip(), pattern).date()
        except ValueError:
            continue
    raise Refused(f"{option}: data inválida {value!r} (use AAAA-MM-DD ou DD/MM/AAAA)")


@report_app.command("sla")
def sla_cmd(
    from_: str = typer.Option(..., "--from", help="Primeiro dia do período (AAAA-MM-DD)."),
    to: str = typer.Option(..., "--to", help="Último dia do período, incluído (AAAA-MM-DD)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Grava o relatório em HTML (com gráfico)."),
    as_json: bool = typer.Option(False, "--json", help="Relatório em JSON."),
) -> None:
    """Cumprimento dos prazos por regra: quantidade, % no prazo, duração média e p90, violações."""

    async def go():
        from activities.store import Store
        from audit import sla
        from models.settings import get_settings

        first, last = parse_day(from_, "--from"), parse_day(to, "--to")
        if last < first:
            raise Refused("--to: a data final é anterior à inicial")
        store = Store(get_settings().database_url)
        try:
            return sla.report(store, first, last)
        finally:
            store.dispose()

    result = _run("report sla", go())
    from audit import sla

    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(sla.render_html(result), encoding="utf-8")
        typer.echo(f"relatório gravado em {html}", err=True)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
    elif html is None:
        from rich.console import Console

        console = Console()
        for table in sla.rich_tables(result, width=console.width):
            console.print(table)
