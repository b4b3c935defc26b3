"""The registrations: `gd technician` (the RT registers, an analyst approves or rejects)
and `gd beneficiaries` (the UCs that receive a connected generator's credits)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from activities.mail_render import datahora
from cli.common import (
    ACTOR_ENV,
    as_opt,
    console,
    emit_json,
    execute,
    group,
    json_opt,
    load_json_object,
    reasons_opt,
    resolve_actor,
    role_opt,
    show_snapshot,
    stderr_line,
    update_command,
)
from cli.formatting import beneficiaries_panel, technician_panel
from gd_client import GdRefused, beneficiaries_workflow_id, technician_workflow_id
from models.ids import ACCESS_PREFIX, TECHNICIAN_PREFIX
from models.names import Updates

technician_app = group("Responsáveis técnicos (CREA/CAU): cadastrar, aprovar, recusar, consultar e corrigir o e-mail.")
beneficiaries_app = group("Unidades beneficiárias (rateio dos créditos): cadastrar, confirmar, recusar e consultar.")



def _show_registered(st: Any, workflow_id: str, panel: Callable[[Any, str], Any], json_out: bool,
                     refused: str) -> None:
    """A registration just started: its snapshot (``--json``) or its panel; a refused input
    then exits 2 with ``"<refused> recusado: <reasons>"`` on stderr."""
    if json_out:
        show_snapshot(workflow_id, st)
    else:
        console().print(panel(st, workflow_id))
    if st.status == "REFUSED":
        reasons = "; ".join(str(p) for p in st.refusal_reasons)
        stderr_line(f"{refused} recusado: {reasons}")
        raise typer.Exit(2)


def _show_status(ref: str, workflow_id_of: Callable[[str], str], panel: Callable[[Any, str], Any],
                 json_out: bool) -> None:
    """`status` of a registration: its snapshot (``--json``) or its panel."""

    async def body(gd: Any) -> None:
        workflow_id = workflow_id_of(ref)
        st = await gd.status(workflow_id)
        if json_out:
            show_snapshot(workflow_id, st)
            return
        console().print(panel(st, workflow_id))

    execute(body, json_out)


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
    json_out: bool = json_opt(),
) -> None:
    """Cadastra um responsável técnico: análise em até 3 dias úteis."""

    async def body(gd: Any) -> None:
        raw: dict[str, Any] = {}
        if file is not None:
            raw = load_json_object(file)
        for key, value in (("name", name), ("cpf", cpf), ("email", email), ("phone", phone),
                           ("council", council.upper() if council else None), ("uf", uf),
                           ("registration", registration), ("title", title)):  # fmt: skip
            if value is not None:
                raw[key] = value
        st = await gd.start_technician(raw)
        _show_registered(st, TECHNICIAN_PREFIX + st.technician, technician_panel, json_out,
                         f"cadastro do RT {st.technician}")

    execute(body, json_out)


@technician_app.command("approve")
def technician_approve(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345) ou id do processo."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Aprova o cadastro do RT: ele recebe os três e-mails de acesso (AGV e APR)."""
    update_command(Updates.APPROVE, technician, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.approve_technician(wf, actor), technician_workflow_id)  # fmt: skip


