"""The access process by who acts: `gd docs`, `gd request`, `gd inquiry` (customer or
integrator), `gd apr` (RT in APR Web), `gd analyst`, `gd reanalysis` and `gd inspection`.

Each command is thin: it reads its flags, `gd_client.GdClient` does the work, and
`cli.formatting` shows the result.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, get_type_hints

import typer
from rich.panel import Panel
from rich.text import Text

from cli.common import (
    DOC_HELP,
    REQUEST_HELP,
    as_opt,
    console,
    docs_opt,
    emit_json,
    execute,
    group,
    json_opt,
    list_and_show,
    load_json,
    load_json_object,
    reasons_opt,
    resolve_docs,
    role_opt,
    show_snapshot,
    stderr_line,
    update_command,
)
from cli.formatting import access_panel, facts, status_panel
from docstore import Documents
from domain.calendar import TZ
from gd_client import GdRefused, any_workflow_id, parse_technician_key
from models.ids import access_request_id
from models.names import Updates

docs_app = group("Documentos: envio ao repositório de arquivos (gera o DocumentRef).")
request_app = group("Solicitações de acesso: abrir, consultar a situação, listar e desistir.")
inquiry_app = group("Consultas de acesso (informação prévia) do cliente ou integrador.")
apr_app = group("APR Web (responsável técnico): registro da NS e do Protocolo, anexar documentos corrigidos.")
analyst_app = group(
    "Analista: fila de trabalho, aprovar, suspender, reprovar, responder consultas, "
    "declarar obras, pausar e retomar o prazo."
)
reanalysis_app = group("Reanálise após suspensão, reprovação ou reprovação por decurso de prazo.")
inspection_app = group("Vistoria: pedido (cliente) e registro do resultado (vistoriador).")

# --- gd docs ----------------------------------------------------------------------------


@docs_app.command("upload")
def docs_upload(
    file: Path = typer.Argument(..., help="Arquivo PDF, PNG, JPEG, DWG ou DXF (até 3 MB)."),
    kind: str = typer.Option(..., "--kind", "-k", help="Tipo do documento (ex.: art_rrt)."),
    json_out: bool = json_opt(),
) -> None:
    """Envia um arquivo ao repositório (uma vez, pelo sha256) e mostra o DocumentRef."""

    def body(settings: Any) -> None:
        ref = Documents(settings).upload(file, kind)
        if json_out:
            emit_json(ref)
            return
        console().print(
            Panel(
                facts([("tipo", ref.kind), ("arquivo", ref.filename), ("sha256", ref.sha256),
                        ("tamanho", f"{ref.size} bytes"), ("conteúdo", ref.content_type)]),  # fmt: skip
                title=Text("✓ documento armazenado", style="bold"),
                expand=False,
            )
        )

    execute(body, json_out, temporal=False)


# --- gd request / gd inquiry new -----------------------------------------------------------


def _new_request_id(kind: str) -> str:
    prefix = "consulta" if kind == "inquiry" else "req"
    return f"{prefix}-{datetime.now(TZ):%Y%m%d}-{secrets.token_hex(3)}"


def _documents_from_file(gd_documents: Any, items: Any, base: Path) -> list[Any]:
    """`documents` of an input file: DocumentRefs, {"kind", "path"} or "kind=path" strings."""
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
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if file is not None:
        raw = load_json_object(file)
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
        raw["beneficiaries"] = load_json(beneficiaries)

    documents = _documents_from_file(gd_documents, raw.get("documents"), base)
    documents += resolve_docs(gd_documents, docs)
    raw["documents"] = documents
    return raw


def _show_started(st: Any, workflow_id: str, json_out: bool) -> None:
    """After `request new` / `inquiry new`: id, NS, Protocolo, due date — or the refusal."""
    if json_out:
        show_snapshot(workflow_id, st)
    else:
        console().print(access_panel(st, workflow_id))
    if st.status == "REFUSED":
        what = "consulta" if st.kind == "inquiry" else "solicitação"
        reasons = "; ".join(str(p) for p in st.refusal_reasons)
        error = GdRefused(f"{what} {st.request_id} recusada na triagem: {reasons}", st.refusal_reasons)
        stderr_line(error.message)
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
        raw = build_access_input(kind, gd.documents, **flags)
        try:
            st = await gd.start_request(raw)
        except GdRefused as error:
            raise _with_flag_hint(error) from None
        workflow_id = access_request_id(st.request_id or raw["request_id"])
        if st.status != "REFUSED":
            st = await gd.settle(workflow_id)  # the e-mail with NS and Protocolo went out
        _show_started(st, workflow_id, json_out)

    execute(body, json_out)


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
    docs: Optional[list[str]] = docs_opt(),
    json_out: bool = json_opt(),
) -> None:
    """Abre uma solicitação de acesso (AGV): mostra o id do processo, NS, Protocolo e o prazo de 24 h do APR Web."""
    _new_access(
        "request", json_out, file=file, request_id=request_id, name=name, document=document,
        email=email, phone=phone, customer_number=customer_number, installation=installation,
        technician=technician, source=source, power_kw=power_kw, storage_kwh=storage_kwh,
        voltage_kv=voltage_kv, modality=modality, policy=policy, integrator_name=integrator_name,
        integrator_document=integrator_document, beneficiaries=beneficiaries, docs=docs,
    )  # fmt: skip


# The inquiry takes the request's options but those of a plant being connected (the
# installation, the RT and the UCs recebedoras): one declaration serves both commands.
_REQUEST_ONLY = ("installation", "technician", "beneficiaries")


def inquiry_new(json_out: bool = False, **flags: Any) -> None:
    """Faz uma consulta de acesso: resposta da distribuidora em até 30 dias."""
    _new_access("inquiry", json_out, **dict.fromkeys(_REQUEST_ONLY), **flags)


def _options_of(command: Callable[..., Any], without: tuple[str, ...]) -> inspect.Signature:
    """``command``'s typer options less ``without``, with resolved annotations (typer
    reads the signature; the module's annotations are strings)."""
    hints = get_type_hints(command)
    return inspect.Signature([
        p.replace(annotation=hints[name])
        for name, p in inspect.signature(command).parameters.items() if name not in without
    ])


