"""The analysts' web inbox under ``/ui/`` (issue 18): server-rendered pt-BR pages.

Login (dev personas in dev mode; OIDC authorization code + PKCE otherwise), the queue
("Caixa de entrada"), the request page with the forms its status' ``actions`` allow, and
the documents. Every form works without JavaScript and carries the session's CSRF token;
htmx (from the pinned npm package, served here) only refreshes the queue's filters.

Decisions go to the workflow as updates with the actor built from the session (never
from the form); the validator's pt-BR refusal is shown beside the field it names. A form
carries the status ``sequence`` it was drawn from: when the request moved since, the page
says so (412) and shows the new state, and nothing is decided.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from api import web_views as views
from api.auth import Principal
from api.deps import AUDITORS, actor_of
from api.web_common import (  # noqa: F401 - names kept importable from here
    HTMX,
    MAX_FORM_BYTES,
    TEMPLATES,
    UPDATE_TIMEOUT_S,
    Web,
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
    with_cookie,
)
from api.web_session import (
    PERSONAS,
    SESSION_TTL_S,
    WEB_ROLES,
    LoginFailed,
    begin_login,
    csrf_ok,
    finish_login,
    new_session,
)
from domain import reasons as catalogue
from models import ids
from models.access import UPDATE_ARGS
from models.common import parse_or_problems
from models.names import Updates

log = logging.getLogger("gd.web")
# Form field each refused argument is shown beside.
FIELD_OF = {
    "pendencies": "motivos", "reasons": "motivos", "parecer": "parecer", "analyst": "analyst",
    "reason": "reason", "answer": "answer", "findings": "findings", "result": "result",
    "report": "report", "notes": "notes", "requires_works": "requires_works",
}

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/static/app.css")
async def css() -> Response:
    return FileResponse(TEMPLATES / "static" / "app.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=300"})


@router.get("/static/htmx.min.js")
async def htmx() -> Response:
    if not HTMX.exists():
        return Response("// htmx não instalado (npm ci)", media_type="text/javascript", status_code=404)
    return FileResponse(HTMX, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


# --- login ------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return go(request, "/ui/caixa" if session_of(request).principal else "/ui/entrar")


@router.get("/entrar")
async def login_page(request: Request) -> Response:
    web = web_of(request)
    personas = [(pid, label) for pid, (label, _, _) in PERSONAS.items()] if web.dev else []
    return render(request, "entrar.html", title="Entrar", personas=personas)


@router.post("/entrar")
async def login_dev(request: Request) -> Response:
    web = web_of(request)
    form = await form_of(request)
    session = session_of(request)
    if form is None or not csrf_ok(session, form.get("csrf")):
        return forbidden(request, "Formulário expirado ou de outra origem (CSRF). Recarregue a página e tente de novo.")
    if not web.dev:
        return forbidden(request, "A escolha de perfil só existe no modo de desenvolvimento.")
    persona = form.get("persona")
    if persona not in PERSONAS:
        return render(request, "entrar.html", status_code=422, title="Entrar",
                      personas=[(p, l) for p, (l, _, _) in PERSONAS.items()],
                      errors={"persona": "Escolha um dos perfis da lista"})
    label, roles, _ = PERSONAS[persona]
    fresh = new_session()
    fresh.sub, fresh.roles, fresh.name, fresh.exp = persona, roles, label, int(time.time()) + SESSION_TTL_S
    request.state.web_session = fresh
    return go(request, "/ui/caixa")


@router.get("/entrar/oidc")
async def login_oidc(request: Request) -> Response:
    web = web_of(request)
    if web.oidc is None:
        return go(request, "/ui/entrar")
    try:
        url = await begin_login(session_of(request), web.oidc, _redirect_uri(request, web))
    except Exception as error:  # noqa: BLE001
        log.warning("oidc discovery failed: %s", type(error).__name__)
        return render(request, "erro.html", status_code=503, title="Provedor de identidade indisponível",
                      message="Não foi possível falar com o provedor de identidade; tente de novo em instantes.")
    return go(request, url)


def _redirect_uri(request: Request, web: Web) -> str:
    base = (web.settings.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/ui/oidc/retorno"


@router.get("/oidc/retorno")
async def oidc_return(request: Request) -> Response:
    web = web_of(request)
    session = session_of(request)
    fail = lambda text: render(request, "erro.html", status_code=400, title="Não foi possível entrar", message=text)  # noqa: E731
    if web.oidc is None:
        session.login = None
        return fail("Nenhum login em andamento nesta sessão. Volte à página de entrada.")
    try:
        principal = await finish_login(session, request.query_params, web.oidc, _redirect_uri(request, web),
                                       web.gd.verifier.verify)
    except LoginFailed as error:
        return fail(error.message)
    if not any(r in WEB_ROLES for r in principal.roles):
        return fail("Sua conta não tem papel de analista, supervisor(a), inspetor(a) ou auditor(a).")
    fresh = new_session()
    fresh.sub, fresh.roles = principal.id, principal.roles
    fresh.council_key, fresh.document = principal.council_key, principal.document
    fresh.name, fresh.exp = principal.id, int(time.time()) + SESSION_TTL_S
    request.state.web_session = fresh
    return go(request, "/ui/caixa")


@router.post("/sair")
async def logout(request: Request) -> Response:
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return forbidden(request, "Formulário expirado ou de outra origem (CSRF). Recarregue a página.")
    request.state.web_session = new_session()
    session_of(request).flash = "Você saiu."
    return go(request, "/ui/entrar")


# --- the queue --------------------------------------------------------------------------------


@router.get("/caixa")
async def queue(request: Request) -> Response:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    gd = web_of(request).gd
    filters = views.parse_filters(request.query_params)
    data = await run_in_threadpool(views.load_queue, gd.store, filters, principal.id)
    template = "fila_tabela.html" if request.headers.get("hx-request") == "true" else "fila.html"
    return render(request, template, title="Caixa de entrada", q=data, f=filters,
                  statuses=list(data.counts), can_claim=principal.first_role(("analyst", "supervisor")) is not None)


# --- one request ------------------------------------------------------------------------------



def _deadlines(status: dict[str, Any]) -> list[dict[str, Any]]:
    breaches = {(b.get("step"), str(views.to_dt(b.get("due_at")))) for b in status.get("sla_breaches") or []}
    records = status.get("deadlines") or []
    out = []
    for i, rec in enumerate(records):
        current = i == len(records) - 1 and status.get("due_at") and rec.get("rule") == status.get("due_rule")
        due = views.to_dt(rec.get("due_at"))
        breached = (rec.get("rule"), str(due)) in breaches
        if current:
            outcome = "descumprido" if breached else ("em curso" if not status.get("clock_paused") else "suspenso")
        else:
            later = records[i + 1] if i + 1 < len(records) else None
            superseded = later is not None and later.get("rule") == rec.get("rule") and later.get("cycle") == rec.get("cycle")
            outcome = "descumprido" if breached else ("substituído" if superseded else "cumprido")
        out.append({**rec, "outcome": outcome, "current": bool(current)})
    return out


def _decisions(status: dict[str, Any]) -> list[dict[str, Any]]:
    known = catalogue.catalogue()
    out = []
    for d in status.get("decisions") or []:
        reasons = [
            {"code": r.get("code"), "catalogue": known[r["code"]].text if r.get("code") in known else None,
             "text": r.get("text")}
            for r in d.get("reasons") or []
        ]
        out.append({**d, "reasons": reasons})
    return out


def _emails(status: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    customer = (raw.get("customer") or {}).get("email")
    tech = status.get("technician")
    out = []
    for n in status.get("notifications") or []:
        to = [views.mask_email(customer)]
        if tech and n.get("template") not in ("inquiry_answered", "sla_escalation"):
            to.append(f"RT {tech}")
        if n.get("template") == "sla_escalation":
            to = ["supervisão"]
        out.append({**n, "to": ", ".join(to)})
    return out


def _forms(status: dict[str, Any], principal: Principal) -> list[str]:
    """The updates of the status' ``actions`` this user's roles may send."""
    allowed = []
    for action in status.get("actions") or []:
        role = principal.first_role(action["roles"])
        if action["update"] not in views.ACTION_TEXT or role is None:
            continue
        if action["update"] == Updates.ASSIGN and role == "analyst" and status.get("assignee"):
            continue  # only a supervisor reassigns
        allowed.append(action["update"])
    return allowed


async def request_context(web: Web, request_id: str, principal: Principal) -> dict[str, Any] | None:
    workflow_id = ids.access_request_id(request_id)
    status = await web.gd.query_status(workflow_id)
    if status is None:
        return None
    raw = await start_input(web, workflow_id)
    events = await recorded_events(web, workflow_id, status.get("sequence"))
    timeline = [
        {"at": e.at, "action": e.action, "status": e.status, "actor": e.actor_id, "role": e.actor_role,
         "data": e.data or {}, "reasons": e.reasons or []}
        for e in events
    ]
    forms = _forms(status, principal)
    return {
        "st": status, "raw": raw, "request_id": request_id, "timeline": timeline,
        "deadlines": _deadlines(status), "decisions": _decisions(status), "emails": _emails(status, raw),
        "forms": forms, "due": views.due_text(status.get("due_at"), paused=bool(status.get("clock_paused"))),
        "suspend_reasons": [(c, catalogue.catalogue()[c]) for c in catalogue.codes_for("suspend")],
        "reprove_reasons": [(c, catalogue.catalogue()[c]) for c in catalogue.codes_for("reprove")],
        "version": str(status.get("sequence", "")),
        "is_supervisor": principal.first_role(("supervisor",)) is not None,
        "is_auditor": principal.first_role(AUDITORS) is not None,
        "withdraw_roles": _withdraw_roles(status),
    }


def _withdraw_roles(status: dict[str, Any]) -> str:
    """Who may withdraw in this status, from the status' ``actions`` (the rules table):
    the customer and the RT, never the distributor, so the inbox offers no form for it."""
    roles = next((a["roles"] for a in status.get("actions") or [] if a["update"] == Updates.WITHDRAW), ())
    names = [views.ROLES.get(r, r) for r in roles]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} e {names[-1]}"


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@router.get("/solicitacoes/{request_id}")
async def request_page(request: Request, request_id: str) -> Response:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    web = web_of(request)
    if not _REQUEST_ID.fullmatch(request_id):
        return forbidden(request, "Solicitação não encontrada.", 404)
    context = await request_context(web, request_id, principal)
    if context is None:
        return forbidden(request, f"Solicitação {request_id} não encontrada.", 404)
    return render(request, "solicitacao.html", title=f"Solicitação {request_id}", **context,
                  errors={}, summary=[], values={}, chosen=[], failed=None)


@router.post("/solicitacoes/{request_id}/acoes/{update}")
async def request_action(request: Request, request_id: str, update: str) -> Response:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    web = web_of(request)
    if not _REQUEST_ID.fullmatch(request_id) or update not in views.ACTION_TEXT:
        return forbidden(request, "Ação ou solicitação desconhecida.", 404)
    form = await form_of(request)
    if form is None:
        return forbidden(request, "Formulário grande demais (arquivos de até 3 MB).", 413)
    if not csrf_ok(session_of(request), form.get("csrf")):
        return forbidden(request, "Formulário expirado ou de outra origem (CSRF). Recarregue a página e tente de novo.")
    back = form.get("voltar") == "caixa"
    context = await request_context(web, request_id, principal)
    if context is None:
        return forbidden(request, f"Solicitação {request_id} não encontrada.", 404)
    values = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf"}

    def again(code: int, summary: list[tuple[str, str]], errors: dict[str, str], stale: bool = False) -> Response:
        return render(request, "solicitacao.html", status_code=code, title=f"Solicitação {request_id}",
                      **context, errors=errors, summary=summary, values=values, stale=stale, failed=update,
                      chosen=[c for c in form.getlist("motivo") if isinstance(c, str)])

    claim_from_queue = update == Updates.ASSIGN and back and not form.get("versao")
    if not claim_from_queue and str(form.get("versao", "")) != context["version"]:
        return again(412, [], {}, stale=True)
    status = context["st"]
    roles = next((a["roles"] for a in status.get("actions") or [] if a["update"] == update), None)
    role = principal.first_role(roles) if roles else None
    if role is None:
        message = (f"{views.ACTION_TEXT[update]}: não é possível na situação atual "
                   f"({views.STATUS_TEXT.get(status.get('status'), status.get('status'))}) com o seu papel")
        return again(409, [("", message)], {})
    workflow_id = ids.access_request_id(request_id)
    args, problems = await _args_from_form(web, workflow_id, update, form, principal, role)
    if problems:
        errors = {FIELD_OF.get(f.split(".")[0], f): m for f, m in problems}
        return again(422, [(FIELD_OF.get(f.split(".")[0], f), m) for f, m in problems], errors)
    refused = await execute(web, workflow_id, update, args)
    if refused is not None:
        code, message = refused
        named = re.match(r"^([a-z_]+)(?:\.[\w.]+)?: (.+)$", message, re.S)
        field_name = FIELD_OF.get(named.group(1), "") if named else ""
        shown = named.group(2) if named and field_name else message
        errors = {field_name: shown} if field_name else {}
        return again(code, [(field_name, shown)], errors)
    session_of(request).flash = f"{views.ACTION_TEXT[update]}: feito."
    if back:
        return go(request, "/ui/caixa")
    return go(request, f"/ui/solicitacoes/{request_id}")


def _actor(principal: Principal, role: str) -> dict[str, Any]:
    return actor_of(principal, role)


async def _args_from_form(web: Web, workflow_id: str, update: str, form: Any, principal: Principal,
                          role: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    text = lambda name: (form.get(name) or "").strip() if isinstance(form.get(name), str) else ""  # noqa: E731
    args: dict[str, Any] = {"actor": _actor(principal, role)}
    problems: list[tuple[str, str]] = []
    if update == Updates.ASSIGN:
        args["analyst"] = text("analyst") if role == "supervisor" and text("analyst") else principal.id
    elif update == Updates.APPROVE:
        ref, problem = await _upload(web, workflow_id, form.get("parecer"), "parecer", required=True)
        if problem:
            problems.append(("parecer", problem))
        else:
            args["parecer"] = ref
        args["requires_works"] = form.get("requires_works") == "1"
        if text("notes"):
            args["notes"] = text("notes")
    elif update in (Updates.SUSPEND, Updates.REPROVE):
        use = "suspend" if update == Updates.SUSPEND else "reprove"
        codes = [c for c in form.getlist("motivo") if isinstance(c, str)]
        if not codes:
            problems.append(("motivos", "Escolha ao menos um motivo do catálogo"))
        offered = set(catalogue.codes_for(use))
        chosen = []
        for code in codes:
            if code not in offered:
                problems.append(("motivos", f"Motivo {code[:64]} não é do catálogo para esta decisão"))
                continue
            reason = {"code": code}
            if text(f"texto_{code}"):
                reason["text"] = text(f"texto_{code}")
            chosen.append(reason)
        args["pendencies" if update == Updates.SUSPEND else "reasons"] = chosen
    elif update in (Updates.DECLARE_WORKS, Updates.PAUSE_CLOCK):
        args["reason"] = text("reason")
    elif update == Updates.ANSWER_INQUIRY:
        args["answer"] = text("answer")
    elif update == Updates.RECORD_INSPECTION:
        args["result"] = text("result")
        args["findings"] = [line.strip() for line in text("findings").splitlines() if line.strip()]
        upload = form.get("report")
        if upload is not None and getattr(upload, "filename", ""):
            ref, problem = await _upload(web, workflow_id, upload, "inspection_report", required=False)
            if problem:
                problems.append(("report", problem))
            elif ref:
                args["report"] = ref
    if problems:
        return args, problems
    _, found = parse_or_problems(UPDATE_ARGS[update], args)
    for p in found:
        if p.field.startswith("actor"):
            continue
        problems.append((p.field, p.message))
    return args, problems


async def _upload(web: Web, workflow_id: str, upload: Any, kind: str, *, required: bool) -> tuple[dict | None, str | None]:
    from activities.blobs import UploadRefused
    from activities.blobs import upload as store_upload

    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", ""):
        return None, ("Anexe o arquivo (PDF de até 3 MB)" if required else None)
    data = await upload.read(MAX_FORM_BYTES + 1)
    if not data:
        return None, "O arquivo está vazio"
    try:
        ref = await run_in_threadpool(store_upload, web.gd.store, web.gd.blobs, data, kind=kind,
                                      filename=upload.filename[:255], for_workflow=workflow_id)
    except UploadRefused as error:
        return None, str(error)
    return ref.model_dump(mode="json"), None




@router.get("/documentos/{sha256}")
async def document(request: Request, sha256: str) -> Response:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    gd = web_of(request).gd
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        return forbidden(request, "Documento não encontrado.", 404)
    record = await run_in_threadpool(gd.store.document, digest)
    if record is None or not gd.blobs.exists(digest, record.size):
        return forbidden(request, "Documento não encontrado.", 404)
    data = await run_in_threadpool(gd.blobs.get, digest)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in record.filename)[:120] or "documento"
    disposition = "inline" if request.query_params.get("abrir") == "1" and record.content_type == "application/pdf" else "attachment"
    return Response(data, media_type=record.content_type, headers={
        "Content-Disposition": f'{disposition}; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=60",
    })


# --- the other pages: registrations' reviews, the SLA dashboard, the auditor's page -------------

from api import web_audit, web_dashboard, web_reviews  # noqa: E402 - they import nothing from here

for _pages in (web_reviews, web_dashboard, web_audit):
    router.include_router(_pages.router)
