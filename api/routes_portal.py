"""The self-service portal for RTs and customers under ``/portal/`` (issue 22): the
guide's AGV (Cemig Atende) and APR Web in one place, in pt-BR, server-rendered.

* RT registration (TechnicianRegistration) with a receipt; the set-password page of the
  third e-mail's link; login for RTs (council key + password) and customers (CPF/CNPJ +
  password); first access and forgotten password by an e-mailed single-use link;
  lockout after repeated failures; rate limits and a honeypot (no third-party captcha).
* The "Mini e Micro Geração Distribuída" tab: Consulta, Solicitação (validated as you
  type by the same validators), the APR step with its 24-hour countdown, Reanálise in the
  guide's five steps, Vistoria, Cadastro de UC recebedora, and "Meus pedidos".

Everything acts through the workflows as the logged-in party (the actor comes from the
session, never from the form): an RT with its council key, a customer with the CPF/CNPJ.
A request is shown only to its RT and its customer. Forms carry the session's CSRF
token and work without JavaScript; ``portal.js`` adds the live checks and countdowns.
No login, CPF/CNPJ, name or e-mail is logged.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from api import portal_accounts as accounts
from api import portal_data as data
from api import web_views as views
from api.auth import Principal
from api.deps import actor_of, intake
from api.routes_web import _decisions, _emails, _upload
from api.web_common import execute, recorded_events, start_input
from api.web_session import OidcClient, Session, Signer, WebSettings, csrf_ok, new_session
from domain.rules import ACCESS
from models import ids
from models.access import REANALYSIS_MOTIVE, UPDATE_ARGS, AccessRequestInput
from models.beneficiaries import BeneficiaryInput
from models.common import UFS, normalize_tax_id, parse_or_problems
from models.names import Updates, Workflows

log = logging.getLogger("gd.portal")
ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "portal"
COOKIE = "gd_portal"
SESSION_TTL_S = 8 * 3600
MAX_FORM_BYTES = 40 * 1024 * 1024
ACCEPT = ".pdf,.png,.jpg,.jpeg,.dwg,.dxf"
APR_REQUIRED = (
    ("electrical_project", "Projeto elétrico"),
    ("art_rrt", "ART (CREA) ou RRT (CAU)"),
    ("single_line_diagram", "Diagrama unifilar"),
    ("descriptive_memorial", "Memorial descritivo"),
)
APR_OPTIONAL = (
    ("inverter_datasheet", "Folha de dados do inversor"),
    ("module_datasheet", "Folha de dados dos módulos"),
    ("inverter_certificate", "Certificado do inversor"),
    ("power_of_attorney", "Procuração (quando alguém age pelo cliente)"),
)
KIND_TEXT = dict(APR_REQUIRED + APR_OPTIONAL) | {
    "commercial_id": "Documento de identificação do cliente", "parecer": "Parecer de acesso",
    "inspection_report": "Relatório de vistoria", "access_form": "Formulário de solicitação",
}
NEXT_ACTOR = {
    "technician": "o Responsável Técnico (RT)", "customer": "o cliente", "analyst": "a distribuidora (análise)",
    "supervisor": "a distribuidora (supervisão)", "inspector": "a distribuidora (vistoria)",
}
SOURCES = {"solar": "Solar fotovoltaica", "wind": "Eólica", "hydro": "Hidráulica", "biomass": "Biomassa",
           "cogeneration": "Cogeração qualificada", "other": "Outra"}
MODALITIES = {"local": "Autoconsumo local", "remote": "Autoconsumo remoto", "shared": "Geração compartilhada",
              "multi_unit": "Empreendimento com múltiplas unidades (EMUC)"}
PARTY_UPDATES = (Updates.REGISTER_APR, Updates.ATTACH_CORRECTIONS, Updates.REQUEST_REANALYSIS,
                 Updates.REQUEST_INSPECTION, Updates.WITHDRAW)
PARTY_ACTION_TEXT = {
    Updates.REGISTER_APR: "Cadastrar no APR Web", Updates.ATTACH_CORRECTIONS: "Anexar documentos corrigidos",
    Updates.REQUEST_REANALYSIS: "Solicitar a reanálise", Updates.REQUEST_INSPECTION: "Solicitar a vistoria",
    Updates.WITHDRAW: "Desistir da solicitação",
}
CSRF_TEXT = "Formulário expirado ou de outra origem (CSRF). Recarregue a página e tente de novo."

router = APIRouter(prefix="/portal", include_in_schema=False)
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
_env.filters.update(data=views.fmt_date, datahora=views.fmt_datetime, cpf=views.mask_document, email=views.mask_email)
_env.globals.update(
    STATUS=views.STATUS_TEXT, RULES=views.RULE_TEXT, CLASSES=views.CLASSES, KINDS=views.KINDS,
    EVENTS=views.EVENT_TEXT, KIND_TEXT=KIND_TEXT, NEXT_ACTOR=NEXT_ACTOR, ACTION_TEXT=PARTY_ACTION_TEXT,
    SOURCES=SOURCES, MODALITIES=MODALITIES, UFS=UFS, ACCEPT=ACCEPT, APR_REQUIRED=APR_REQUIRED,
    APR_OPTIONAL=APR_OPTIONAL, MOTIVE=REANALYSIS_MOTIVE, EMAILS=views.EMAIL_TEXT,
)


class PortalSettings(BaseSettings):
    """``GD_PORTAL_*``: the portal's login with the distributor's identity provider (OIDC,
    authorization code + PKCE, the inbox's machinery in api/web_session.py). On when
    ``GD_PORTAL_OIDC_CLIENT_ID`` is set and the API verifies OIDC tokens
    (``GD_AUTH_MODE=oidc``, ``GD_AUTH_ISSUER``): its tokens are checked by the API's verifier;
    ``gd_council_key`` makes the person an RT, ``gd_document`` a customer (API.md)."""

    model_config = SettingsConfigDict(env_prefix="GD_PORTAL_", extra="ignore")

    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # The back channel's address of the discovery document; default: GD_WEB_OIDC_DISCOVERY_URL,
    # then ``{GD_AUTH_ISSUER}/.well-known/openid-configuration``.
    oidc_discovery_url: str | None = None


class Portal:
    """Per app: the API's context, the session signer, the OIDC client (when configured),
    rate limiters, start inputs."""

    def __init__(self, gd: Any):
        self.gd = gd
        self.web = WebSettings()
        self.settings = PortalSettings()
        self.signer = Signer(self.web.session_key)
        self.oidc: OidcClient | None = None
        if self.settings.oidc_client_id and gd.api.auth_mode == "oidc":
            self.oidc = OidcClient(gd.api.issuer, self.settings.oidc_client_id, self.settings.oidc_client_secret,
                                   self.settings.oidc_discovery_url or self.web.oidc_discovery_url)
        self.inputs: dict[str, dict[str, Any]] = {}
        self.login_by_address = accounts.RateLimiter(20, 60.0)
        self.login_by_account = accounts.RateLimiter(10, 300.0)
        self.registrations = accounts.RateLimiter(5, 600.0)
        self.links = accounts.RateLimiter(5, 600.0)
        self.checks = accounts.RateLimiter(120, 60.0)


def portal_of(request: Request) -> Portal:
    app = request.app
    portal = getattr(app.state, "portal", None)
    if portal is None:
        portal = app.state.portal = Portal(app.state.gd)
    return portal


def session_of(request: Request) -> Session:
    cached = getattr(request.state, "portal_session", None)
    if cached is None:
        cached = portal_of(request).signer.load(request.cookies.get(COOKIE)) or new_session()
        request.state.portal_session = cached
    return cached


def principal_of(request: Request) -> Principal | None:
    session = session_of(request)
    if not session.sub or not any(r in ("technician", "customer") for r in session.roles):
        return None
    return session.principal


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def with_cookie(request: Request, answer: Response) -> Response:
    portal = portal_of(request)
    answer.set_cookie(COOKIE, portal.signer.dump(session_of(request)), httponly=True, samesite="lax",
                      secure=portal.web.cookie_secure, path="/portal", max_age=SESSION_TTL_S)
    answer.headers["Cache-Control"] = "no-store"
    answer.headers["X-Frame-Options"] = "DENY"
    answer.headers["Referrer-Policy"] = "no-referrer"
    answer.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    return answer


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request)
    flash, session.flash = session.flash, None
    user = principal_of(request)
    html = _env.get_template(template).render(
        session=session, user=user, csrf=session.csrf, flash=flash,
        is_rt=bool(user and "technician" in user.roles), oidc_on=portal_of(request).oidc is not None, **context,
    )
    return with_cookie(request, HTMLResponse(html, status_code=status_code))  # type: ignore[return-value]


def go(request: Request, url: str) -> Response:
    return with_cookie(request, RedirectResponse(url, status_code=303))


def problem_page(request: Request, message: str, code: int = 403, title: str = "Não foi possível continuar") -> Response:
    return render(request, "erro.html", status_code=code, title=title, message=message)


def user_or_login(request: Request) -> Principal | Response:
    user = principal_of(request)
    if user is None:
        session_of(request).flash = "Entre com o seu login e senha para continuar."
        return go(request, "/portal/entrar")
    return user


async def form_of(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        return None
    return await request.form(max_files=12, max_fields=200, max_part_size=4 * 1024 * 1024)


def text(form: Any, name: str, limit: int = 400) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"customer.name": x}`` → ``{"customer": {"name": x}}``; empty values left out."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        if value in ("", None):
            continue
        node = out
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


_NAMED = re.compile(r"^([a-z_]+(?:\.[a-z_0-9]+)*): (.+)$", re.S)


def field_problems(problems: Any, known: set[str], fallback: dict[str, str] | None = None) -> dict[str, str]:
    """Each pydantic/validator problem beside its form field (the first per field)."""
    fallback = fallback or {}
    out: dict[str, str] = {}
    for p in problems:
        field, message = p.field, p.message
        named = _NAMED.match(message)
        if (not field or field not in known) and named:
            field, message = named.group(1), named.group(2)
        while field and field not in known and "." in field:
            field = field.rsplit(".", 1)[0]
        field = fallback.get(field, field)
        if field not in known:
            field = ""
        out.setdefault(field, message)
    return out


def summary_of(errors: dict[str, str], labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(f, f"{labels.get(f, 'Formulário')}: {m}" if f else m) for f, m in errors.items()]


def fid(name: str) -> str:
    return name.replace(".", "-")


_env.filters["fid"] = fid

# --- the services tab -------------------------------------------------------------------------


@router.get("/servicos")
async def services(request: Request) -> Response:
    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    return render(request, "servicos.html", title="Mini e Micro Geração Distribuída")


REQUEST_LABELS = {
    "customer.document": "CPF ou CNPJ do cliente", "customer.name": "Nome do cliente (titular)",
    "customer.email": "E-mail do cliente", "customer.phone": "Telefone do cliente",
    "installation_number": "Número da instalação", "generation.source": "Fonte de geração",
    "generation.installed_power_kw": "Potência instalada (kW)", "generation.voltage_kv": "Tensão de conexão (kV)",
    "generation.modality": "Modalidade", "generation.storage_kwh": "Armazenamento (kWh)",
    "customer.customer_number": "Número de cliente", "commercial_id": "Documento de identificação do cliente",
}
REQUEST_FALLBACK = {"customer": "customer.document", "generation": "generation.installed_power_kw",
                    "documents": "commercial_id", "technician": "", "beneficiaries": ""}


def _request_raw(form: Any, user: Principal, kind: str) -> dict[str, Any]:
    flat = {name: text(form, name, 300) for name in REQUEST_LABELS if name != "commercial_id"}
    for number in ("generation.installed_power_kw", "generation.voltage_kv", "generation.storage_kwh"):
        if flat.get(number):
            flat[number] = flat[number].replace(",", ".")
    raw = nested(flat)
    raw["kind"] = kind
    if user.council_key:
        council, uf, registration = user.council_key.split("-", 2)
        raw["technician"] = {"council": council, "uf": uf, "registration": registration}
    if "customer" in user.roles and user.document:
        raw.setdefault("customer", {})["document"] = user.document
    return raw


@router.post("/servicos/validar")
async def validate_as_you_type(request: Request) -> Response:
    """The same validators as the submission, field by field, for the live checks."""
    portal = portal_of(request)
    user = principal_of(request)
    if user is None:
        return JSONResponse({"erros": {}}, status_code=401)
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return JSONResponse({"erros": {"": CSRF_TEXT}}, status_code=403)
    if not portal.checks.allow(accounts.key_of("check", user.id)):
        return JSONResponse({"erros": {}}, status_code=429)
    kind = "inquiry" if text(form, "tipo") == "inquiry" else "request"
    raw = _request_raw(form, user, kind)
    raw["request_id"] = "validacao"
    _, problems = parse_or_problems(AccessRequestInput, raw)
    errors = field_problems(problems, set(REQUEST_LABELS), REQUEST_FALLBACK)
    errors.pop("commercial_id", None)  # the file is checked on sending
    return JSONResponse({"erros": {fid(k): v for k, v in errors.items() if k}})


async def _start_access(portal: Portal, user: Principal, raw: dict[str, Any], workflow_id: str) -> tuple[dict | None, dict[str, str]]:
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.service import RPCError

    from api.access_requests import wait_intake

    parsed, problems = parse_or_problems(AccessRequestInput, raw)
    if problems:
        return None, field_problems(problems, set(REQUEST_LABELS), REQUEST_FALLBACK)
    found = await run_in_threadpool(intake, portal.gd, "access", workflow_id, raw)
    if found:
        return None, field_problems(found, set(REQUEST_LABELS), REQUEST_FALLBACK)
    try:
        await portal.gd.temporal().start_workflow(
            Workflows.ACCESS_REQUEST, raw, id=workflow_id, task_queue=portal.gd.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass
    except RPCError:
        return None, {"": "O sistema está indisponível; tente de novo em instantes"}
    try:
        status = await wait_intake(portal.gd, workflow_id, lambda s: s.get("status") != "RECEIVED")
    except Exception:  # noqa: BLE001 - the API's 503
        return None, {"": "A solicitação foi recebida mas a triagem não respondeu a tempo; confira em Meus pedidos"}
    return status, {}


@router.get("/servicos/solicitacao")
async def request_form(request: Request) -> Response:
    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    portal = portal_of(request)
    values: dict[str, str] = {"generation.source": "solar", "generation.voltage_kv": "0,22", "generation.modality": "local"}
    document = user.document or ""
    if not document and request.query_params.get("cpf"):
        try:
            document = normalize_tax_id(request.query_params["cpf"][:20])
        except Exception:  # noqa: BLE001
            document = ""
    values["customer.document"] = document or request.query_params.get("cpf", "")[:20]
    installations = await data.installations_of(portal, document) if document else []
    if user.document is None and not installations and request.query_params.get("cpf"):
        installations_note = "Nenhuma instalação encontrada para este CPF/CNPJ: informe o número ou deixe em branco."
    else:
        installations_note = ""
    return render(request, "solicitacao.html", title="Solicitação de acesso", values=values, errors={}, summary=[],
                  installations=installations, installations_note=installations_note, kind="request")


@router.post("/servicos/solicitacao")
async def file_request(request: Request) -> Response:
    return await _file(request, "request")


@router.get("/servicos/consulta")
async def inquiry_form(request: Request) -> Response:
    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    values = {"generation.source": "solar", "generation.voltage_kv": "0,22", "generation.modality": "local",
              "customer.document": user.document or ""}
    return render(request, "solicitacao.html", title="Consulta de acesso", values=values, errors={}, summary=[],
                  installations=[], installations_note="", kind="inquiry")


@router.post("/servicos/consulta")
async def file_inquiry(request: Request) -> Response:
    return await _file(request, "inquiry")


async def _file(request: Request, kind: str) -> Response:
    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    portal = portal_of(request)
    form = await form_of(request)
    if form is None:
        return problem_page(request, "Formulário grande demais (cada arquivo até 3 MB).", 413)
    if not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    title = "Solicitação de acesso" if kind == "request" else "Consulta de acesso"
    values = {k: text(form, k, 300) for k in REQUEST_LABELS}

    def again(code: int, errors: dict[str, str]) -> Response:
        return render(request, "solicitacao.html", status_code=code, title=title, values=values, errors=errors,
                      summary=summary_of(errors, REQUEST_LABELS), installations=[], installations_note="", kind=kind)

    if kind == "request" and "technician" not in user.roles:
        return again(403, {"": "A solicitação de acesso é feita pelo Responsável Técnico; o cliente acompanha em Meus pedidos"})
    request_id = f"p{uuid.uuid4().hex[:15]}"
    workflow_id = ids.access_request_id(request_id)
    raw = _request_raw(form, user, kind)
    raw["request_id"] = request_id
    _, problems = parse_or_problems(AccessRequestInput, {**raw, "documents": []} if kind == "request" else raw)
    errors = field_problems(problems, set(REQUEST_LABELS), REQUEST_FALLBACK)
    errors.pop("commercial_id", None)
    if kind == "request":
        ref, problem = await _upload(portal, workflow_id, form.get("commercial_id"), "commercial_id", required=True)
        if problem:
            errors["commercial_id"] = problem
        elif ref:
            raw["documents"] = [ref]
    if errors:
        return again(422, errors)
    status, errors = await _start_access(portal, user, raw, workflow_id)
    if errors:
        return again(422, errors)
    assert status is not None
    if status.get("status") == "REFUSED":
        reasons = "; ".join(p.get("message", "") for p in status.get("refusal_reasons") or [])
        session_of(request).flash = f"Recusada na triagem: {reasons}"
    else:
        session_of(request).flash = (f"{'Solicitação' if kind == 'request' else 'Consulta'} registrada: "
                                     f"NS {status.get('service_note') or '—'}, Protocolo {status.get('protocol') or '—'}.")
    return go(request, f"/portal/pedidos/{request_id}")


# --- Meus pedidos -----------------------------------------------------------------------------


@router.get("/pedidos")
async def my_requests(request: Request) -> Response:
    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    portal = portal_of(request)
    role = "technician" if "technician" in user.roles else "customer"
    rows = await data.requests_of(portal, role, council_key=user.council_key, document=user.document)
    items = [{"row": r, "due": views.due_text(r.due_at), "next": ACCESS.next_actor(r.status)} for r in rows]
    service = request.query_params.get("servico", "")
    return render(request, "pedidos.html", title="Meus pedidos", items=items,
                  service=service if service in ("vistoria", "reanalise", "ucs") else "")


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


async def _mine(request: Request, request_id: str) -> tuple[Principal, str, dict[str, Any], dict[str, Any]] | Response:
    """The user, the workflow id, its status and its start input: only for its RT or customer."""
    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    portal = portal_of(request)
    # Rendered only when needed: rendering takes the session's one-time notice (flash).
    missing = lambda: problem_page(request, f"Pedido {request_id[:64]} não encontrado entre os seus.", 404,  # noqa: E731
                                   "Pedido não encontrado")
    if not _REQUEST_ID.fullmatch(request_id):
        return missing()
    workflow_id = ids.access_request_id(request_id)
    facts = await portal.gd.facts(workflow_id)
    role = user.roles[0]
    mine = (role == "technician" and user.council_key and facts.technician_key == user.council_key) or \
           (role == "customer" and user.document and facts.customer_document == user.document)
    if not mine:
        return missing()
    status = await portal.gd.query_status(workflow_id)
    if status is None:
        return missing()
    raw = await start_input(portal, workflow_id)
    return user, workflow_id, status, raw


def _apr_left(status: dict[str, Any]) -> str | None:
    if status.get("status") != "AWAITING_APR" or status.get("due_rule") != "apr_window":
        return None
    due = views.to_dt(status.get("due_at"))
    if due is None:
        return None
    seconds = int((due - views.now()).total_seconds())
    if seconds <= 0:
        return f"prazo de 24 horas encerrado ({views.fmt_datetime(due)})"
    return f"restam {seconds // 3600} h {seconds % 3600 // 60:02d} min (até {views.fmt_datetime(due)})"


async def _step_one_done(portal: Portal, workflow_id: str, status: dict[str, Any]) -> bool:
    """Reanálise step 1: corrections attached (or the lapsed NS registered) since the last decision."""
    events = await recorded_events(portal, workflow_id, status.get("sequence"))
    wanted = "apr_registered_after_lapse" if status.get("status") == "LAPSED" else "corrections_attached"
    resets = {"suspend", "reprove", "lapsed", "reanalysis_requested"}
    done = False
    for e in events:
        if e.action == wanted:
            done = True
        elif e.action in resets:
            done = False
    return done


def _allowed(status: dict[str, Any], user: Principal) -> list[str]:
    role = user.roles[0]
    return [a["update"] for a in status.get("actions") or []
            if a["update"] in PARTY_UPDATES and role in a["roles"]]


async def request_context(portal: Portal, user: Principal, workflow_id: str, status: dict[str, Any],
                          raw: dict[str, Any], request_id: str) -> dict[str, Any]:
    allowed = _allowed(status, user)
    docs = [{**d, "label": KIND_TEXT.get(d.get("kind"), d.get("kind"))} for d in status.get("documents") or []]
    return {
        "st": status, "raw": raw, "request_id": request_id, "allowed": allowed,
        "due": views.due_text(status.get("due_at"), paused=bool(status.get("clock_paused"))),
        "apr_left": _apr_left(status), "decisions": _decisions(status), "emails": _emails(status, raw),
        "documents": docs, "step_one": await _step_one_done(portal, workflow_id, status)
        if status.get("status") in ("SUSPENDED", "REPROVED", "LAPSED") else False,
        "role": user.roles[0], "beneficiaries": await portal.gd.query_status(ids.beneficiaries_id(request_id))
        if status.get("beneficiaries_workflow_id") or status.get("status") in ("APPROVED", "INSPECTION_REQUESTED", "CONNECTED") else None,
    }


@router.get("/pedidos/{request_id}")
async def request_page(request: Request, request_id: str) -> Response:
    found = await _mine(request, request_id)
    if isinstance(found, Response):
        return found
    user, workflow_id, status, raw = found
    context = await request_context(portal_of(request), user, workflow_id, status, raw, request_id)
    return render(request, "pedido.html", title=f"Pedido {status.get('service_note') or request_id}",
                  **context, errors={}, summary=[], values={}, failed=None)


@router.get("/pedidos/{request_id}/reanalise")
async def reanalysis_page(request: Request, request_id: str) -> Response:
    found = await _mine(request, request_id)
    if isinstance(found, Response):
        return found
    user, workflow_id, status, raw = found
    context = await request_context(portal_of(request), user, workflow_id, status, raw, request_id)
    return render(request, "reanalise.html", title="Reanálise da solicitação", **context, errors={}, summary=[],
                  values={}, failed=None)


ACTION_LABELS = {"service_note": "NS (nota de serviço)", "protocol": "Protocolo", "documents": "Documentos técnicos",
                 "reproved_service_note": "NS reprovada", "motive": "Motivo da solicitação", "confirma": "Confirmação",
                 "reason": "Motivo da desistência"}


@router.post("/pedidos/{request_id}/acoes/{update}")
async def request_action(request: Request, request_id: str, update: str) -> Response:
    found = await _mine(request, request_id)
    if isinstance(found, Response):
        return found
    user, workflow_id, status, raw = found
    portal = portal_of(request)
    if update not in PARTY_UPDATES:
        return problem_page(request, "Ação desconhecida.", 404)
    form = await form_of(request)
    if form is None:
        return problem_page(request, "Formulário grande demais (cada arquivo até 3 MB).", 413)
    if not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    back_to = "reanalise.html" if text(form, "pagina") == "reanalise" else "pedido.html"
    values = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf"}

    async def again(code: int, errors: dict[str, str]) -> Response:
        context = await request_context(portal, user, workflow_id, status, raw, request_id)
        return render(request, back_to, status_code=code, title=f"Pedido {status.get('service_note') or request_id}",
                      **context, errors=errors, summary=summary_of(errors, ACTION_LABELS), values=values, failed=update)

    role = user.roles[0]
    if update not in _allowed(status, user):
        return await again(409, {"": f"{PARTY_ACTION_TEXT[update]}: não é possível na situação atual "
                                     f"({views.STATUS_TEXT.get(status.get('status'), status.get('status'))})"})
    args: dict[str, Any] = {"actor": actor_of(user, role)}
    errors: dict[str, str] = {}
    if update == Updates.REGISTER_APR:
        args["service_note"], args["protocol"] = text(form, "service_note", 40), text(form, "protocol", 40)
        args["documents"] = []
        lapsed = status.get("status") == "LAPSED"
        for kind, label in APR_REQUIRED + APR_OPTIONAL:
            upload = form.get(f"doc_{kind}")
            required = (kind, label) in APR_REQUIRED and not lapsed
            ref, problem = await _upload(portal, workflow_id, upload, kind, required=required)
            if problem:
                errors.setdefault("documents", f"{label}: {problem}")
            elif ref:
                args["documents"].append(ref)
    elif update == Updates.ATTACH_CORRECTIONS:
        args["documents"] = []
        for upload in form.getlist("documents")[:10]:
            ref, problem = await _upload(portal, workflow_id, upload, text(form, "tipo_corrigido") or "electrical_project",
                                         required=False)
            if problem:
                errors.setdefault("documents", problem)
            elif ref:
                args["documents"].append(ref)
        if not args["documents"] and not errors:
            errors["documents"] = "Anexe ao menos um documento corrigido (PDF de até 3 MB)"
    elif update == Updates.REQUEST_REANALYSIS:
        args["reproved_service_note"] = text(form, "reproved_service_note", 40)
        args["motive"] = text(form, "motive", 200)
        if form.get("confirma") != "1":
            errors["confirma"] = "Confirme os dados da solicitação antes de enviar"
        args["documents"] = []
        for upload in form.getlist("arquivos")[:10]:
            ref, problem = await _upload(portal, workflow_id, upload, "electrical_project", required=False)
            if problem:
                errors.setdefault("documents", problem)
            elif ref:
                args["documents"].append(ref)
    elif update == Updates.REQUEST_INSPECTION:
        args["documents"] = []
    elif update == Updates.WITHDRAW:
        if text(form, "reason", 500):
            args["reason"] = text(form, "reason", 500)
    if errors:
        return await again(422, errors)
    _, problems = parse_or_problems(UPDATE_ARGS[update], args)
    errors = field_problems([p for p in problems if not p.field.startswith("actor")], set(ACTION_LABELS))
    if errors:
        return await again(422, errors)
    refused = await execute(portal, workflow_id, update, args)
    if refused is not None:
        code, message = refused
        named = _NAMED.match(message)
        if named and named.group(1) in ACTION_LABELS:
            return await again(code, {named.group(1): named.group(2)})
        if named and named.group(1) == update:
            return await again(code, {"": named.group(2)})
        return await again(code, {"": message})
    session_of(request).flash = f"{PARTY_ACTION_TEXT[update]}: feito."
    target = f"/portal/pedidos/{request_id}"
    if back_to == "reanalise.html" and update in (Updates.ATTACH_CORRECTIONS, Updates.REGISTER_APR):
        target += "/reanalise"
    return go(request, target)


# --- Cadastro de UC recebedora ------------------------------------------------------------------

UNITS = 5
UC_LABELS = {"modality": "Modalidade", "mode": "Forma de rateio", "units": "UCs recebedoras"}
for _i in range(UNITS):
    UC_LABELS[f"units.{_i}.installation_number"] = f"UC {_i + 1}: número da instalação"
    UC_LABELS[f"units.{_i}.holder_document"] = f"UC {_i + 1}: CPF/CNPJ do titular"
    UC_LABELS[f"units.{_i}.percent"] = f"UC {_i + 1}: percentual"
    UC_LABELS[f"units.{_i}.priority"] = f"UC {_i + 1}: prioridade"


@router.get("/pedidos/{request_id}/ucs")
async def units_page(request: Request, request_id: str) -> Response:
    found = await _mine(request, request_id)
    if isinstance(found, Response):
        return found
    user, _, status, raw = found
    current = await portal_of(request).gd.query_status(ids.beneficiaries_id(request_id))
    return render(request, "ucs.html", title="Cadastro de UC recebedora", st=status, raw=raw, request_id=request_id,
                  values={"modality": (raw.get("generation") or {}).get("modality", "remote"), "mode": "percent"},
                  errors={}, summary=[], current=current, units=UNITS, role=user.roles[0])


@router.post("/pedidos/{request_id}/ucs")
async def register_units(request: Request, request_id: str) -> Response:
    from gd_client import GdClient, GdRefused, GdUnavailable

    found = await _mine(request, request_id)
    if isinstance(found, Response):
        return found
    user, workflow_id, status, raw = found
    portal = portal_of(request)
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    values = {k: text(form, k, 40) for k in UC_LABELS}

    def again(code: int, errors: dict[str, str]) -> Response:
        return render(request, "ucs.html", status_code=code, title="Cadastro de UC recebedora", st=status, raw=raw,
                      request_id=request_id, values=values, errors=errors, summary=summary_of(errors, UC_LABELS),
                      current=None, units=UNITS, role=user.roles[0])

    if "customer" not in user.roles:
        return again(403, {"": "Só o titular da usina (o cliente) cadastra as UCs recebedoras"})
    mode = values["mode"] if values["mode"] in ("percent", "priority") else "percent"
    units = []
    for i in range(UNITS):
        number = values[f"units.{i}.installation_number"]
        if not number:
            continue
        unit: dict[str, Any] = {"installation_number": number, "holder_document": values[f"units.{i}.holder_document"]}
        if mode == "percent":
            unit["percent"] = values[f"units.{i}.percent"].replace(",", ".") or None
        else:
            unit["priority"] = values[f"units.{i}.priority"] or None
        units.append({k: v for k, v in unit.items() if v not in (None, "")})
    body = {
        "request_id": request_id, "generator_installation": raw.get("installation_number") or "",
        "holder_document": user.document, "modality": values["modality"],
        "actor": actor_of(user, "customer"), "allocation": {"mode": mode, "units": units},
        "notify_email": (raw.get("customer") or {}).get("email"),
    }
    parsed, problems = parse_or_problems(BeneficiaryInput, body)
    known = set(UC_LABELS)
    fallback = {"allocation.units": "units", "allocation": "units", "generator_installation": "units"}
    if problems:
        return again(422, field_problems(problems, known, fallback))
    found_problems = await run_in_threadpool(intake, portal.gd, "beneficiaries", ids.beneficiaries_id(request_id), body)
    if found_problems:
        return again(422, field_problems(found_problems, known, fallback))
    try:
        await GdClient(portal.gd.temporal(), portal.gd.settings).start_beneficiaries(parsed)
    except GdUnavailable:
        return again(503, {"": "O sistema está indisponível; tente de novo em instantes"})
    except GdRefused as error:
        return again(422, field_problems(error.problems, known, fallback) or {"": error.message})
    session_of(request).flash = "UCs recebedoras enviadas para análise da distribuidora."
    return go(request, f"/portal/pedidos/{request_id}/ucs")


# --- documents of one's own requests ------------------------------------------------------------


@router.get("/pedidos/{request_id}/documentos/{sha256}")
async def document(request: Request, request_id: str, sha256: str) -> Response:
    found = await _mine(request, request_id)
    if isinstance(found, Response):
        return found
    _, _, status, _ = found
    gd = portal_of(request).gd
    digest = sha256.strip().lower()
    if digest not in {d.get("sha256") for d in status.get("documents") or []}:
        return problem_page(request, "Documento não encontrado neste pedido.", 404)
    record = await run_in_threadpool(gd.store.document, digest)
    if record is None or not gd.blobs.exists(digest, record.size):
        return problem_page(request, "Documento não encontrado.", 404)
    content = await run_in_threadpool(gd.blobs.get, digest)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in record.filename)[:120] or "documento"
    return Response(content, media_type=record.content_type, headers={
        "Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=60",
    })