inquiry_new.__signature__ = _options_of(request_new, _REQUEST_ONLY)  # type: ignore[attr-defined]
inquiry_app.command("new")(inquiry_new)


@request_app.command("status")
def request_status(
    request: str = typer.Argument(..., help="request_id ou id do processo (gd-request-…)."),
    json_out: bool = json_opt(),
) -> None:
    """Situação, quem age, prazo e tempo restante, SLA, decisões, documentos e NS."""

    async def body(gd: Any) -> None:
        workflow_id = any_workflow_id(request)
        st = await gd.status(workflow_id)
        if json_out:
            show_snapshot(workflow_id, st)
            return
        console().print(status_panel(st, workflow_id))

    execute(body, json_out)


@request_app.command("list")
def request_list(
    status: Optional[list[str]] = typer.Option(None, "--status", "-s", help="Situação (repetível), ex.: UNDER_ANALYSIS."),
    overdue: bool = typer.Option(False, "--overdue", help="Só os com prazo vencido (ainda abertos)."),
    due_within: Optional[int] = typer.Option(None, "--due-within", help="Só os que vencem até o fim do N-ésimo dia a partir de hoje."),
    technician: Optional[str] = typer.Option(None, "--technician", help="RT: CONSELHO-UF-REGISTRO."),
    generation_class: Optional[str] = typer.Option(None, "--class", help="micro ou mini."),
    kind: Optional[str] = typer.Option(None, "--kind", help="request ou inquiry (padrão: ambos)."),
    limit: int = typer.Option(200, "--limit", help="No máximo N processos."),
    json_out: bool = json_opt(),
) -> None:
    """Lista solicitações e consultas pelos atributos de busca, ordenadas pelo prazo."""

    async def fetch(gd: Any, on_row: Callable[[int], None]) -> list:
        return await gd.list_requests(
            status=status, overdue=overdue, due_within_days=due_within, technician=technician,
            generation_class=generation_class, kind=kind, limit=limit, on_row=on_row,
        )  # fmt: skip

    list_and_show("Solicitações", fetch, json_out)


