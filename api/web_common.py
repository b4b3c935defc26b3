"""What every page of the web inbox shares: the app's ``Web`` (settings, session signer,
OIDC client), the session of a request, rendering (Jinja2, ``templates/web/``) with the
cookie and the security headers, redirects, form reading, the error page, a workflow's
start input, and sending an update with the validator's refusal read back.

``api/routes_web.py`` (login, queue, request page) and the other pages' modules
(``api/web_reviews.py``, ``api/web_dashboard.py``, ``api/web_audit.py``) import from here.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import web_views as views
from api.auth import Principal
from api.web_session import COOKIE, SESSION_TTL_S, WEB_ROLES, OidcClient, Session, Signer, WebSettings, csrf_ok, new_session
from models.common import REFUSAL_HTTP_STATUS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "web"
# htmx: the pinned npm package (package.json at the project root, `npm ci`), served here.
HTMX = ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
MAX_FORM_BYTES = 4 * 1024 * 1024
UPDATE_TIMEOUT_S = 30.0


_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
def page_of(workflow_id: str) -> str | None:
    """The inbox page of a process, from its workflow id (None: no page for it)."""
    from models import ids

    for prefix, path in ((ids.ACCESS_PREFIX, "/ui/solicitacoes/"), (ids.TECHNICIAN_PREFIX, "/ui/rts/"),
                         (ids.BENEFICIARIES_PREFIX, "/ui/ucs/")):
        if workflow_id.startswith(prefix):
            return path + workflow_id.removeprefix(prefix)
    return None


_env.filters.update(
    pagina=page_of, data=views.fmt_date, datahora=views.fmt_datetime, cpf=views.mask_document, email=views.mask_email,
)
_env.globals.update(
    STATUS=views.STATUS_TEXT, ACTIONS=views.ACTION_TEXT, RULES=views.RULE_TEXT, ROLES=views.ROLES,
    CLASSES=views.CLASSES, KINDS=views.KINDS, EVENTS=views.EVENT_TEXT, EMAILS=views.EMAIL_TEXT,
)


class Web:
    """Per app: settings, the session signer, the OIDC client, a cache of start inputs."""

    def __init__(self, gd: Any):
        self.gd = gd
        self.settings = WebSettings()
        self.signer = Signer(self.settings.session_key)
        self.dev = gd.api.auth_mode == "dev"
        self.oidc = None if self.dev else OidcClient(
            gd.api.issuer, self.settings.oidc_client_id, self.settings.oidc_client_secret,
            self.settings.oidc_discovery_url)
        self.inputs: dict[str, dict[str, Any]] = {}


def web_of(request: Request) -> Web:
    app = request.app
    web = getattr(app.state, "web", None)
    if web is None:
        web = app.state.web = Web(app.state.gd)
    return web


def session_of(request: Request) -> Session:
    cached = getattr(request.state, "web_session", None)
    if cached is None:
        cached = web_of(request).signer.load(request.cookies.get(COOKIE)) or new_session()
        request.state.web_session = cached
    return cached


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request)
    flash, session.flash = session.flash, None
    html = _env.get_template(template).render(
        session=session, user=session.principal, csrf=session.csrf, flash=flash,
        htmx=HTMX.exists(), dev=web_of(request).dev, request_path=request.url.path, **context,
    )
    answer = HTMLResponse(html, status_code=status_code)
    return with_cookie(request, answer)


def with_cookie(request: Request, answer: Response) -> Response:
    web = web_of(request)
    answer.set_cookie(
        COOKIE, web.signer.dump(session_of(request)), httponly=True, samesite="lax",
        secure=web.settings.cookie_secure, path="/ui", max_age=SESSION_TTL_S,
    )
    answer.headers["Cache-Control"] = "no-store"
    answer.headers["X-Frame-Options"] = "DENY"
    answer.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self' " + (web.gd.api.issuer if not web.dev else "") + "; frame-ancestors 'none'"
    )
    return answer


def go(request: Request, url: str) -> Response:
    return with_cookie(request, RedirectResponse(url, status_code=303))


def user_or_login(request: Request) -> Principal | Response:
    principal = session_of(request).principal
    if principal is None:
        return go(request, "/ui/entrar")
    if not any(role in WEB_ROLES for role in principal.roles):
        # the portal signs its sessions with the same key (GD_WEB_SESSION_KEY): a customer's
        # or an RT's session is a valid signature here, but not a staff member's
        return forbidden(request, "Sua conta não tem papel de analista, supervisor(a), inspetor(a) ou auditor(a).")
    return principal


async def form_of(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        return None
    return await request.form(max_files=2, max_fields=200, max_part_size=MAX_FORM_BYTES)


def forbidden(request: Request, message: str, code: int = 403) -> HTMLResponse:
    return render(request, "erro.html", status_code=code, title="Ação não permitida", message=message)


# --- assets -----------------------------------------------------------------------------------


async def start_input(web: Web, workflow_id: str) -> dict[str, Any]:
    """The request's start input (parties, generation): the first event of its run."""
    cached = web.inputs.get(workflow_id)
    if cached is not None:
        return cached
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

    client = web.gd.temporal()
    history = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id), maximum_page_size=1,
        )
    )
    raw: Any = None
    if history.history.events:
        payloads = history.history.events[0].workflow_execution_started_event_attributes.input.payloads
        if payloads:
            raw = (await client.data_converter.decode([payloads[0]]))[0]
    found = raw if isinstance(raw, dict) else {}
    if len(web.inputs) > 5000:
        web.inputs.clear()
    web.inputs[workflow_id] = found
    return found


