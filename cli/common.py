"""What every `gd` command shares: the options (`--json`, `--as`, `--role`, `--doc`,
`--reason`), who acts, the one pt-BR line per failure and its exit code, and `execute`,
which runs a command body against a connected `GdClient`.

Exit codes: 0 success; 2 refused action or bad input (one pt-BR line on stderr — for a
refused update, the workflow validator's own message); 1 anything unexpected (one line,
and `GD_DEBUG=1` shows the traceback).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup
from typer.exceptions import Abort

from cli.formatting import ACTOR_LABELS, STATUS_LABELS, deadline_text, label, summary_table, to_json, to_jsonable
from gd_client import GdClient, GdRefused, GdUnavailable, parse_actor, request_workflow_id
from models.common import Actor, DocumentRef, InputRefused
from models.settings import GdSettings

DEBUG_ENV = "GD_DEBUG"
ACTOR_ENV = "GD_ACTOR"


# --- one clear line per failure --------------------------------------------------------

_USAGE_PATTERNS: list[tuple[str, str]] = [
    (r"^Missing argument '(.+?)'\.?$", r"falta o argumento \1"),
    (r"^Missing option '(.+?)'\.?$", r"falta a opção \1"),
    (r"^Missing parameter: (.+)$", r"falta o parâmetro \1"),
    (r"^No such option: (\S+) \(Possible options: (.+)\)$", r"opção desconhecida: \1 (quis dizer: \2?)"),
    (r"^No such option: (\S+)$", r"opção desconhecida: \1"),
    (r"^No such command '(.+?)'\. Did you mean '(.+?)'\?$", r"comando desconhecido: \1 (quis dizer: \2?)"),
    (r"^No such command '(.+?)'\.?$", r"comando desconhecido: \1"),
    (r"^Got unexpected extra arguments? \((.+)\)$", r"argumento(s) a mais: \1"),
    (r"^Option '(.+?)' requires an argument\.?$", r"a opção \1 exige um valor"),
    (r"^Invalid value for '(.+?)': (.+)$", r"valor inválido para \1: \2"),
]
_VALUE_PATTERNS: list[tuple[str, str]] = [
    (r"'(.*?)' is not a valid integer(?: range)?\.?", r"'\1' não é um número inteiro"),
    (r"'(.*?)' is not a valid float(?: range)?\.?", r"'\1' não é um número"),
    (r"'(.*?)' is not one of (.+?)\.?$", r"'\1' não é um de \2"),
    (r"File '(.*?)' does not exist\.?", r"arquivo '\1' não existe"),
    (r"Input should be a valid integer.*$", "deve ser um número inteiro"),
    (r"Input should be a valid (number|float).*$", "deve ser um número"),
    (r"Input should be a valid boolean.*$", "deve ser verdadeiro ou falso"),
]


def usage_line(error: Exception) -> str:
    """A click usage error as one pt-BR line with the help hint."""
    message = " ".join(error.format_message().split())  # type: ignore[attr-defined]
    for pattern, replacement in _USAGE_PATTERNS:
        if re.match(pattern, message):
            message = re.sub(pattern, replacement, message)
            break
    for pattern, replacement in _VALUE_PATTERNS:
        message = re.sub(pattern, replacement, message)
    ctx = getattr(error, "ctx", None)
    hint = f" (veja `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"uso incorreto: {message}{hint}"


def stderr_line(text: str) -> None:
    sys.stderr.write(" ".join(str(text).split()) + "\n")
    sys.stderr.flush()


class GdGroup(TyperGroup):
    """The root group: usage errors become one pt-BR line on stderr (exit 2)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError:
            sys.exit(2)  # typer already printed the help
        except UsageError as error:
            stderr_line(usage_line(error))
            sys.exit(2)
        except ClickException as error:
            stderr_line(" ".join(error.format_message().split()))
            sys.exit(error.exit_code)
        except Abort:
            stderr_line("interrompido")
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def group(help: str) -> typer.Typer:
    """A command group (a typer sub-app); `cli.app` mounts it under `gd NAME`."""
    sub = typer.Typer(help=help, no_args_is_help=True)

    @sub.callback()
    def _callback() -> None:  # makes the group a group even before it has commands
        pass

    _callback.__doc__ = help
    return sub


# --- options every command shares ---------------------------------------------------------

