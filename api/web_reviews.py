"""The inbox's registration reviews: the RT's (TechnicianRegistration: approve with the
council check, reject with reasons) and the UCs recebedoras' (BeneficiaryRegistration:
confirm, reject with reasons). A queue and a page each, under ``/ui/rts`` and ``/ui/ucs``.

The queues read the store (``technician_record``, ``beneficiary_allocation``, the event
log); a page reads the workflow's ``status`` query. The buttons are the status' ``actions``
for the user's roles (domain/rules.py, through the query); a form carries the status
``sequence`` it was drawn from, so a page gone stale says so (412) and decides nothing.

**Council check.** There is no public API of CREA/CAU to call (DOMAIN.md): the analyst
looks the registration up in the council's own site and confirms it on the form; approval
without that confirmation is not sent to the workflow.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import web_views as views
from api.auth import Principal
from api.deps import AUDITORS, actor_of
from api.web_common import (
    csrf_refused,
    execute,
    forbidden,
    form_of,
    go,
    recorded_events,
    render,
    session_of,
    start_input,
    user_or_login,
    web_of,
)
from domain import reasons as catalogue
from models import ids
from models.common import parse_or_problems
from models.names import Updates

router = APIRouter(include_in_schema=False)  # mounted under /ui by api/routes_web.py

REVIEWERS = ("analyst", "supervisor", "auditor")
TECH_STATUS = {
    "RECEIVED": "Em triagem", "REFUSED": "Recusado na triagem", "PENDING_REVIEW": "Aguardando análise",
    "APPROVED": "Cadastro aprovado", "REJECTED": "Cadastro rejeitado",
}
UC_STATUS = {
    "RECEIVED": "Em triagem", "REFUSED": "Recusado na triagem", "PENDING_REVIEW": "Aguardando análise",
    "REGISTERED": "UCs recebedoras cadastradas", "REJECTED": "Cadastramento rejeitado",
}
MODALITIES = {
    "local": "autoconsumo local", "remote": "autoconsumo remoto", "shared": "geração compartilhada",
    "multi_unit": "múltiplas unidades consumidoras",
}
COUNCIL_SITES = {"CREA": "CREA-{uf} (consulta de profissionais)", "CAU": "CAU/BR (SICCAU, consulta pública)"}
_KEY = re.compile(r"(CREA|CAU)-[A-Z]{2}-[A-Z0-9]{1,20}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class Kind:
    """One registration process as the pages show it."""

    name: str            # "rt" | "uc"
    path: str            # /ui/rts | /ui/ucs
    title: str
    reason_use: str
    status_text: dict[str, str]
    workflow_id: Callable[[str], str]
    valid: Callable[[str], bool]
    actions: dict[str, str]  # update → button text
    doing: dict[str, str]    # update → what was tried ("Não foi possível …")


RT = Kind("rt", "/ui/rts", "Cadastros de RT", "reject_technician", TECH_STATUS,
          lambda key: ids.TECHNICIAN_PREFIX + key, lambda key: bool(_KEY.fullmatch(key)),
          {Updates.APPROVE: "Aprovar o cadastro do RT", Updates.REJECT: "Rejeitar o cadastro"},
          {Updates.APPROVE: "aprovar o cadastro do RT", Updates.REJECT: "rejeitar o cadastro",
           Updates.CHANGE_EMAIL: "pedir a troca do e-mail do RT"})
UC = Kind("uc", "/ui/ucs", "UCs recebedoras", "reject_beneficiaries", UC_STATUS,
          ids.beneficiaries_id, lambda key: bool(_REQUEST_ID.fullmatch(key)),
          {Updates.CONFIRM: "Confirmar o cadastramento", Updates.REJECT: "Rejeitar o cadastramento"},
          {Updates.CONFIRM: "confirmar o cadastramento", Updates.REJECT: "rejeitar o cadastramento"})
KINDS = {"rts": RT, "ucs": UC}


# --- the queues -------------------------------------------------------------------------------


def technician_queue(store: Any, at: datetime | None = None) -> list[dict[str, Any]]:
    """RTs awaiting review, by due date (the ``submitted`` step's deadline), oldest first."""
    import sqlalchemy as sa

    from activities.tables import EventRecord, TechnicianRecord

    tech = TechnicianRecord.__table__
    ev = EventRecord.__table__
    with store.connection(write=False) as conn:
        pending = conn.execute(
            sa.select(tech.c.key, tech.c.workflow_id, tech.c.updated_at).where(tech.c.status == "PENDING_REVIEW")
        ).all()
        ids_ = [p.workflow_id for p in pending]
        due: dict[str, Any] = {}
        received: dict[str, Any] = {}
        breached: set[str] = set()
        if ids_:
            for row in conn.execute(
                sa.select(ev.c.workflow_id, ev.c.action, ev.c.at, ev.c.data)
                .where(ev.c.workflow_id.in_(ids_), ev.c.action.in_(("submitted", "sla_breach")))
                .order_by(ev.c.id)
            ):
                if row.action == "submitted":
                    data = row.data if isinstance(row.data, dict) else {}
                    due[row.workflow_id] = views.to_dt(data.get("due_at"))
                    received[row.workflow_id] = row.at
                else:
                    breached.add(row.workflow_id)
    rows = [
        {"key": p.key, "received": received.get(p.workflow_id, p.updated_at), "due_at": due.get(p.workflow_id),
         "due": views.due_text(due.get(p.workflow_id), at=at), "breached": p.workflow_id in breached}
        for p in pending
    ]
    far = datetime.max.replace(tzinfo=timezone.utc)
    rows.sort(key=lambda r: (r["due_at"] or far, r["key"]))
    return rows


def beneficiary_queue(store: Any) -> list[dict[str, Any]]:
    """UC recebedora registrations awaiting review, oldest first (no legal deadline)."""
    import sqlalchemy as sa

    from activities.tables import BeneficiaryAllocation

    table = BeneficiaryAllocation.__table__
    with store.connection(write=False) as conn:
        found = conn.execute(
            sa.select(table).where(table.c.status == "PENDING_REVIEW").order_by(table.c.recorded_at, table.c.id)
        ).mappings().all()
    latest: dict[str, dict[str, Any]] = {}
    for row in found:
        latest[row["workflow_id"]] = dict(row)
    return [
        {"request_id": r["request_id"], "generator": r["generator_installation"],
         "modality": MODALITIES.get(r["modality"], r["modality"]), "mode": r["mode"],
         "units": len(r["units"] or []), "received": r["recorded_at"]}
        for r in latest.values()
    ]


def _reviewer(request: Request) -> Principal | Response:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    if principal.first_role(REVIEWERS) is None:
        return forbidden(request, "A análise de cadastros é de analistas, supervisão e auditoria.")
    return principal


@router.get("/rts")
async def technician_list(request: Request) -> Response:
    principal = _reviewer(request)
    if isinstance(principal, Response):
        return principal
    rows = await run_in_threadpool(technician_queue, web_of(request).gd.store)
    return render(request, "cadastros.html", title="Cadastros de RT", kind=RT, rows=rows)


@router.get("/ucs")
async def beneficiary_list(request: Request) -> Response:
    principal = _reviewer(request)
    if isinstance(principal, Response):
        return principal
    rows = await run_in_threadpool(beneficiary_queue, web_of(request).gd.store)
    return render(request, "cadastros.html", title="UCs recebedoras", kind=UC, rows=rows)


# --- one registration ---------------------------------------------------------------------------


async def review_context(request: Request, kind: Kind, key: str, principal: Principal) -> dict[str, Any] | None:
    web = web_of(request)
    workflow_id = kind.workflow_id(key)
    status = await web.gd.query_status(workflow_id)
    if status is None:
        return None
    raw = await start_input(web, workflow_id)
    events = await recorded_events(web, workflow_id, status.get("sequence"))
    forms = [a["update"] for a in status.get("actions") or []
             if a["update"] in kind.actions and principal.first_role(a["roles"]) is not None]
    known = catalogue.catalogue()
    decisions = [
        {**d, "reasons": [{"code": r.get("code"), "text": r.get("text"),
                           "catalogue": known[r["code"]].text if r.get("code") in known else None}
                          for r in d.get("reasons") or []]}
        for d in status.get("decisions") or []
    ]
    context: dict[str, Any] = {
        "kind": kind, "key": key, "st": status, "raw": raw, "forms": forms, "decisions": decisions,
        "timeline": [{"at": e.at, "action": e.action, "status": e.status, "actor": e.actor_id, "role": e.actor_role}
                     for e in events],
        "reasons": [(c, known[c]) for c in catalogue.codes_for(kind.reason_use)],
        "version": str(status.get("sequence", "")),
        "due": views.due_text(status.get("due_at")) if status.get("due_at") else None,
        "audit_link": f"/ui/auditoria/{workflow_id}" if principal.first_role(AUDITORS) else None,
    }
    if kind is RT:
        council, uf, registration = key.split("-", 2)
        context["council"] = {"council": council, "uf": uf, "registration": registration,
                              "site": COUNCIL_SITES[council].format(uf=uf)}
        context.update(await email_context(web, key, status, principal))
    else:
        context["parent"] = key
    return context


async def email_context(web: Any, key: str, status: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The RT's current address (the store's: a confirmed change is there, not in the
    registration's input), its pending change, and whether this user may ask for one:
    the rules table's ``actions`` for the registration's status and the user's roles."""
    from gd_client import GdClient

    email_now = await run_in_threadpool(web.gd.store.technician_email, key)
    roles = next((a["roles"] for a in status.get("actions") or [] if a["update"] == Updates.CHANGE_EMAIL), None)
    pending = None
    try:
        change = await GdClient(web.gd.temporal(), web.gd.settings).email_change_status(key)
        if change.status == "AWAITING_CONFIRMATION":
            pending = change
    except Exception:  # noqa: BLE001 - no change asked yet (or Temporal busy): nothing to show
        pending = None
    return {"email_now": email_now, "email_form": bool(roles) and principal.first_role(roles) is not None,
            "email_pending": pending, "nonce": uuid.uuid4().hex}


async def _page(request: Request, kind: Kind, key: str) -> Response:
    principal = _reviewer(request)
    if isinstance(principal, Response):
        return principal
    key = key.strip().upper() if kind is RT else key
    if not kind.valid(key):
        return forbidden(request, "Cadastro não encontrado.", 404)
    context = await review_context(request, kind, key, principal)
    if context is None:
        return forbidden(request, f"Cadastro {key} não encontrado.", 404)
    return render(request, "cadastro.html", title=f"{kind.title}: {key}", **context,
                  errors={}, summary=[], values={}, chosen=[], failed=None, stale=False)


@router.get("/rts/{key}")
async def technician_page(request: Request, key: str) -> Response:
    return await _page(request, RT, key)


@router.get("/ucs/{key}")
async def beneficiary_page(request: Request, key: str) -> Response:
    return await _page(request, UC, key)


async def _act(request: Request, kind: Kind, key: str, update: str) -> Response:
    principal = _reviewer(request)
    if isinstance(principal, Response):
        return principal
    key = key.strip().upper() if kind is RT else key
    if not kind.valid(key) or update not in kind.actions:
        return forbidden(request, "Ação ou cadastro desconhecido.", 404)
    form = await form_of(request)
    refused = csrf_refused(request, form)
    if refused is not None:
        return refused
    context = await review_context(request, kind, key, principal)
    if context is None:
        return forbidden(request, f"Cadastro {key} não encontrado.", 404)
    values = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf"}
    chosen = [c for c in form.getlist("motivo") if isinstance(c, str)]

    def again(code: int, summary: list[tuple[str, str]], errors: dict[str, str], stale: bool = False) -> Response:
        return render(request, "cadastro.html", status_code=code, title=f"{kind.title}: {key}", **context,
                      errors=errors, summary=summary, values=values, chosen=chosen, failed=update, stale=stale)

    if str(form.get("versao", "")) != context["version"]:
        return again(412, [], {}, stale=True)
    status = context["st"]
    roles = next((a["roles"] for a in status.get("actions") or [] if a["update"] == update), None)
    role = principal.first_role(roles) if roles else None
    if role is None:
        state = kind.status_text.get(status.get("status"), status.get("status"))
        return again(409, [("", f"{kind.actions[update]}: não é possível na situação atual ({state}) com o seu papel")], {})
    args: dict[str, Any] = {"actor": actor_of(principal, role)}
    problems: list[tuple[str, str]] = []
    if update == Updates.APPROVE and form.get("conferido") != "1":
        council = context["council"]
        problems.append(("conferido", f"Confirme que conferiu o registro {council['registration']} no "
                                      f"{council['council']}-{council['uf']} antes de aprovar"))
    if update == Updates.REJECT:
        offered = set(catalogue.codes_for(kind.reason_use))
        if not chosen:
            problems.append(("motivos", "Escolha ao menos um motivo do catálogo"))
        reasons = []
        for code in chosen:
            if code not in offered:
                problems.append(("motivos", f"Motivo {code[:64]} não é do catálogo para esta decisão"))
                continue
            text = (form.get(f"texto_{code}") or "").strip() if isinstance(form.get(f"texto_{code}"), str) else ""
            reasons.append({"code": code, **({"text": text} if text else {})})
        args["reasons"] = reasons
    if not problems:
        from models.beneficiaries import ConfirmArgs, RejectArgs
        from models.technician import TechnicianApproveArgs, TechnicianRejectArgs

        model = {("rt", Updates.APPROVE): TechnicianApproveArgs, ("rt", Updates.REJECT): TechnicianRejectArgs,
                 ("uc", Updates.CONFIRM): ConfirmArgs, ("uc", Updates.REJECT): RejectArgs}[(kind.name, update)]
        _, found = parse_or_problems(model, args)
        problems += [("motivos" if p.field.startswith("reasons") else p.field, p.message)
                     for p in found if not p.field.startswith("actor")]
    if problems:
        return again(422, problems, {f: m for f, m in problems})
    refused_by = await execute(web_of(request), kind.workflow_id(key), update, args)
    if refused_by is not None:
        code, message = refused_by
        named = re.match(r"^(reasons)(?:\.[\w.]+)?: (.+)$", message, re.S)
        if named:
            return again(code, [("motivos", named.group(2))], {"motivos": named.group(2)})
        return again(code, [("", message)], {})
    session_of(request).flash = f"{kind.actions[update]}: feito."
    return go(request, f"{kind.path}/{key}")


@router.post("/rts/{key}/acoes/{update}")
async def technician_action(request: Request, key: str, update: str) -> Response:
    return await _act(request, RT, key, update)


@router.post("/ucs/{key}/acoes/{update}")
async def beneficiary_action(request: Request, key: str, update: str) -> Response:
    return await _act(request, UC, key, update)


# --- the RT's e-mail corrected (TechnicianEmailChange) ------------------------------------------

_NONCE = re.compile(r"[A-Za-z0-9-]{1,64}")


@router.post("/rts/{key}/email")
async def technician_email_change(request: Request, key: str) -> Response:
    """"Corrigir o e-mail do RT": ``change_email`` as the analyst. A code goes to the new
    address (with the portal's confirmation link), a notice to the current one; nothing
    changes until the RT confirms. The form's nonce is the update's id: sending the same
    form twice sends one code."""
    from gd_client import GdClient, GdRefused, GdUnavailable
    from models.technician import ChangeEmailArgs

    principal = _reviewer(request)
    if isinstance(principal, Response):
        return principal
    key = key.strip().upper()
    if not RT.valid(key):
        return forbidden(request, "Cadastro não encontrado.", 404)
    form = await form_of(request)
    refused = csrf_refused(request, form)
    if refused is not None:
        return refused
    context = await review_context(request, RT, key, principal)
    if context is None:
        return forbidden(request, f"Cadastro {key} não encontrado.", 404)
    email = form.get("email").strip()[:300] if isinstance(form.get("email"), str) else ""
    values = {"email": email}

    def again(code: int, message: str, field: str = "") -> Response:
        return render(request, "cadastro.html", status_code=code, title=f"{RT.title}: {key}", **context,
                      errors={field: message} if field else {}, summary=[(field, message)], values=values,
                      chosen=[], failed=Updates.CHANGE_EMAIL, stale=False)

    status = context["st"]
    roles = next((a["roles"] for a in status.get("actions") or [] if a["update"] == Updates.CHANGE_EMAIL), None)
    role = principal.first_role(roles) if roles else None
    if role is None:
        state = RT.status_text.get(status.get("status"), status.get("status"))
        return again(409, f"Corrigir o e-mail: não é possível na situação atual ({state}) com o seu papel")
    if not email:
        return again(422, "Informe o novo e-mail do RT", "email")
    args = {"actor": actor_of(principal, role), "email": email}
    _, found = parse_or_problems(ChangeEmailArgs, args)
    problems = [p for p in found if not p.field.startswith("actor")]
    if problems:
        return again(422, problems[0].message, "email")
    nonce = form.get("pedido")
    update_id = f"web-{nonce}" if isinstance(nonce, str) and _NONCE.fullmatch(nonce) else None
    web = web_of(request)
    try:
        change = await GdClient(web.gd.temporal(), web.gd.settings).change_technician_email(
            key, args["actor"], email, update_id)
    except GdRefused as error:
        message = error.message
        named = re.match(r"^email: (.+)$", message, re.S)
        if named:
            return again(422, named.group(1), "email")
        from models.common import REFUSAL_HTTP_STATUS

        return again(REFUSAL_HTTP_STATUS.get(getattr(error, "kind", "InputRefused"), 422), message)
    except GdUnavailable:
        return again(503, "O processamento não respondeu a tempo; confira a situação antes de tentar de novo.")
    session_of(request).flash = (
        f"Código de confirmação enviado a {change.new_email_hint}; o endereço atual recebeu um aviso. "
        "Nada muda até o RT confirmar pelo link ou código do e-mail.")
    return go(request, f"{RT.path}/{key}")
