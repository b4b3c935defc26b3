"""The `gd` command line (CONTRACT.md): one entry point, grouped by who uses it.

Each person's job reads as a command: `gd apr register` (RT), `gd analyst suspend`
(analista), `gd inspection record` (vistoriador)… They are thin: `gd_client.GdClient`
does the work (the same client backend teams import), `cli_format` shows the result.

Who acts: `--as ID --role ROLE`, or `GD_ACTOR=role:id`; without a role the command's own
persona is used (analyst for `gd analyst …`, technician for `gd apr …`, …). `--json` on
every command prints machine-readable output on stdout.

Exit codes: 0 success; 2 refused action or bad input (one pt-BR line on stderr — for a
refused update, the workflow validator's own message); 1 anything unexpected (one line,
and `GD_DEBUG=1` shows the traceback).

Imports stay light at module level (typer only), so `gd --help` answers fast; commands
import what they need.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from gd_client import GdClient
    from models.settings import GdSettings

DEBUG_ENV = "GD_DEBUG"
ACTOR_ENV = "GD_ACTOR"


def _project_on_path() -> None:
    """`devstack`, `gd_client`, `cli_format` and `audit` sit next to this file; an editable
    install made before they existed does not map them, so look here too."""
    import importlib.util

    if any(importlib.util.find_spec(name) is None for name in ("gd_client", "cli_format", "devstack", "audit")):
        root = str(Path(__file__).resolve().parent)
        if root not in sys.path:
            sys.path.insert(0, root)


_project_on_path()


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


class GdGroup(TyperGroup):
    """The root group: usage errors become one pt-BR line on stderr (exit 2)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
        from typer.exceptions import Abort

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError:
            sys.exit(2)  # typer already printed the help
        except UsageError as error:
            _stderr_line(usage_line(error))
            sys.exit(2)
        except ClickException as error:
            _stderr_line(" ".join(error.format_message().split()))
            sys.exit(error.exit_code)
        except Abort:
            _stderr_line("interrompido")
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def _stderr_line(text: str) -> None:
    sys.stderr.write(" ".join(str(text).split()) + "\n")
    sys.stderr.flush()