@request_app.command("withdraw")
def request_withdraw(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    reason: str = typer.Option(..., "--reason", help="Motivo da desistência."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("customer"),
    json_out: bool = json_opt(),
) -> None:
    """Desistência do cliente (qualquer situação antes da conexão)."""
    update_command(Updates.WITHDRAW, request, as_id, role, "customer", json_out,
                   lambda gd, wf, actor: gd.withdraw(wf, actor, reason))  # fmt: skip


# --- gd apr ----------------------------------------------------------------------------


@apr_app.command("register")
def apr_register(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    service_note: str = typer.Option(..., "--ns", help="NS (Nota de Serviço) emitida na abertura."),
    protocol: str = typer.Option(..., "--protocol", help="Protocolo emitido na abertura."),
    docs: Optional[list[str]] = docs_opt(),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("technician"),
    json_out: bool = json_opt(),
) -> None:
    """RT: registra NS e Protocolo no APR Web com os documentos técnicos (projeto, ART/RRT, unifilar, memorial)."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.register_apr(wf, actor, service_note, protocol, resolve_docs(gd.documents, docs))

    update_command(Updates.REGISTER_APR, request, as_id, role, "technician", json_out, call)


@apr_app.command("corrections")
def apr_corrections(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    docs: list[str] = typer.Option(..., "--doc", help=DOC_HELP + " Sem tipo=, o tipo é correction."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("technician"),
    json_out: bool = json_opt(),
) -> None:
    """RT: anexa no APR Web os documentos corrigidos após suspensão ou reprovação."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.attach_corrections(wf, actor, resolve_docs(gd.documents, docs, "correction"))

    update_command(Updates.ATTACH_CORRECTIONS, request, as_id, role, "technician", json_out, call)


# --- gd analyst --------------------------------------------------------------------------


@analyst_app.command("queue")
def analyst_queue(
    generation_class: Optional[str] = typer.Option(None, "--class", help="micro ou mini."),
    overdue: bool = typer.Option(False, "--overdue", help="Só os com prazo vencido."),
    due_within: Optional[int] = typer.Option(None, "--due-within", help="Só os que vencem até o fim do N-ésimo dia."),
    technician: Optional[str] = typer.Option(None, "--technician", help="RT: CONSELHO-UF-REGISTRO."),
    limit: int = typer.Option(200, "--limit", help="No máximo N processos."),
    json_out: bool = json_opt(),
) -> None:
    """Fila do analista: tudo que espera uma decisão da distribuidora, pelo prazo."""

    async def fetch(gd: Any, on_row: Callable[[int], None]) -> list:
        return await gd.analyst_queue(
            generation_class=generation_class, overdue=overdue, due_within_days=due_within,
            technician=technician, limit=limit, on_row=on_row,
        )  # fmt: skip

    list_and_show("Fila do analista", fetch, json_out, show_next=False)


@analyst_app.command("approve")
def analyst_approve(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    parecer: str = typer.Option(..., "--parecer", help="Parecer de acesso: caminho do PDF (até 3 MB) ou sha256 de um já enviado."),
    requires_works: bool = typer.Option(False, "--requires-works", help="A conexão exige obras."),
    notes: Optional[str] = typer.Option(None, "--notes", help="Observações."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Aprova a solicitação em análise e emite o parecer de acesso."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.approve(wf, actor, gd.documents.resolve(parecer, "parecer"), requires_works, notes)

    update_command(Updates.APPROVE, request, as_id, role, "analyst", json_out, call)


def _reasons_update(action: str, method: str, help_text: str) -> Callable[..., None]:
    """`gd analyst suspend|reprove`: the same flags, a different update."""

    def command(
        request: str = typer.Argument(..., help=REQUEST_HELP),
        reasons: list[str] = reasons_opt(),
        as_id: Optional[str] = as_opt(),
        role: Optional[str] = role_opt("analyst"),
        json_out: bool = json_opt(),
    ) -> None:
        async def call(gd: Any, wf: str, actor: Any) -> Any:
            return await getattr(gd, method)(wf, actor, list(reasons))

        update_command(action, request, as_id, role, "analyst", json_out, call)

    command.__doc__ = help_text
    return command


analyst_app.command("suspend")(
    _reasons_update(Updates.SUSPEND, "suspend", "Suspende a análise listando as pendências (códigos do catálogo).")
)
analyst_app.command("reprove")(
    _reasons_update(Updates.REPROVE, "reprove", "Reprova a solicitação listando os motivos (códigos do catálogo).")
)


@analyst_app.command("answer")
def analyst_answer(
    request: str = typer.Argument(..., help="request_id ou id da consulta."),
    answer: str = typer.Option(..., "--answer", help="Texto da resposta à consulta."),
    docs: Optional[list[str]] = docs_opt(),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Responde uma consulta de acesso (enviada por e-mail ao cliente)."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.answer_inquiry(wf, actor, answer, resolve_docs(gd.documents, docs))

    update_command(Updates.ANSWER_INQUIRY, request, as_id, role, "analyst", json_out, call)


@analyst_app.command("declare-works")
def analyst_declare_works(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    reason: str = typer.Option(..., "--reason", help="Por que a conexão exige obras."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Declara obras: o prazo do parecer é recalculado a partir do mesmo início."""
    update_command(Updates.DECLARE_WORKS, request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.declare_works(wf, actor, reason))  # fmt: skip


@analyst_app.command("pause-clock")
def analyst_pause_clock(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    reason: str = typer.Option(..., "--reason", help="Causa (ex.: aguardando ONS)."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Suspende a contagem do prazo da distribuidora (REN art. 64), avisando o solicitante."""
    update_command(Updates.PAUSE_CLOCK, request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.pause_clock(wf, actor, reason))  # fmt: skip


@analyst_app.command("resume-clock")
def analyst_resume_clock(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Retoma a contagem do prazo: o vencimento anda o tempo em que ficou suspenso."""
    update_command(Updates.RESUME_CLOCK, request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.resume_clock(wf, actor))  # fmt: skip


# --- gd reanalysis, gd inspection -------------------------------------------------------------


@reanalysis_app.command("request")
def reanalysis_request(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    reproved_ns: str = typer.Option(..., "--reproved-ns", help="Número da NS reprovada."),
    docs: Optional[list[str]] = docs_opt(),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("technician"),
    json_out: bool = json_opt(),
) -> None:
    """Solicita a reanálise (motivo "Reanálise do projeto/processo elétrico"): nova NS e novo ciclo."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.request_reanalysis(wf, actor, reproved_ns, resolve_docs(gd.documents, docs))

    update_command(Updates.REQUEST_REANALYSIS, request, as_id, role, "technician", json_out, call)


@inspection_app.command("request")
def inspection_request(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    docs: Optional[list[str]] = docs_opt(),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("customer"),
    json_out: bool = json_opt(),
) -> None:
    """Cliente: pede a vistoria depois do parecer (ou de uma vistoria reprovada)."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        return await gd.request_inspection(wf, actor, resolve_docs(gd.documents, docs))

    update_command(Updates.REQUEST_INSPECTION, request, as_id, role, "customer", json_out, call)


@inspection_app.command("record")
def inspection_record(
    request: str = typer.Argument(..., help=REQUEST_HELP),
    result: str = typer.Option(..., "--result", help="approved ou reproved."),
    findings: Optional[list[str]] = typer.Option(None, "--finding", help="Constatação (repetível; obrigatória se reprovada)."),
    report: Optional[str] = typer.Option(None, "--report", help="Relatório: caminho do arquivo ou sha256."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("inspector"),
    json_out: bool = json_opt(),
) -> None:
    """Vistoriador: registra o resultado; aprovada conecta a usina."""

    async def call(gd: Any, wf: str, actor: Any) -> Any:
        ref = gd.documents.resolve(report, "inspection_report") if report else None
        return await gd.record_inspection(wf, actor, result, list(findings or []), ref)

    update_command(Updates.RECORD_INSPECTION, request, as_id, role, "inspector", json_out, call)