JSON_HELP = "Saída em JSON no stdout (para scripts)."
AS_HELP = f"Quem age (id, ex.: ana.silva). Sem --as: {ACTOR_ENV}=papel:id."
ROLE_HELP = "Papel de quem age: customer, technician, analyst, supervisor, inspector ou system."
DOC_HELP = (
    "Documento: tipo=caminho (enviado antes) ou tipo=sha256 de um já enviado; repetível. "
    "Tipos: commercial_id, access_form, electrical_project, art_rrt, single_line_diagram, "
    "descriptive_memorial, inverter_datasheet, module_datasheet, inverter_certificate, "
    "power_of_attorney, parecer, inspection_report, correction, other."
)
REASON_HELP = "Motivo do catálogo: CÓDIGO ou CÓDIGO:texto; repetível (ex.: DOC-ART-AUSENTE)."
REQUEST_HELP = "request_id ou id do processo."


def json_opt() -> Any:
    return typer.Option(False, "--json", help=JSON_HELP)


def as_opt() -> Any:
    return typer.Option(None, "--as", help=AS_HELP, show_default=False)


def role_opt(default_role: str) -> Any:
    return typer.Option(None, "--role", help=f"{ROLE_HELP} Padrão: {default_role}.", show_default=False)


def docs_opt(help: str = DOC_HELP) -> Any:
    return typer.Option(None, "--doc", help=help, show_default=False)


def reasons_opt() -> Any:
    return typer.Option(..., "--reason", "-r", help=REASON_HELP)


# --- running a command ------------------------------------------------------------------


def settings_now() -> GdSettings:
    """Settings read now (not cached): the environment of this invocation."""
    try:
        return GdSettings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "GD_" + str(first["loc"][0]).upper() if first.get("loc") else "GD_*"
        raise GdRefused(f"configuração inválida em {name}: {first.get('msg')}") from None


async def connect_client(settings: GdSettings) -> GdClient:
    """The client commands use (tests replace this to run without a server)."""
    return await GdClient.connect(settings)