# How long a page waits for the store's event log to hold the step the workflow already
# shows (its record_transition runs right after the update answers: milliseconds, normally).
EVENTS_CATCH_UP_S = 2.0


async def recorded_events(web: Any, workflow_id: str, sequence: Any, wait_s: float = EVENTS_CATCH_UP_S) -> list:
    """The workflow's event log from the store, once it holds step ``sequence`` (the
    ``sequence`` of the status the page shows; event keys start with it), or as it is after
    ``wait_s`` (a store outage: the page shows what is recorded). Without this, the page
    right after an action could show the timeline, or a reanalysis step, one step behind."""
    from starlette.concurrency import run_in_threadpool

    from activities.events import sequence_of

    wanted = sequence if isinstance(sequence, int) else 0
    give_up = asyncio.get_running_loop().time() + wait_s
    while True:
        events = await run_in_threadpool(web.gd.store.events, workflow_id)
        recorded = max((sequence_of(e.event_key) for e in events), default=0)
        if recorded >= wanted or asyncio.get_running_loop().time() >= give_up:
            return events
        await asyncio.sleep(0.05)


async def execute(web: Web, workflow_id: str, update: str, args: dict[str, Any]) -> tuple[int, str] | None:
    """Send the update; None when accepted, else (HTTP status, the validator's message)."""
    handle = web.gd.temporal().get_workflow_handle(workflow_id)
    try:
        await asyncio.wait_for(handle.execute_update(update, args, id=str(uuid.uuid4())), UPDATE_TIMEOUT_S)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError):
            return REFUSAL_HTTP_STATUS.get(cause.type or "InputRefused", 422), cause.message
        return 422, "ação recusada"
    except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return 503, "O processamento não respondeu a tempo; confira a situação antes de tentar de novo."
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return 409, "A solicitação já foi encerrada; nenhuma ação é possível."
        return 503, "O Temporal está indisponível; tente de novo em instantes."
    return None


# --- documents --------------------------------------------------------------------------------


def csrf_refused(request: Request, form: Any) -> HTMLResponse | None:
    """The error page when the form is missing, too big or without this session's token."""
    if form is None:
        return forbidden(request, "Formulário grande demais (arquivos de até 3 MB).", 413)
    if not csrf_ok(session_of(request), form.get("csrf")):
        return forbidden(request, "Formulário expirado ou de outra origem (CSRF). Recarregue a página e tente de novo.")
    return None