@technician_app.command("reject")
def technician_reject(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO ou id do processo."),
    reasons: list[str] = reasons_opt(),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Recusa o cadastro do RT com motivos do catálogo (ex.: RT-REGISTRO-IRREGULAR)."""
    update_command(Updates.REJECT, technician, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.reject_technician(wf, actor, list(reasons)),
                   technician_workflow_id)  # fmt: skip


@technician_app.command("status")
def technician_status(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO ou id do processo."),
    json_out: bool = json_opt(),
) -> None:
    """Situação do cadastro do RT, prazo da análise e decisões."""
    _show_status(technician, technician_workflow_id, technician_panel, json_out)


@technician_app.command("change-email")
def technician_change_email(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345)."),
    email: str = typer.Option(..., "--email", help="O novo e-mail: recebe um código de confirmação."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("technician"),
    json_out: bool = json_opt(),
) -> None:
    """Pede a troca do e-mail do RT: um código vai para o novo endereço e um aviso para o atual.
    Nada muda até `gd technician confirm-email` com o código (válido por 72 h, 5 tentativas)."""

    async def body(gd: Any) -> None:
        actor = resolve_actor(as_id, role, "technician")
        st = await gd.change_technician_email(technician, actor, email)
        if json_out:
            emit_json(st.model_dump(mode="json"))
            return
        console().print(f"Código enviado para {st.new_email_hint} (aviso ao e-mail atual). "
                        f"Confirme até {datahora(st.expires_at.isoformat())} com "
                        f"`gd technician confirm-email {st.technician} --code CÓDIGO`.")

    execute(body, json_out)


@technician_app.command("confirm-email")
def technician_confirm_email(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345)."),
    code: str = typer.Option(..., "--code", help="Os 6 dígitos enviados ao novo e-mail."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("technician"),
    json_out: bool = json_opt(),
) -> None:
    """Confirma a troca do e-mail do RT com o código: o novo endereço passa a receber tudo."""

    async def body(gd: Any) -> None:
        actor = resolve_actor(as_id, role, "technician")
        st = await gd.confirm_technician_email(technician, actor, code)
        if json_out:
            emit_json(st.model_dump(mode="json"))
            return
        console().print(f"E-mail do RT {st.technician} trocado: as próximas mensagens vão para "
                        f"{st.new_email_hint}.")

    execute(body, json_out)


# --- gd beneficiaries ---------------------------------------------------------------------------


def _units_from_flags(units: list[str], mode: str) -> list[dict[str, Any]]:
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
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("customer"),
    json_out: bool = json_opt(),
) -> None:
    """Cadastra as UCs recebedoras dos créditos (percentuais somando 100 ou prioridades 1..n)."""

    async def body(gd: Any) -> None:
        raw: dict[str, Any] = {}
        if file is not None:
            raw = load_json_object(file)
        if request:
            raw["request_id"] = request.removeprefix(ACCESS_PREFIX)
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
            raw["actor"] = resolve_actor(as_id, role, "customer").model_dump(exclude_none=True)
        st = await gd.start_beneficiaries(raw)
        _show_registered(st, beneficiaries_workflow_id(st.request_id), beneficiaries_panel, json_out,
                         f"cadastramento de UCs recebedoras de {st.request_id}")

    execute(body, json_out)


@beneficiaries_app.command("confirm")
def beneficiaries_confirm(
    request: str = typer.Argument(..., help="request_id da solicitação (ou gd-beneficiaries-…)."),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Confirma o rateio: vale a partir do próximo ciclo de faturamento."""
    update_command(Updates.CONFIRM, request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.confirm_beneficiaries(wf, actor), beneficiaries_workflow_id)  # fmt: skip


@beneficiaries_app.command("reject")
def beneficiaries_reject(
    request: str = typer.Argument(..., help="request_id da solicitação (ou gd-beneficiaries-…)."),
    reasons: list[str] = reasons_opt(),
    as_id: Optional[str] = as_opt(),
    role: Optional[str] = role_opt("analyst"),
    json_out: bool = json_opt(),
) -> None:
    """Recusa o cadastramento com motivos do catálogo (ex.: RATEIO-SOMA-DIFERENTE-100)."""
    update_command(Updates.REJECT, request, as_id, role, "analyst", json_out,
                   lambda gd, wf, actor: gd.reject_beneficiaries(wf, actor, list(reasons)),
                   beneficiaries_workflow_id)  # fmt: skip


@beneficiaries_app.command("status")
def beneficiaries_status(
    request: str = typer.Argument(..., help="request_id da solicitação (ou gd-beneficiaries-…)."),
    json_out: bool = json_opt(),
) -> None:
    """Situação do cadastramento das UCs recebedoras e o rateio."""
    _show_status(request, beneficiaries_workflow_id, beneficiaries_panel, json_out)



@technician_app.command("set-password")
def technician_set_password(
    technician: str = typer.Argument(..., help="CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345): o login do APR."),
    token: str = typer.Option(..., "--token", help="código do e-mail \"registro da senha para acesso ao APR\"."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="lê a nova senha da entrada padrão."),
    json_out: bool = json_opt(),
) -> None:
    """Registra a senha do APR Web com o código do terceiro e-mail da aprovação (uso único, válido por 72 h)."""
    import sys

    from activities.passwords import PasswordRefused, SecretRefused, set_apr_password
    from activities.store import Store
    from cli.common import emit_json, fail, settings_now

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Nova senha do APR", hide_input=True, confirmation_prompt=True)
    store = Store(settings_now().database_url)
    store.create_schema()
    try:
        set_apr_password(store, technician.strip().upper(), token.strip(), password)
    except (PasswordRefused, SecretRefused) as error:
        fail(2, f"gd technician set-password: {error}", json_out)
        return
    finally:
        store.dispose()
    if json_out:
        emit_json({"ok": True, "technician": technician.strip().upper()})
    else:
        console().print("Senha do APR registrada: entre com o login "
                        f"{technician.strip().upper()} e a nova senha.")