def console(stderr: bool = False) -> Console:
    """Rich output; piped to a file or a script it is not cut at 80 columns."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 160
    return out


def emit_json(value: Any) -> None:
    sys.stdout.write(to_json(value) + "\n")
    sys.stdout.flush()


def fail(code: int, message: str, json_out: bool, problems: list | None = None) -> None:
    if json_out:
        emit_json({"ok": False, "exit_code": code, "error": message, "problems": to_jsonable(problems or [])})
    stderr_line(message)
    raise typer.Exit(code)


class _NotRaised(Exception):
    pass


def _upload_refused() -> type[Exception]:
    # Only a command that touched the blob store can raise it, and then activities.blobs
    # is loaded: look it up rather than import the store (see docstore._open_store).
    blobs = sys.modules.get("activities.blobs")
    return getattr(blobs, "UploadRefused", _NotRaised)


def execute(
    body: Callable[..., Awaitable[Any]] | Callable[..., Any],
    json_out: bool,
    *,
    temporal: bool = True,
) -> None:
    """Run a command body, mapping every failure to exit 2 (refused/bad input) or 1.
    With ``temporal`` the body gets a connected client, else the settings."""
    try:
        settings = settings_now()
        if temporal:

            async def connected() -> Any:
                gd = await connect_client(settings)
                return await body(gd)

            asyncio.run(connected())
        else:
            result = body(settings)
            if asyncio.iscoroutine(result):
                asyncio.run(result)
    except typer.Exit:
        raise
    except GdRefused as error:
        fail(2, error.message, json_out, error.problems)
    except InputRefused as error:
        fail(2, str(error), json_out, error.problems)
    except GdUnavailable as error:
        fail(1, error.message, json_out)
    except KeyboardInterrupt:
        stderr_line("interrompido")
        raise typer.Exit(130) from None
    except Exception as error:  # noqa: BLE001 - the one place unexpected errors are shown
        if isinstance(error, _upload_refused()):
            fail(2, str(error), json_out)
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc(file=sys.stderr)
        detail = " ".join(str(error).split())[:300]
        fail(
            1,
            f"erro inesperado ({type(error).__name__}: {detail}); "
            f"rode de novo com {DEBUG_ENV}=1 para ver o traceback",
            json_out,
        )


# A technician or customer acting on a request must say which party they are: the
# workflows accept their actions only from the request's own RT (council key) and customer
# (CPF/CNPJ). `gd --council-key … --document …` (root options) or these variables.
COUNCIL_KEY_ENV = "GD_ACTOR_COUNCIL_KEY"
DOCUMENT_ENV = "GD_ACTOR_DOCUMENT"


def resolve_actor(as_id: str | None, role: str | None, default_role: str | None) -> Actor:
    """`--as`/`--role`, else GD_ACTOR=role:id; the command's persona fills a missing role.
    A technician carries GD_ACTOR_COUNCIL_KEY, a customer GD_ACTOR_DOCUMENT (set by the
    root options `--council-key`/`--document`)."""
    env = os.environ.get(ACTOR_ENV, "").strip()
    env_role = env_id = None
    if env:
        env_role, sep, env_id = env.partition(":")
        if not sep or not env_role.strip() or not env_id.strip():
            raise GdRefused(f"{ACTOR_ENV} deve ter a forma papel:id (ex.: analyst:ana.silva), não {env!r}")
        env_role, env_id = env_role.strip(), env_id.strip()
    actor_id = as_id or env_id
    if not actor_id:
        raise GdRefused(
            f"informe quem age: --as ID --role PAPEL, ou {ACTOR_ENV}=papel:id (ex.: {default_role or 'analyst'}:ana.silva)"
        )
    chosen = role or (None if as_id else env_role) or default_role
    if not chosen:
        raise GdRefused("informe o papel de quem age: --role PAPEL")
    actor: dict[str, Any] = {"id": actor_id, "role": chosen}
    council_key = os.environ.get(COUNCIL_KEY_ENV, "").strip()
    document = os.environ.get(DOCUMENT_ENV, "").strip()
    if chosen == "technician" and council_key:
        actor["council_key"] = council_key
    if chosen == "customer" and document:
        actor["document"] = document
    return parse_actor(actor)


def resolve_docs(gd_documents: Any, specs: list[str] | None, default_kind: str | None = None) -> list[DocumentRef]:
    return [gd_documents.resolve(spec, default_kind) for spec in specs or []]


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GdRefused(f"arquivo não encontrado: {path}") from None
    except json.JSONDecodeError as error:
        raise GdRefused(f"{path.name}: JSON inválido na linha {error.lineno}, coluna {error.colno}: {error.msg}") from None


def load_json_object(path: Path) -> dict[str, Any]:
    loaded = load_json(path)
    if not isinstance(loaded, dict):
        raise GdRefused(f"{path.name}: o arquivo deve conter um objeto JSON")
    return loaded


# --- what commands print ------------------------------------------------------------------


def show_snapshot(workflow_id: str, st: Any) -> None:
    """``--json``: the status with its workflow id."""
    emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})


def after_update(action: str, workflow_id: str, st: Any, json_out: bool) -> None:
    """What every update prints: the new status in one line (or the JSON snapshot)."""
    if json_out:
        show_snapshot(workflow_id, st)
        return
    parts = [f"✓ {action}: {workflow_id} → {st.status} ({label(STATUS_LABELS, st.status)})"]
    if getattr(st, "next_actor", None):
        parts.append(f"próximo: {label(ACTOR_LABELS, st.next_actor)}")
    if getattr(st, "due_at", None):
        parts.append(f"prazo {deadline_text(st.due_at, getattr(st, 'clock_paused', False))}")
    if getattr(st, "service_note", None):
        parts.append(f"NS {st.service_note}")
    console().print(Text(" · ".join(parts)), soft_wrap=True)


def update_command(
    action: str,
    request: str,
    as_id: str | None,
    role: str | None,
    default_role: str,
    json_out: bool,
    call: Callable[[Any, str, Any], Awaitable[Any]],
    workflow_id_of: Callable[[str], str] = request_workflow_id,
) -> None:
    """Resolve who acts and the id, run the update, show the status once its effects ran."""

    async def body(gd: Any) -> None:
        actor = resolve_actor(as_id, role, default_role)
        workflow_id = workflow_id_of(request)
        await call(gd, workflow_id, actor)
        st = await gd.settle(workflow_id)
        after_update(action, workflow_id, st, json_out)

    execute(body, json_out)


def list_and_show(
    title: str,
    fetch: Callable[[Any, Callable[[int], None]], Awaitable[list]],
    json_out: bool,
    show_next: bool = True,
) -> None:
    """A visibility list: JSON rows, or a table by due date with a spinner meanwhile."""

    async def body(gd: Any) -> None:
        if json_out:
            emit_json(await fetch(gd, lambda n: None))
            return
        out = console()
        with out.status("consultando a visibilidade do Temporal…") as spinner:
            rows = await fetch(gd, lambda n: spinner.update(f"consultando… {n} processo(s) lido(s)"))
        if not rows:
            out.print(f"{title}: nenhum processo encontrado.")
            return
        out.print(
            summary_table(rows, f"{title} — {len(rows)} processo(s), por prazo", show_next=show_next, width=out.width)
        )

    execute(body, json_out)