app = typer.Typer(
    name="gd",
    cls=GdGroup,
    help="Acesso de micro e minigeração distribuída (GD) na CEMIG — orquestração com Temporal.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _group(name: str, help: str, *, mount: bool = True) -> typer.Typer:
    """A command group (a typer sub-app) registered under `gd NAME`."""
    group = typer.Typer(help=help, no_args_is_help=True)

    @group.callback()
    def _callback() -> None:  # makes the group a group even before it has commands
        pass

    _callback.__doc__ = help
    if mount:
        app.add_typer(group, name=name, help=help)
    return group


dev_app = _group("dev", "Ambiente local de desenvolvimento: servidor Temporal, SMTP de teste e worker.")
docs_app = _group("docs", "Documentos: envio ao repositório de arquivos (gera o DocumentRef).")
request_app = _group(
    "request", "Solicitações de acesso: abrir, consultar a situação, listar e desistir."
)
inquiry_app = _group("inquiry", "Consultas de acesso (informação prévia) do cliente ou integrador.")
apr_app = _group(
    "apr",
    "APR Web (responsável técnico): registro da NS e do Protocolo, anexar documentos corrigidos.",
)
analyst_app = _group(
    "analyst",
    "Analista: fila de trabalho, aprovar, suspender, reprovar, responder consultas, "
    "declarar obras, pausar e retomar o prazo.",
)
reanalysis_app = _group(
    "reanalysis", "Reanálise após suspensão, reprovação ou reprovação por decurso de prazo."
)
inspection_app = _group("inspection", "Vistoria: pedido (cliente) e registro do resultado (vistoriador).")
technician_app = _group(
    "technician", "Responsáveis técnicos (CREA/CAU): cadastrar, aprovar, recusar e consultar."
)
beneficiaries_app = _group(
    "beneficiaries",
    "Unidades beneficiárias (rateio dos créditos): cadastrar, confirmar, recusar e consultar.",
)

# `gd audit …` and `gd report …` belong to the audit package; until it lands, placeholders.
try:
    from audit.cli import audit_app as _audit_app
    from audit.cli import report_app as _report_app
except ImportError:
    _audit_app = _group(
        "audit", "Auditoria: exportar o histórico, reexecutar (replay) e linha do tempo.", mount=False
    )
    _report_app = _group("report", "Relatórios: cumprimento dos prazos (SLA).", mount=False)
app.add_typer(
    _audit_app, name="audit", help="Auditoria: exportar o histórico, reexecutar (replay) e linha do tempo."
)
app.add_typer(_report_app, name="report", help="Relatórios: cumprimento dos prazos (SLA).")
from api.cli import dev_token as _api_dev_token, serve as _api_serve  # noqa: E402 (HTTP API, issue 16)
app.command("api")(_api_serve)
dev_app.command("token")(_api_dev_token)


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


def _json_opt() -> Any:
    return typer.Option(False, "--json", help=JSON_HELP)


def _as_opt() -> Any:
    return typer.Option(None, "--as", help=AS_HELP, show_default=False)


def _role_opt(default_role: str) -> Any:
    return typer.Option(None, "--role", help=f"{ROLE_HELP} Padrão: {default_role}.", show_default=False)


def _docs_opt(help: str = DOC_HELP) -> Any:
    return typer.Option(None, "--doc", help=help, show_default=False)


# --- running a command ------------------------------------------------------------------


def _settings() -> "GdSettings":
    """Settings read now (not cached): the environment of this invocation."""
    from pydantic import ValidationError

    from models.settings import GdSettings

    try:
        return GdSettings()
    except ValidationError as error:
        from gd_client import GdRefused

        first = error.errors()[0]
        name = "GD_" + str(first["loc"][0]).upper() if first.get("loc") else "GD_*"
        raise GdRefused(f"configuração inválida em {name}: {first.get('msg')}") from None


async def connect_client(settings: "GdSettings") -> "GdClient":
    """The client commands use (tests replace this to run without a server)."""
    from gd_client import GdClient

    return await GdClient.connect(settings)


def _console(stderr: bool = False):
    """Rich output; piped to a file or a script it is not cut at 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160
    return console


def _emit_json(value: Any) -> None:
    from cli_format import to_json

    sys.stdout.write(to_json(value) + "\n")
    sys.stdout.flush()


def _fail(code: int, message: str, json_out: bool, problems: list | None = None) -> None:
    if json_out:
        from cli_format import to_jsonable

        _emit_json(
            {"ok": False, "exit_code": code, "error": message, "problems": to_jsonable(problems or [])}
        )
    _stderr_line(message)
    raise typer.Exit(code)


def _execute(
    body: Callable[..., Awaitable[Any]] | Callable[..., Any],
    json_out: bool,
    *,
    temporal: bool = True,
) -> None:
    """Run a command body, mapping every failure to exit 2 (refused/bad input) or 1."""
    from gd_client import GdRefused, GdUnavailable
    from models.common import InputRefused

    class _NotRaised(Exception):
        pass

    def upload_refused() -> type[Exception]:
        # Only a command that touched the blob store can raise it; importing the store
        # (sqlmodel) for every command would slow each one down.
        blobs = sys.modules.get("activities.blobs")
        return getattr(blobs, "UploadRefused", _NotRaised)

    try:
        settings = _settings()
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
        _fail(2, error.message, json_out, error.problems)
    except InputRefused as error:
        _fail(2, str(error), json_out, error.problems)
    except GdUnavailable as error:
        _fail(1, error.message, json_out)
    except KeyboardInterrupt:
        _stderr_line("interrompido")
        raise typer.Exit(130) from None
    except Exception as error:  # noqa: BLE001 - the one place unexpected errors are shown
        if isinstance(error, upload_refused()):
            _fail(2, str(error), json_out)
        if os.environ.get(DEBUG_ENV):
            import traceback

            traceback.print_exc(file=sys.stderr)
        detail = " ".join(str(error).split())[:300]
        _fail(
            1,
            f"erro inesperado ({type(error).__name__}: {detail}); "
            f"rode de novo com {DEBUG_ENV}=1 para ver o traceback",
            json_out,
        )


def resolve_actor(as_id: str | None, role: str | None, default_role: str | None) -> Any:
    """`--as`/`--role`, else GD_ACTOR=role:id; the command's persona fills a missing role."""
    from gd_client import GdRefused, parse_actor

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
    return parse_actor({"id": actor_id, "role": chosen})


def _resolve_docs(gd_documents: Any, specs: list[str] | None, default_kind: str | None = None) -> list[Any]:
    return [gd_documents.resolve(spec, default_kind) for spec in specs or []]


def _after_update(action: str, workflow_id: str, st: Any, json_out: bool) -> None:
    """What every update prints: the new status in one line (or the JSON snapshot)."""
    if json_out:
        _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
        return
    from cli_format import ACTOR_LABELS, STATUS_LABELS, deadline_text, label

    parts = [f"✓ {action}: {workflow_id} → {st.status} ({label(STATUS_LABELS, st.status)})"]
    if getattr(st, "next_actor", None):
        parts.append(f"próximo: {label(ACTOR_LABELS, st.next_actor)}")
    if getattr(st, "due_at", None):
        parts.append(f"prazo {deadline_text(st.due_at, getattr(st, 'clock_paused', False))}")
    if getattr(st, "service_note", None):
        parts.append(f"NS {st.service_note}")
    _console().print(" · ".join(parts), soft_wrap=True)


async def _update_and_show(gd: Any, action: str, workflow_id: str, call: Awaitable[Any], json_out: bool) -> None:
    await call
    st = await gd.settle(workflow_id)
    _after_update(action, workflow_id, st, json_out)


# --- gd dev, gd worker ------------------------------------------------------------------


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


# --- gd docs ----------------------------------------------------------------------------


@docs_app.command("upload")
def docs_upload(
    file: Path = typer.Argument(..., help="Arquivo PDF, PNG, JPEG, DWG ou DXF (até 3 MB)."),
    kind: str = typer.Option(..., "--kind", "-k", help="Tipo do documento (ex.: art_rrt)."),
    json_out: bool = _json_opt(),
) -> None:
    """Envia um arquivo ao repositório (uma vez, pelo sha256) e mostra o DocumentRef."""

    def body(settings: Any) -> None:
        from gd_client import Documents

        ref = Documents(settings).upload(file, kind)
        if json_out:
            _emit_json(ref)
            return
        from cli_format import _facts
        from rich.panel import Panel

        _console().print(
            Panel(
                _facts([("tipo", ref.kind), ("arquivo", ref.filename), ("sha256", ref.sha256),
                        ("tamanho", f"{ref.size} bytes"), ("conteúdo", ref.content_type)]),  # fmt: skip
                title="[bold]✓ documento armazenado[/]",
                expand=False,
            )
        )

    _execute(body, json_out, temporal=False)


# --- gd request / gd inquiry new -----------------------------------------------------------


def _load_json(path: Path) -> Any:
    import json

    from gd_client import GdRefused

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GdRefused(f"arquivo não encontrado: {path}") from None
    except json.JSONDecodeError as error:
        raise GdRefused(f"{path.name}: JSON inválido na linha {error.lineno}, coluna {error.colno}: {error.msg}") from None


def _new_request_id(kind: str) -> str:
    import secrets
    from datetime import datetime

    from domain.calendar import TZ

    prefix = "consulta" if kind == "inquiry" else "req"
    return f"{prefix}-{datetime.now(TZ):%Y%m%d}-{secrets.token_hex(3)}"


def _documents_from_file(gd_documents: Any, items: Any, base: Path) -> list[Any]:
    """`documents` of an input file: DocumentRefs, {"kind", "path"} or "kind=path" strings."""
    from gd_client import GdRefused

    if items is None:
        return []
    if not isinstance(items, list):
        raise GdRefused("documents: deve ser uma lista")
    resolved: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            resolved.append(gd_documents.resolve(item, base=base))
        elif isinstance(item, dict) and "path" in item:
            kind = item.get("kind")
            if not kind:
                raise GdRefused(f"documents[{i}]: informe kind junto de path")
            resolved.append(gd_documents.upload(base / Path(item["path"]).expanduser(), kind))
        else:
            resolved.append(item)
    return resolved


def build_access_input(
    kind: str,
    gd_documents: Any,
    *,
    file: Path | None,
    request_id: str | None,
    name: str | None,
    document: str | None,
    email: str | None,
    phone: str | None,
    customer_number: str | None,
    installation: str | None,
    technician: str | None,
    source: str | None,
    power_kw: float | None,
    storage_kwh: float | None,
    voltage_kv: float | None,
    modality: str | None,
    policy: str | None,
    integrator_name: str | None,
    integrator_document: str | None,
    beneficiaries: Path | None,
    docs: list[str] | None,
) -> dict[str, Any]:
    """The AccessRequest input from a JSON file and/or flags (flags win), files uploaded."""
    from gd_client import GdRefused

    raw: dict[str, Any] = {}
    base = Path.cwd()
    if file is not None:
        loaded = _load_json(file)
        if not isinstance(loaded, dict):
            raise GdRefused(f"{file.name}: o arquivo deve conter um objeto JSON")
        raw = loaded
        base = file.resolve().parent
    declared = raw.get("kind")
    if declared not in (None, kind):
        other = "gd inquiry new" if declared == "inquiry" else "gd request new"
        raise GdRefused(f"kind: o arquivo declara {declared!r}; use `{other}`")
    raw["kind"] = kind
    if request_id:
        raw["request_id"] = request_id
    raw.setdefault("request_id", _new_request_id(kind))

    customer = raw.get("customer") if isinstance(raw.get("customer"), dict) else {}
    for key, value in (("name", name), ("document", document), ("email", email),
                       ("phone", phone), ("customer_number", customer_number)):  # fmt: skip
        if value is not None:
            customer[key] = value
    raw["customer"] = customer
    if integrator_name or integrator_document:
        integrator = raw.get("integrator") if isinstance(raw.get("integrator"), dict) else {}
        if integrator_name:
            integrator["name"] = integrator_name
        if integrator_document:
            integrator["document"] = integrator_document
        raw["integrator"] = integrator
    if installation is not None:
        raw["installation_number"] = installation
    if technician is not None:
        raw["technician"] = technician
    if isinstance(raw.get("technician"), str):  # "CREA-MG-12345" → the Technician object
        from gd_client import parse_technician_key

        raw["technician"] = parse_technician_key(raw["technician"]).model_dump()

    generation = raw.get("generation") if isinstance(raw.get("generation"), dict) else {}
    if file is None:  # most GD is solar, local consumption
        generation.setdefault("source", "solar")
        generation.setdefault("modality", "local")
    for key, value in (("source", source), ("installed_power_kw", power_kw),
                       ("storage_kwh", storage_kwh), ("voltage_kv", voltage_kv),
                       ("modality", modality)):  # fmt: skip
        if value is not None:
            generation[key] = value
    raw["generation"] = generation
    if policy is not None:
        raw["policy"] = policy
    if beneficiaries is not None:
        raw["beneficiaries"] = _load_json(beneficiaries)

    documents = _documents_from_file(gd_documents, raw.get("documents"), base)
    documents += _resolve_docs(gd_documents, docs)
    raw["documents"] = documents
    return raw


def _show_started(st: Any, workflow_id: str, json_out: bool) -> None:
    """After `request new` / `inquiry new`: id, NS, Protocolo, due date — or the refusal."""
    if json_out:
        _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
    else:
        from cli_format import access_panel

        _console().print(access_panel(st, workflow_id))
    if st.status == "REFUSED":
        from gd_client import GdRefused

        what = "consulta" if st.kind == "inquiry" else "solicitação"
        reasons = "; ".join(str(p) for p in st.refusal_reasons)
        error = GdRefused(f"{what} {st.request_id} recusada na triagem: {reasons}", st.refusal_reasons)
        _stderr_line(error.message)
        raise typer.Exit(2)


# Which option fills each input field, to point at it when a field is refused.
FIELD_FLAGS = {
    "request_id": "--request-id", "customer.name": "--name", "customer.document": "--document",
    "customer.email": "--email", "customer.phone": "--phone",
    "customer.customer_number": "--customer-number", "customer": "--document/--customer-number",
    "integrator.name": "--integrator-name", "integrator.document": "--integrator-document",
    "installation_number": "--installation", "technician": "--technician",
    "generation.source": "--source", "generation.installed_power_kw": "--power",
    "generation.storage_kwh": "--storage", "generation.voltage_kv": "--voltage",
    "generation.modality": "--modality", "generation": "--power/--source", "policy": "--policy",
    "documents": "--doc", "beneficiaries": "--beneficiaries",
}  # fmt: skip


def _with_flag_hint(error: Any) -> Any:
    from gd_client import GdRefused

    flags: list[str] = []
    for problem in error.problems:
        field = problem.field.split("[")[0]
        while field and field not in FIELD_FLAGS:
            field = field.rpartition(".")[0]
        if field and FIELD_FLAGS[field] not in flags:
            flags.append(FIELD_FLAGS[field])
    if not flags:
        return error
    return GdRefused(f"{error.message} (opções: {', '.join(flags)})", error.problems)


def _new_access(kind: str, json_out: bool, **flags: Any) -> None:
    async def body(gd: Any) -> None:
        from gd_client import GdRefused
        from models.ids import access_request_id

        raw = build_access_input(kind, gd.documents, **flags)
        try:
            st = await gd.start_request(raw)
        except GdRefused as error:
            raise _with_flag_hint(error) from None
        workflow_id = access_request_id(st.request_id or raw["request_id"])
        if st.status != "REFUSED":
            st = await gd.settle(workflow_id)  # the e-mail with NS and Protocolo went out
        _show_started(st, workflow_id, json_out)

    _execute(body, json_out)


_FILE_HELP = "Arquivo JSON com a entrada completa (CONTRACT.md); as opções abaixo sobrepõem seus campos."


@request_app.command("new")
def request_new(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help=_FILE_HELP),
    request_id: Optional[str] = typer.Option(None, "--request-id", help="Chave de idempotência (gerada se omitida)."),
    name: Optional[str] = typer.Option(None, "--name", help="Nome do cliente."),
    document: Optional[str] = typer.Option(None, "--document", help="CPF ou CNPJ do cliente."),
    email: Optional[str] = typer.Option(None, "--email", help="E-mail do cliente."),
    phone: Optional[str] = typer.Option(None, "--phone", help="Telefone do cliente."),
    customer_number: Optional[str] = typer.Option(None, "--customer-number", help="Número de cliente."),
    installation: Optional[str] = typer.Option(None, "--installation", help="Número da instalação (10 dígitos)."),
    technician: Optional[str] = typer.Option(None, "--technician", help="RT aprovado: CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345)."),
    source: Optional[str] = typer.Option(None, "--source", help="Fonte: solar, wind, hydro, biomass, cogeneration, other (padrão solar)."),
    power_kw: Optional[float] = typer.Option(None, "--power", help="Potência instalada em kW."),
    storage_kwh: Optional[float] = typer.Option(None, "--storage", help="Armazenamento em kWh."),
    voltage_kv: Optional[float] = typer.Option(None, "--voltage", help="Tensão de conexão em kV (padrão 0,22)."),
    modality: Optional[str] = typer.Option(None, "--modality", help="local, remote, shared ou multi_unit (padrão local)."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Política de prazos: seed ou ren1000-2023."),
    integrator_name: Optional[str] = typer.Option(None, "--integrator-name", help="Nome do integrador."),
    integrator_document: Optional[str] = typer.Option(None, "--integrator-document", help="CPF/CNPJ do integrador."),
    beneficiaries: Optional[Path] = typer.Option(None, "--beneficiaries", help="JSON do rateio (Allocation) das UCs recebedoras."),
    docs: Optional[list[str]] = _docs_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Abre uma solicitação de acesso (AGV): mostra o id do processo, NS, Protocolo e o prazo de 24 h do APR Web."""
    _new_access(
        "request", json_out, file=file, request_id=request_id, name=name, document=document,
        email=email, phone=phone, customer_number=customer_number, installation=installation,
        technician=technician, source=source, power_kw=power_kw, storage_kwh=storage_kwh,
        voltage_kv=voltage_kv, modality=modality, policy=policy, integrator_name=integrator_name,
        integrator_document=integrator_document, beneficiaries=beneficiaries, docs=docs,
    )  # fmt: skip


@inquiry_app.command("new")
def inquiry_new(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help=_FILE_HELP),
    request_id: Optional[str] = typer.Option(None, "--request-id", help="Chave de idempotência (gerada se omitida)."),
    name: Optional[str] = typer.Option(None, "--name", help="Nome do cliente."),
    document: Optional[str] = typer.Option(None, "--document", help="CPF ou CNPJ do cliente."),
    email: Optional[str] = typer.Option(None, "--email", help="E-mail do cliente."),
    phone: Optional[str] = typer.Option(None, "--phone", help="Telefone do cliente."),
    customer_number: Optional[str] = typer.Option(None, "--customer-number", help="Número de cliente."),
    source: Optional[str] = typer.Option(None, "--source", help="Fonte (padrão solar)."),
    power_kw: Optional[float] = typer.Option(None, "--power", help="Potência instalada em kW."),
    storage_kwh: Optional[float] = typer.Option(None, "--storage", help="Armazenamento em kWh."),
    voltage_kv: Optional[float] = typer.Option(None, "--voltage", help="Tensão de conexão em kV."),
    modality: Optional[str] = typer.Option(None, "--modality", help="local, remote, shared ou multi_unit (padrão local)."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Política de prazos: seed ou ren1000-2023."),
    integrator_name: Optional[str] = typer.Option(None, "--integrator-name", help="Nome do integrador."),
    integrator_document: Optional[str] = typer.Option(None, "--integrator-document", help="CPF/CNPJ do integrador."),
    docs: Optional[list[str]] = _docs_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Faz uma consulta de acesso: resposta da distribuidora em até 30 dias."""
    _new_access(
        "inquiry", json_out, file=file, request_id=request_id, name=name, document=document,
        email=email, phone=phone, customer_number=customer_number, installation=None,
        technician=None, source=source, power_kw=power_kw, storage_kwh=storage_kwh,
        voltage_kv=voltage_kv, modality=modality, policy=policy, integrator_name=integrator_name,
        integrator_document=integrator_document, beneficiaries=None, docs=docs,
    )  # fmt: skip


@request_app.command("status")
def request_status(
    request: str = typer.Argument(..., help="request_id ou id do processo (gd-request-…)."),
    json_out: bool = _json_opt(),
) -> None:
    """Situação, quem age, prazo e tempo restante, SLA, decisões, documentos e NS."""

    async def body(gd: Any) -> None:
        from gd_client import any_workflow_id

        workflow_id = any_workflow_id(request)
        st = await gd.status(workflow_id)
        if json_out:
            _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
            return
        from cli_format import status_panel

        _console().print(status_panel(st, workflow_id))

    _execute(body, json_out)


def _list_and_show(
    title: str,
    fetch: Callable[[Any, Callable[[int], None]], Awaitable[list]],
    json_out: bool,
    show_next: bool = True,
) -> None:
    async def body(gd: Any) -> None:
        if json_out:
            _emit_json(await fetch(gd, lambda n: None))
            return
        console = _console()
        with console.status("consultando a visibilidade do Temporal…") as spinner:
            rows = await fetch(gd, lambda n: spinner.update(f"consultando… {n} processo(s) lido(s)"))
        from cli_format import summary_table

        if not rows:
            console.print(f"{title}: nenhum processo encontrado.")
            return
        console.print(
            summary_table(rows, f"{title} — {len(rows)} processo(s), por prazo", show_next=show_next,
                          width=console.width)
        )  # fmt: skip

    _execute(body, json_out)


@request_app.command("list")
def request_list(
    status: Optional[list[str]] = typer.Option(None, "--status", "-s", help="Situação (repetível), ex.: UNDER_ANALYSIS."),
    overdue: bool = typer.Option(False, "--overdue", help="Só os com prazo vencido (ainda abertos)."),
    due_within: Optional[int] = typer.Option(None, "--due-within", help="Só os que vencem até o fim do N-ésimo dia a partir de hoje."),
    technician: Optional[str] = typer.Option(None, "--technician", help="RT: CONSELHO-UF-REGISTRO."),
    generation_class: Optional[str] = typer.Option(None, "--class", help="micro ou mini."),
    kind: Optional[str] = typer.Option(None, "--kind", help="request ou inquiry (padrão: ambos)."),
    limit: int = typer.Option(200, "--limit", help="No máximo N processos."),
    json_out: bool = _json_opt(),
) -> None:
    """Lista solicitações e consultas pelos atributos de busca, ordenadas pelo prazo."""

    async def fetch(gd: Any, on_row: Callable[[int], None]) -> list:
        return await gd.list_requests(
            status=status, overdue=overdue, due_within_days=due_within, technician=technician,
            generation_class=generation_class, kind=kind, limit=limit, on_row=on_row,
        )  # fmt: skip

    _list_and_show("Solicitações", fetch, json_out)


@request_app.command("withdraw")
def request_withdraw(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    reason: str = typer.Option(..., "--reason", help="Motivo da desistência."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("customer"),
    json_out: bool = _json_opt(),
) -> None:
    """Desistência do cliente (qualquer situação antes da conexão)."""
    _update_command("withdraw", request, as_id, role, "customer", json_out,
                   lambda gd, wf, actor: gd.withdraw(wf, actor, reason))  # fmt: skip


def _update_command(
    action: str,
    request: str,
    as_id: str | None,
    role: str | None,
    default_role: str,
    json_out: bool,
    call: Callable[[Any, str, Any], Awaitable[Any]],
    workflow_id_of: Callable[[str], str] | None = None,
) -> None:
    """Resolve who acts and the id, run the update, show the new status."""

    async def body(gd: Any) -> None:
        from gd_client import request_workflow_id

        actor = resolve_actor(as_id, role, default_role)
        workflow_id = (workflow_id_of or request_workflow_id)(request)
        await _update_and_show(gd, action, workflow_id, call(gd, workflow_id, actor), json_out)

    _execute(body, json_out)


# --- gd apr ----------------------------------------------------------------------------


@apr_app.command("register")
def apr_register(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    service_note: str = typer.Option(..., "--ns", help="NS (Nota de Serviço) emitida na abertura."),
    protocol: str = typer.Option(..., "--protocol", help="Protocolo emitido na abertura."),
    docs: Optional[list[str]] = _docs_opt(),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("technician"),
    json_out: bool = _json_opt(),
) -> None:
    """RT: registra NS e Protocolo no APR Web com os documentos técnicos (projeto, ART/RRT, unifilar, memorial)."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.register_apr(wf, actor, service_note, protocol, _resolve_docs(gd.documents, docs))

    _update_command("register_apr", request, as_id, role, "technician", json_out, call)


@apr_app.command("corrections")
def apr_corrections(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    docs: list[str] = typer.Option(..., "--doc", help=DOC_HELP + " Sem tipo=, o tipo é correction."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("technician"),
    json_out: bool = _json_opt(),
) -> None:
    """RT: anexa no APR Web os documentos corrigidos após suspensão ou reprovação."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.attach_corrections(wf, actor, _resolve_docs(gd.documents, docs, "correction"))

    _update_command("attach_corrections", request, as_id, role, "technician", json_out, call)


# --- gd analyst --------------------------------------------------------------------------


@analyst_app.command("queue")
def analyst_queue(
    generation_class: Optional[str] = typer.Option(None, "--class", help="micro ou mini."),
    overdue: bool = typer.Option(False, "--overdue", help="Só os com prazo vencido."),
    due_within: Optional[int] = typer.Option(None, "--due-within", help="Só os que vencem até o fim do N-ésimo dia."),
    technician: Optional[str] = typer.Option(None, "--technician", help="RT: CONSELHO-UF-REGISTRO."),
    limit: int = typer.Option(200, "--limit", help="No máximo N processos."),
    json_out: bool = _json_opt(),
) -> None:
    """Fila do analista: tudo que espera uma decisão da distribuidora, pelo prazo."""

    async def fetch(gd: Any, on_row: Callable[[int], None]) -> list:
        return await gd.analyst_queue(
            generation_class=generation_class, overdue=overdue, due_within_days=due_within,
            technician=technician, limit=limit, on_row=on_row,
        )  # fmt: skip

    _list_and_show("Fila do analista", fetch, json_out, show_next=False)


@analyst_app.command("approve")
def analyst_approve(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    parecer: str = typer.Option(..., "--parecer", help="Parecer de acesso: caminho do PDF (até 3 MB) ou sha256 de um já enviado."),
    requires_works: bool = typer.Option(False, "--requires-works", help="A conexão exige obras."),
    notes: Optional[str] = typer.Option(None, "--notes", help="Observações."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Aprova a solicitação em análise e emite o parecer de acesso."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.approve(wf, actor, gd.documents.resolve(parecer, "parecer"), requires_works, notes)

    _update_command("approve", request, as_id, role, "analyst", json_out, call)


def _reasons_update(action: str, method: str, help_text: str) -> Callable[..., None]:
    def command(
        request: str = typer.Argument(..., help="request_id ou id do processo."),
        reasons: list[str] = typer.Option(..., "--reason", "-r", help=REASON_HELP),
        as_id: Optional[str] = _as_opt(),
        role: Optional[str] = _role_opt("analyst"),
        json_out: bool = _json_opt(),
    ) -> None:
        async def call(gd: Any, wf: str, actor: Any) -> Any:
            return await getattr(gd, method)(wf, actor, list(reasons))

        _update_command(action, request, as_id, role, "analyst", json_out, call)

    command.__doc__ = help_text
    return command


analyst_app.command("suspend")(
    _reasons_update("suspend", "suspend", "Suspende a análise listando as pendências (códigos do catálogo).")
)
analyst_app.command("reprove")(
    _reasons_update("reprove", "reprove", "Reprova a solicitação listando os motivos (códigos do catálogo).")
)


@analyst_app.command("answer")
def analyst_answer(
    request: str = typer.Argument(..., help="request_id ou id da consulta."),
    answer: str = typer.Option(..., "--answer", help="Texto da resposta à consulta."),
    docs: Optional[list[str]] = _docs_opt(),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Responde uma consulta de acesso (enviada por e-mail ao cliente)."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.answer_inquiry(wf, actor, answer, _resolve_docs(gd.documents, docs))

    _update_command("answer_inquiry", request, as_id, role, "analyst", json_out, call)


@analyst_app.command("declare-works")
def analyst_declare_works(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    reason: str = typer.Option(..., "--reason", help="Por que a conexão exige obras."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Declara obras: o prazo do parecer é recalculado a partir do mesmo início."""
    _update_command("declare_works", request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.declare_works(wf, actor, reason))  # fmt: skip


@analyst_app.command("pause-clock")
def analyst_pause_clock(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    reason: str = typer.Option(..., "--reason", help="Causa (ex.: aguardando ONS)."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Suspende a contagem do prazo da distribuidora (REN art. 64), avisando o solicitante."""
    _update_command("pause_clock", request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.pause_clock(wf, actor, reason))  # fmt: skip


@analyst_app.command("resume-clock")
def analyst_resume_clock(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Retoma a contagem do prazo: o vencimento anda o tempo em que ficou suspenso."""
    _update_command("resume_clock", request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.resume_clock(wf, actor))  # fmt: skip


# --- gd reanalysis, gd inspection -------------------------------------------------------------


@reanalysis_app.command("request")
def reanalysis_request(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    reproved_ns: str = typer.Option(..., "--reproved-ns", help="Número da NS reprovada."),
    docs: Optional[list[str]] = _docs_opt(),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("technician"),
    json_out: bool = _json_opt(),
) -> None:
    """Solicita a reanálise (motivo "Reanálise do projeto/processo elétrico"): nova NS e novo ciclo."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.request_reanalysis(wf, actor, reproved_ns, _resolve_docs(gd.documents, docs))

    _update_command("request_reanalysis", request, as_id, role, "technician", json_out, call)


@inspection_app.command("request")
def inspection_request(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    docs: Optional[list[str]] = _docs_opt(),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("customer"),
    json_out: bool = _json_opt(),
) -> None:
    """Cliente: pede a vistoria depois do parecer (ou de uma vistoria reprovada)."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.request_inspection(wf, actor, _resolve_docs(gd.documents, docs))

    _update_command("request_inspection", request, as_id, role, "customer", json_out, call)


@inspection_app.command("record")
def inspection_record(
    request: str = typer.Argument(..., help="request_id ou id do processo."),
    result: str = typer.Option(..., "--result", help="approved ou reproved."),
    findings: Optional[list[str]] = typer.Option(None, "--finding", help="Constatação (repetível; obrigatória se reprovada)."),
    report: Optional[str] = typer.Option(None, "--report", help="Relatório: caminho do arquivo ou sha256."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("inspector"),
    json_out: bool = _json_opt(),
) -> None:
    """Vistoriador: registra o resultado; aprovada conecta a usina."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        ref = gd.documents.resolve(report, "inspection_report") if report else None
        return await gd.record_inspection(wf, actor, result, list(findings or []), ref)

    _update_command("record_inspection", request, as_id, role, "inspector", json_out, call)


# --- gd technician -------------------------------------------------------------------------------


@technician_app.command("register")
def technician_register(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="JSON com a entrada completa; as opções sobrepõem."),
    name: Optional[str] = typer.Option(None, "--name", help="Nome do RT."),
    cpf: Optional[str] = typer.Option(None, "--cpf", help="CPF do RT."),
    email: Optional[str] = typer.Option(None, "--email", help="E-mail (todas as respostas vão para ele)."),
    phone: Optional[str] = typer.Option(None, "--phone", help="Telefone."),
    council: Optional[str] = typer.Option(None, "--council", help="CREA ou CAU."),
    uf: Optional[str] = typer.Option(None, "--uf", help="UF do registro (ex.: MG)."),
    registration: Optional[str] = typer.Option(None, "--registration", help="Número do registro no conselho."),
    title: Optional[str] = typer.Option(None, "--title", help="Título profissional."),
    json_out: bool = _json_opt(),
) -> None:
    """Cadastra um responsável técnico: análise em até 3 dias úteis."""

    async def body(gd: Any) -> None:
        from gd_client import GdRefused

        raw: dict[str, Any] = {}
        if file is not None:
            loaded = _load_json(file)
            if not isinstance(loaded, dict):
                raise GdRefused(f"{file.name}: o arquivo deve conter um objeto JSON")
            raw = loaded
        for key, value in (("name", name), ("cpf", cpf), ("email", email), ("phone", phone),
                           ("council", council.upper() if council else None), ("uf", uf),
                           ("registration", registration), ("title", title)):  # fmt: skip
            if value is not None:
                raw[key] = value
        st = await gd.start_technician(raw)
        workflow_id = f"gd-technician-{st.technician}"
        if json_out:
            _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
        else:
            from cli_format import technician_panel

            _console().print(technician_panel(st, workflow_id))
        if st.status == "REFUSED":
            reasons = "; ".join(str(p) for p in st.refusal_reasons)
            _stderr_line(f"cadastro do RT {st.technician} recusado: {reasons}")
            raise typer.Exit(2)

    _execute(body, json_out)


def _technician_id(key: str) -> str:
    from gd_client import technician_workflow_id

    return technician_workflow_id(key)


def _beneficiaries_id(request: str) -> str:
    from gd_client import beneficiaries_workflow_id

    return beneficiaries_workflow_id(request)


@technician_app.command("approve")
def technician_approve(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345) ou id do processo."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Aprova o cadastro do RT: ele recebe os três e-mails de acesso (AGV e APR)."""
    _update_command("approve", technician, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.approve_technician(wf, actor), _technician_id)  # fmt: skip


@technician_app.command("reject")
def technician_reject(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO ou id do processo."),
    reasons: list[str] = typer.Option(..., "--reason", "-r", help=REASON_HELP),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Recusa o cadastro do RT com motivos do catálogo (ex.: RT-REGISTRO-IRREGULAR)."""
    _update_command("reject", technician, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.reject_technician(wf, actor, list(reasons)),
                   _technician_id)  # fmt: skip


@technician_app.command("status")
def technician_status(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO ou id do processo."),
    json_out: bool = _json_opt(),
) -> None:
    """Situação do cadastro do RT, prazo da análise e decisões."""

    async def body(gd: Any) -> None:
        workflow_id = _technician_id(technician)
        st = await gd.status(workflow_id)
        if json_out:
            _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
            return
        from cli_format import technician_panel

        _console().print(technician_panel(st, workflow_id))

    _execute(body, json_out)


# --- gd beneficiaries ---------------------------------------------------------------------------


def _units_from_flags(units: list[str], mode: str) -> list[dict[str, Any]]:
    from gd_client import GdRefused

    parsed: list[dict[str, Any]] = []
    for spec in units:
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) != 3 or not all(parts):
            raise GdRefused(
                f"--unit {spec!r}: use INSTALAÇÃO:CPF_OU_CNPJ:{'PERCENTUAL' if mode == 'percent' else 'PRIORIDADE'}"
            )
        unit: dict[str, Any] = {"installation_number": parts[0], "holder_document": parts[1]}
        unit["percent" if mode == "percent" else "priority"] = parts[2].replace(",", ".")
        parsed.append(unit)
    return parsed


@beneficiaries_app.command("register")
def beneficiaries_register(
    request: Optional[str] = typer.Option(None, "--request-id", help="request_id da solicitação conectada (UC geradora)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="JSON com a entrada completa (CONTRACT.md)."),
    generator: Optional[str] = typer.Option(None, "--generator-installation", help="Instalação da UC geradora (padrão: a da solicitação)."),
    holder: Optional[str] = typer.Option(None, "--holder-document", help="CPF/CNPJ do titular da UC geradora."),
    modality: Optional[str] = typer.Option(None, "--modality", help="local, remote, shared ou multi_unit."),
    mode: str = typer.Option("percent", "--mode", help="percent ou priority."),
    units: Optional[list[str]] = typer.Option(None, "--unit", help="INSTALAÇÃO:CPF_OU_CNPJ:PERCENTUAL (ou :PRIORIDADE); repetível."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("customer"),
    json_out: bool = _json_opt(),
) -> None:
    """Cadastra as UCs recebedoras dos créditos (percentuais somando 100 ou prioridades 1..n)."""

    async def body(gd: Any) -> None:
        from gd_client import GdRefused

        raw: dict[str, Any] = {}
        if file is not None:
            loaded = _load_json(file)
            if not isinstance(loaded, dict):
                raise GdRefused(f"{file.name}: o arquivo deve conter um objeto JSON")
            raw = loaded
        if request:
            raw["request_id"] = request.removeprefix("gd-request-")
        if not raw.get("request_id"):
            raise GdRefused("informe a solicitação conectada: --request-id")
        if generator:
            raw["generator_installation"] = generator
        if "generator_installation" not in raw:
            row = gd.documents.store.request_by_request_id(raw["request_id"], kind="request")
            if row is not None and row.installation_number:
                raw["generator_installation"] = row.installation_number
        if holder:
            raw["holder_document"] = holder
        if modality:
            raw["modality"] = modality
        if units:
            raw["allocation"] = {"mode": mode, "units": _units_from_flags(units, mode)}
        if "actor" not in raw or as_id or role or os.environ.get(ACTOR_ENV):
            raw["actor"] = resolve_actor(as_id, role, "customer").model_dump()
        st = await gd.start_beneficiaries(raw)
        workflow_id = _beneficiaries_id(st.request_id)
        if json_out:
            _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
        else:
            from cli_format import beneficiaries_panel

            _console().print(beneficiaries_panel(st, workflow_id))
        if st.status == "REFUSED":
            reasons = "; ".join(str(p) for p in st.refusal_reasons)
            _stderr_line(f"cadastramento de UCs recebedoras de {st.request_id} recusado: {reasons}")
            raise typer.Exit(2)

    _execute(body, json_out)


@beneficiaries_app.command("confirm")
def beneficiaries_confirm(
    request: str = typer.Argument(..., help="request_id da solicitação (ou gd-beneficiaries-…)."),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Confirma o rateio: vale a partir do próximo ciclo de faturamento."""
    _update_command("confirm", request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.confirm_beneficiaries(wf, actor), _beneficiaries_id)  # fmt: skip


@beneficiaries_app.command("reject")
def beneficiaries_reject(
    request: str = typer.Argument(..., help="request_id da solicitação (ou gd-beneficiaries-…)."),
    reasons: list[str] = typer.Option(..., "--reason", "-r", help=REASON_HELP),
    as_id: Optional[str] = _as_opt(),
    role: Optional[str] = _role_opt("analyst"),
    json_out: bool = _json_opt(),
) -> None:
    """Recusa o cadastramento com motivos do catálogo (ex.: RATEIO-SOMA-DIFERENTE-100)."""
    _update_command("reject", request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.reject_beneficiaries(wf, actor, list(reasons)),
                   _beneficiaries_id)  # fmt: skip


@beneficiaries_app.command("status")
def beneficiaries_status(
    request: str = typer.Argument(..., help="request_id da solicitação (ou gd-beneficiaries-…)."),
    json_out: bool = _json_opt(),
) -> None:
    """Situação do cadastramento das UCs recebedoras e o rateio."""

    async def body(gd: Any) -> None:
        workflow_id = _beneficiaries_id(request)
        st = await gd.status(workflow_id)
        if json_out:
            _emit_json({"workflow_id": workflow_id, **st.model_dump(mode="json")})
            return
        from cli_format import beneficiaries_panel

        _console().print(beneficiaries_panel(st, workflow_id))

    _execute(body, json_out)


# --- gd demo -------------------------------------------------------------------------------------


@app.command("demo")
def demo(
    json_out: bool = _json_opt(),
) -> None:
    """Demonstração de ponta a ponta no ambiente de `make run`, passo a passo.

    RT cadastrado e aprovado; micro com suspensão, correções e reanálise; a janela de 24 h
    do APR Web; mini com obras, vistoria, conexão e UCs recebedoras; uma consulta respondida.
    """

    async def body(gd: Any) -> None:
        summary = await run_demo(gd, None if json_out else _console())
        if json_out:
            _emit_json(summary)

    _execute(body, json_out)


# --- the demo scenario -----------------------------------------------------------------------

DEMO_STEPS = 20
# Well-known test numbers (valid check digits, nobody's real documents).
DEMO_CUSTOMER_CPF = "529.982.247-25"
DEMO_RT_CPF = "111.444.777-35"
DEMO_COMPANY_CNPJ = "11.222.333/0001-81"
DEMO_BRANCHES = ("11.222.333/0002-62", "11.222.333/0003-43")  # same CNPJ root: remote OK
DEMO_ACTORS = {
    "analyst": {"id": "ana.analista", "role": "analyst"},
    "technician": {"id": "rt.joao", "role": "technician"},
    "customer": {"id": "cliente.maria", "role": "customer"},
    "inspector": {"id": "vistoriador.carlos", "role": "inspector"},
}
DEMO_DOCUMENTS = (
    ("commercial_id", "documento-identificacao.pdf", "Documento de identificacao do cliente"),
    ("electrical_project", "projeto-eletrico.pdf", "Projeto eletrico"),
    ("art_rrt", "art.pdf", "ART do responsavel tecnico"),
    ("single_line_diagram", "diagrama-unifilar.pdf", "Diagrama unifilar"),
    ("descriptive_memorial", "memorial-descritivo.pdf", "Memorial descritivo"),
    ("inverter_datasheet", "datasheet-inversor.pdf", "Datasheet do inversor"),
    ("module_datasheet", "datasheet-modulos.pdf", "Datasheet dos modulos"),
    ("correction", "art-corrigida.pdf", "ART corrigida (com comprovante de recolhimento)"),
    ("parecer", "parecer-de-acesso.pdf", "Parecer de acesso"),
    ("inspection_report", "relatorio-vistoria.pdf", "Relatorio de vistoria"),
)


def minimal_pdf(title: str, lines: tuple[str, ...] = ()) -> bytes:
    """A small, valid one-page PDF (Helvetica text), built by hand: no dependency."""

    def text(value: str) -> bytes:
        safe = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return safe.encode("latin-1", "replace")

    ops = [b"BT /F1 16 Tf 72 770 Td (" + text(title) + b") Tj ET"]
    for i, line in enumerate(lines):
        ops.append(b"BT /F1 11 Tf 72 %d Td (" % (740 - 18 * i) + text(line) + b") Tj ET")
    content = b"\n".join(ops)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


class DemoRun:
    """Runs numbered steps, printing one line each (and a progress bar on a terminal)."""

    def __init__(self, gd: Any, console: Any | None, total: int = DEMO_STEPS):
        self.gd = gd
        self.console = console
        self.total = total
        self.done = 0
        self.steps: list[dict[str, Any]] = []
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> "DemoRun":
        if self.console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("preparando…", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str, style: str = "") -> None:
        if self.console is not None:
            out = self.progress.console if self.progress is not None else self.console
            out.print(text, style=style, soft_wrap=True, highlight=False)

    def section(self, title: str) -> None:
        self.say(f"\n[bold]{title}[/]")

    async def step(self, label_text: str, action: Callable[[], Awaitable[Any]], workflow_id: str | None = None) -> Any:
        import time

        if self.progress is not None:
            self.progress.update(self.task, description=label_text)
        started = time.monotonic()
        result = await action()
        if workflow_id is not None and hasattr(result, "status"):
            result = await self.gd.settle(workflow_id)  # e-mails and store written
        elapsed_ms = (time.monotonic() - started) * 1000
        self.done += 1
        detail = _demo_detail(result)
        self.steps.append(
            {"step": self.done, "label": label_text, "workflow_id": workflow_id,
             "status": getattr(result, "status", None), "ms": round(elapsed_ms)}
        )  # fmt: skip
        self.say(
            f"[green]✓[/] [dim][{self.done:>2}/{self.total}][/] {label_text}"
            + (f" [cyan]→ {detail}[/]" if detail else "")
            + f" [dim]({elapsed_ms:.0f} ms)[/]"
        )
        if self.progress is not None:
            self.progress.advance(self.task)
        return result


def _demo_detail(result: Any) -> str:
    from cli_format import deadline_text

    status = getattr(result, "status", None)
    if status is None:
        return ""
    parts = [status]
    if getattr(result, "service_note", None):
        parts.append(f"NS {result.service_note}")
    if getattr(result, "protocol", None) and status == "AWAITING_APR":
        parts.append(f"Protocolo {result.protocol}")
    if getattr(result, "due_at", None):
        parts.append(f"prazo {deadline_text(result.due_at, getattr(result, 'clock_paused', False))}")
    if getattr(result, "effective_from", None):
        parts.append(f"vale a partir de {result.effective_from:%d/%m/%Y}")
    return " · ".join(parts)


async def _wait_for_worker(gd: Any, timeout: float = 20.0) -> None:
    from gd_client import GdUnavailable

    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not await gd.worker_ready():
        if loop.time() > give_up:
            raise GdUnavailable(
                f"nenhum worker na fila {gd.settings.task_queue} em {gd.settings.temporal_address} "
                "(rode `make run`, que sobe servidor e worker, ou `gd worker`)"
            )
        await asyncio.sleep(0.5)


async def _wait_rt_in_store(gd: Any, key: str, timeout: float = 30.0) -> None:
    """A request is accepted only once the store has the RT approved (a queued effect of
    the approval, normally written within a few milliseconds)."""
    from gd_client import GdUnavailable

    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while gd.documents.store.technician_status(key) != "APPROVED":
        if loop.time() > give_up:
            raise GdUnavailable(f"a aprovação do RT {key} não chegou ao banco em {timeout:.0f} s; veja o log do worker")
        await asyncio.sleep(0.1)


async def _wait_child(gd: Any, request_id: str, timeout: float = 20.0) -> Any:
    """The BeneficiaryRegistration the connection started, once its intake answered."""
    from gd_client import GdNotFound, GdUnavailable, intake_done

    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        try:
            st = await gd.beneficiaries_status(request_id)
            if intake_done(st):
                return st
        except GdNotFound:
            pass
        if loop.time() > give_up:
            raise GdUnavailable(f"o cadastramento das UCs recebedoras de {request_id} não começou em {timeout:.0f} s")
        await asyncio.sleep(0.1)


def _demo_request(request_id: str, kind: str, refs: dict[str, Any], technician: dict[str, str] | None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "request_id": request_id,
        "kind": kind,
        "customer": {
            "name": "Maria das Graças Souza",
            "document": DEMO_CUSTOMER_CPF,
            "email": "maria.souza@example.com.br",
            "phone": "(31) 99876-5432",
        },
        "installation_number": "3001234567" if kind == "request" else None,
        "technician": technician,
        "generation": {"source": "solar", "installed_power_kw": 8.5, "modality": "local"},
        "documents": [refs["commercial_id"]] if kind == "request" else [],
    }
    raw.update(extra)
    return raw


async def run_demo(gd: Any, console: Any | None) -> dict[str, Any]:
    """The newcomer's tour, against the running stack. Returns a summary (for --json)."""
    import secrets
    from datetime import datetime

    from domain.calendar import TZ

    await _wait_for_worker(gd)
    tag = f"{datetime.now(TZ):%H%M%S}-{secrets.token_hex(2)}"
    digits = f"{secrets.randbelow(10**8):08d}"
    typed_registration = f"{digits[:2]}.{digits[2:5]}.{digits[5:]}-d"  # normalised: digits + "D"
    a = DEMO_ACTORS
    ids = {
        "micro": f"demo-{tag}-micro",
        "lapse": f"demo-{tag}-apr-24h",
        "mini": f"demo-{tag}-mini",
        "inquiry": f"demo-{tag}-consulta",
    }
    wf = {key: f"gd-request-{value}" for key, value in ids.items()}
    with DemoRun(gd, console) as run:
        run.say(
            f"[bold]Demonstração GD[/] — Temporal em {gd.settings.temporal_address}, fila "
            f"{gd.settings.task_queue}, rodada [cyan]{tag}[/]"
        )

        run.section("1. Cadastro do responsável técnico (RT)")
        rt = await run.step(
            f"RT João Pereira cadastra-se no CREA-MG, registro digitado \"{typed_registration}\"",
            lambda: gd.start_technician({
                "name": "João Pereira", "cpf": DEMO_RT_CPF, "email": "joao.pereira.rt@example.com.br",
                "phone": "(31) 98888-1234", "council": "CREA", "uf": "MG",
                "registration": typed_registration, "title": "Engenheiro Eletricista",
            }),
        )  # fmt: skip
        technician_key = rt.technician
        run.say(f"   [dim]id do processo: gd-technician-{technician_key} (registro normalizado)[/]")
        await run.step(
            "analista aprova o cadastro: o RT recebe os 3 e-mails (AGV, APR e senha do APR)",
            lambda: gd.approve_technician(technician_key, a["analyst"]),
            f"gd-technician-{technician_key}",
        )
        technician = {"council": "CREA", "uf": "MG", "registration": technician_key.split("-", 2)[2]}
        await _wait_rt_in_store(gd, technician_key)

        refs: dict[str, Any] = {}

        async def upload_all() -> None:
            for kind, filename, title in DEMO_DOCUMENTS:
                pdf = minimal_pdf(title, (f"Demonstracao GD {tag}", f"Tipo: {kind}"))
                refs[kind] = gd.upload(pdf, kind, filename=filename)

        await run.step(f"RT envia {len(DEMO_DOCUMENTS)} documentos (PDFs gerados) ao repositório", upload_all)
        apr_docs = [refs[k] for k in ("electrical_project", "art_rrt", "single_line_diagram",
                                      "descriptive_memorial", "inverter_datasheet", "module_datasheet")]  # fmt: skip

        run.section("2. Microgeração: suspensão, correções e reanálise até o parecer")
        micro = await run.step(
            "cliente abre a solicitação (8,5 kW solar, autoconsumo local) na AGV",
            lambda: gd.start_request(_demo_request(ids["micro"], "request", refs, technician)),
            wf["micro"],
        )
        await run.step(
            "RT registra NS e Protocolo no APR Web com os documentos técnicos",
            lambda: gd.register_apr(ids["micro"], a["technician"], micro.service_note, micro.protocol, apr_docs),
            wf["micro"],
        )
        await run.step(
            "analista suspende: DOC-ART-AUSENTE (ART sem comprovante)",
            lambda: gd.suspend(ids["micro"], a["analyst"], ["DOC-ART-AUSENTE:ART enviada sem comprovante de recolhimento"]),
            wf["micro"],
        )
        await run.step(
            "RT anexa a ART corrigida no APR Web",
            lambda: gd.attach_corrections(ids["micro"], a["technician"], [refs["correction"]]),
            wf["micro"],
        )
        await run.step(
            f"RT solicita a reanálise informando a NS reprovada {micro.service_note}",
            lambda: gd.request_reanalysis(ids["micro"], a["technician"], micro.service_note),
            wf["micro"],
        )
        await run.step(
            "analista aprova e emite o parecer de acesso (PDF)",
            lambda: gd.approve(ids["micro"], a["analyst"], refs["parecer"], notes="Sem obras."),
            wf["micro"],
        )

        run.section("3. A janela de 24 h do APR Web (decurso de prazo)")
        lapse = await run.step(
            "cliente abre outra solicitação; o RT ainda não registrou no APR Web",
            lambda: gd.start_request(_demo_request(ids["lapse"], "request", refs, technician)),
            wf["lapse"],
        )
        from cli_format import fmt_dt

        run.say(
            f"   [yellow]A janela de 24 h é real e não é simulada: se o RT não registrar NS "
            f"{lapse.service_note} no APR Web até {fmt_dt(lapse.due_at)}, a NS é reprovada por "
            f"decurso de prazo (LAPSED) e cabe reanálise. Acompanhe com "
            f"`gd request status {ids['lapse']}`.[/]"
        )

        run.section("4. Minigeração: obras, vistoria, conexão e UCs recebedoras")
        allocation = {
            "mode": "percent",
            "units": [
                {"installation_number": "3009876501", "holder_document": DEMO_BRANCHES[0], "percent": 60},
                {"installation_number": "3009876502", "holder_document": DEMO_BRANCHES[1], "percent": 40},
            ],
        }
        mini_input = _demo_request(
            ids["mini"], "request", refs, technician,
            customer={"name": "Laticínios Serra Azul Ltda", "document": DEMO_COMPANY_CNPJ,
                      "email": "energia@laticinios-serra-azul.example.com.br", "phone": "(31) 3333-4444"},
            installation_number="3009876500",
            generation={"source": "solar", "installed_power_kw": 300, "voltage_kv": 13.8, "modality": "remote"},
            beneficiaries=allocation,
        )  # fmt: skip
        mini = await run.step(
            "empresa abre a solicitação (300 kW solar em 13,8 kV, autoconsumo remoto, 2 UCs recebedoras)",
            lambda: gd.start_request(mini_input),
            wf["mini"],
        )
        await run.step(
            "RT registra NS e Protocolo no APR Web",
            lambda: gd.register_apr(ids["mini"], a["technician"], mini.service_note, mini.protocol, apr_docs),
            wf["mini"],
        )
        await run.step(
            "analista declara obras de reforço: o prazo do parecer é recalculado (30 → 45 dias)",
            lambda: gd.declare_works(ids["mini"], a["analyst"], "reforço do alimentador para 300 kW"),
            wf["mini"],
        )
        await run.step(
            "analista aprova com obras e emite o parecer",
            lambda: gd.approve(ids["mini"], a["analyst"], refs["parecer"], requires_works=True),
            wf["mini"],
        )
        await run.step(
            "cliente solicita a vistoria",
            lambda: gd.request_inspection(ids["mini"], {"id": "laticinios.serra.azul", "role": "customer"}),
            wf["mini"],
        )
        await run.step(
            "vistoriador aprova a vistoria: usina conectada",
            lambda: gd.record_inspection(ids["mini"], a["inspector"], "approved", report=refs["inspection_report"]),
            wf["mini"],
        )
        await run.step(
            "cadastramento das UCs recebedoras começa sozinho (processo filho)",
            lambda: _wait_child(gd, ids["mini"]),
        )
        await run.step(
            "analista confirma o rateio 60 % / 40 %",
            lambda: gd.confirm_beneficiaries(ids["mini"], a["analyst"]),
            f"gd-beneficiaries-{ids['mini']}",
        )

        run.section("5. Consulta de acesso")
        await run.step(
            "cliente faz uma consulta de acesso (5 kW solar)",
            lambda: gd.start_request(_demo_request(
                ids["inquiry"], "inquiry", refs, None,
                generation={"source": "solar", "installed_power_kw": 5, "modality": "local"},
            )),
            wf["inquiry"],
        )  # fmt: skip
        await run.step(
            "analista responde a consulta por e-mail",
            lambda: gd.answer_inquiry(
                ids["inquiry"], a["analyst"],
                "Há capacidade no alimentador para 5 kW em baixa tensão; siga com a solicitação de acesso.",
            ),
            wf["inquiry"],
        )  # fmt: skip

        finals = {}
        for name, workflow_id in [*wf.items(), ("technician", f"gd-technician-{technician_key}"),
                                  ("beneficiaries", f"gd-beneficiaries-{ids['mini']}")]:  # fmt: skip
            finals[workflow_id] = (await gd.status(workflow_id)).status
    summary = {
        "tag": tag,
        "technician": technician_key,
        "request_ids": ids,
        "workflows": finals,
        "steps": run.steps,
    }
    if console is not None:
        _demo_epilogue(console, gd, ids, finals)
    return summary


def _demo_epilogue(console: Any, gd: Any, ids: dict[str, str], finals: dict[str, str]) -> None:
    from rich import box
    from rich.table import Table

    from cli_format import status_label
    from gd_client import workflow_type_of

    table = Table(title="Resultado", box=box.SIMPLE, title_justify="left")
    table.add_column("processo", no_wrap=True)
    table.add_column("situação", no_wrap=True)
    table.add_column("")
    kinds = {"TechnicianRegistration": "technician", "BeneficiaryRegistration": "beneficiaries"}
    for workflow_id, status in finals.items():
        kind = kinds.get(workflow_type_of(workflow_id), "request")
        table.add_row(workflow_id, status, status_label(status, kind))
    console.print(table)
    host = gd.settings.temporal_address.rpartition(":")[0] or "localhost"
    host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    ui = f"http://{host}:{os.environ.get('GD_UI_PORT', '8233')}"
    console.print("[bold]Continue daqui:[/]")
    for command, what in (
        (f"gd request status {ids['micro']}", "o painel completo: decisões, documentos, histórico de NS"),
        ("gd analyst queue", "o que espera o analista, pelo prazo"),
        ("gd request list --status AWAITING_APR", "quem ainda precisa registrar no APR Web"),
        (f"gd request status {ids['lapse']}", "daqui a 24 h: LAPSED (decurso de prazo)"),
    ):
        console.print(f"  [cyan]{command}[/]  [dim]# {what}[/]", soft_wrap=True)
    console.print(f"  Web UI do Temporal: {ui}  ·  e-mails enviados: {gd.settings.mail_dir}/*.eml", soft_wrap=True)


def main() -> None:
    """The `gd` script. It ends with ``os._exit``: the Temporal SDK's native threads may
    still hold the GIL machinery when the interpreter finalizes, which intermittently
    aborts the process ("PyGILState_Release", exit 134) instead of our exit code."""
    import logging
    import traceback

    code = 0
    try:
        app()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            _stderr_line(str(done.code))
            code = 1
    except KeyboardInterrupt:
        _stderr_line("interrompido")
        code = 130
    except BaseException:  # noqa: BLE001 - never lose the reason of a crash
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(code)


if __name__ == "__main__":
    main()
