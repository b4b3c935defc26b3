"""The portal's accounts: its assets, home, login and logout, the RT's registration and
the password pages (set from a link, first access, forgotten). The services and the
requests are in ``api.routes_portal``, whose helpers (session, CSRF, rendering) these
pages share."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from api import portal_accounts as accounts
from api import portal_data as data
from api import web_views as views
from api.deps import intake
from api.routes_portal import (
    CSRF_TEXT,
    SESSION_TTL_S,
    TEMPLATES,
    client_address,
    field_problems,
    form_of,
    go,
    log,
    portal_of,
    principal_of,
    problem_page,
    render,
    session_of,
    summary_of,
    text,
)
from api.web_session import LoginFailed, begin_login, csrf_ok, finish_login, new_session
from models import ids
from models.common import normalize_tax_id, parse_or_problems
from models.technician import TechnicianInput

router = APIRouter(prefix="/portal", include_in_schema=False)

# --- assets -----------------------------------------------------------------------------------


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    kinds = {"portal.css": "text/css", "portal.js": "text/javascript"}
    if name not in kinds:
        return Response("não encontrado", status_code=404)
    return FileResponse(TEMPLATES / "static" / name, media_type=kinds[name], headers={"Cache-Control": "max-age=300"})


# --- home, login, logout ---------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    if principal_of(request) is not None:
        return go(request, "/portal/servicos")
    return render(request, "inicio.html", title="Agência Virtual de Geração Distribuída")


LOGIN_LABELS = {"perfil": "Você é", "login": "Login", "senha": "Senha"}


def _login_of(role: str, raw: str) -> tuple[str | None, str | None]:
    """The stored login (council key or CPF/CNPJ digits) or a pt-BR problem."""
    if role == "technician":
        from gd_client import GdRefused, parse_technician_key

        try:
            return parse_technician_key(raw).key, None
        except GdRefused:
            return None, "Informe o registro no conselho como CONSELHO-UF-NÚMERO, ex.: CREA-MG-123456"
    try:
        return normalize_tax_id(raw), None
    except Exception:  # noqa: BLE001
        return None, "Informe um CPF (11 dígitos) ou CNPJ (14 caracteres) válido"


@router.get("/entrar")
async def login_page(request: Request) -> Response:
    return render(request, "entrar.html", title="Entrar", values={"perfil": "technician"}, errors={}, summary=[])


@router.post("/entrar")
async def login(request: Request) -> Response:
    portal = portal_of(request)
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    role = text(form, "perfil") if text(form, "perfil") in ("technician", "customer") else "technician"
    values = {"perfil": role, "login": text(form, "login", 64)}

    def again(code: int, errors: dict[str, str]) -> Response:
        return render(request, "entrar.html", status_code=code, title="Entrar", values=values, errors=errors,
                      summary=summary_of(errors, LOGIN_LABELS))

    if not portal.login_by_address.allow(accounts.key_of("addr", client_address(request))):
        return again(429, {"": "Muitas tentativas deste endereço; aguarde um minuto e tente de novo"})
    login_key, problem = _login_of(role, values["login"])
    password = form.get("senha") if isinstance(form.get("senha"), str) else ""
    if problem:
        return again(422, {"login": problem})
    if not password:
        return again(422, {"senha": "Informe a senha"})
    if not portal.login_by_account.allow(accounts.key_of(role, login_key or "")):
        return again(429, {"": "Muitas tentativas para este login; aguarde alguns minutos"})
    result = await run_in_threadpool(accounts.check_login, portal.gd.store, role, login_key, password[:accounts.PASSWORD_MAX])
    if not result.ok:
        log.info("portal login refused for account %s (locked=%s)", result.account_id, result.locked)
        return again(423 if result.locked else 401, {"senha": result.message})
    fresh = new_session()
    fresh.roles = (role,)
    if role == "technician":
        fresh.sub, fresh.council_key, fresh.name = f"rt:{login_key}", login_key, login_key
    else:
        fresh.sub, fresh.document, fresh.name = f"cliente:{result.account_id}", login_key, views.mask_document(login_key)
    fresh.exp = int(time.time()) + SESSION_TTL_S
    request.state.portal_session = fresh
    return go(request, "/portal/servicos")


@router.get("/entrar/oidc")
async def login_oidc(request: Request) -> Response:
    """"Entrar com a conta da distribuidora": to the identity provider (code + PKCE)."""
    portal = portal_of(request)
    if portal.oidc is None:
        return go(request, "/portal/entrar")
    try:
        url = await begin_login(session_of(request), portal.oidc, _redirect_uri(request))
    except Exception as error:  # noqa: BLE001
        log.warning("portal oidc discovery failed: %s", type(error).__name__)
        return problem_page(request, "Não foi possível falar com o provedor de identidade; tente de novo em instantes "
                                     "ou entre com login e senha.", 503, "Provedor de identidade indisponível")
    return go(request, url)


def _redirect_uri(request: Request) -> str:
    base = (portal_of(request).web.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/portal/oidc/retorno"


@router.get("/oidc/retorno")
async def oidc_return(request: Request) -> Response:
    """The provider's return: the token's claims make the portal session (API.md):
    ``gd_council_key`` with the technician role → an RT; ``gd_document`` with the customer
    role → a customer. Anyone else is not let in."""
    portal = portal_of(request)
    session = session_of(request)

    def fail(message: str) -> Response:
        return problem_page(request, message, 400, "Não foi possível entrar")

    if portal.oidc is None:
        session.login = None
        return fail("O login pela conta da distribuidora não está ativo. Entre com login e senha.")
    try:
        principal = await finish_login(session, request.query_params, portal.oidc, _redirect_uri(request),
                                       portal.gd.verifier.verify)
    except LoginFailed as error:
        return fail(error.message)
    fresh = new_session()
    if "technician" in principal.roles and principal.council_key:
        fresh.roles, fresh.council_key, fresh.name = ("technician",), principal.council_key, principal.council_key
    elif "customer" in principal.roles and principal.document:
        fresh.roles, fresh.document, fresh.name = ("customer",), principal.document, views.mask_document(principal.document)
    else:
        log.info("portal oidc login refused: no portal role")
        return fail("Sua conta da distribuidora não é de Responsável Técnico (com registro no conselho) nem de "
                    "cliente (com CPF/CNPJ). Entre com login e senha ou procure a distribuidora.")
    fresh.sub, fresh.exp = principal.id, int(time.time()) + SESSION_TTL_S
    request.state.portal_session = fresh
    return go(request, "/portal/servicos")


@router.post("/sair")
async def logout(request: Request) -> Response:
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    request.state.portal_session = new_session()
    session_of(request).flash = "Você saiu do portal."
    return go(request, "/portal/entrar")


# --- RT registration -------------------------------------------------------------------------

RT_LABELS = {"name": "Nome completo", "cpf": "CPF", "email": "E-mail", "phone": "Telefone", "council": "Conselho",
             "uf": "UF do registro", "registration": "Número do registro", "title": "Título profissional"}


@router.get("/cadastro-rt")
async def registration_page(request: Request) -> Response:
    return render(request, "cadastro_rt.html", title="Cadastro de Responsável Técnico",
                  values={"council": "CREA", "uf": "MG"}, errors={}, summary=[])


@router.post("/cadastro-rt")
async def register(request: Request) -> Response:
    from gd_client import GdClient, GdRefused, GdUnavailable

    portal = portal_of(request)
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    values = {k: text(form, k, 300) for k in RT_LABELS}

    def again(code: int, errors: dict[str, str]) -> Response:
        return render(request, "cadastro_rt.html", status_code=code, title="Cadastro de Responsável Técnico",
                      values=values, errors=errors, summary=summary_of(errors, RT_LABELS))

    if text(form, "site"):  # the honeypot: hidden from people, filled by robots
        log.info("portal registration dropped by the honeypot")
        return again(422, {"": "Não foi possível registrar o cadastro. Recarregue a página e tente de novo."})
    if not portal.registrations.allow(accounts.key_of("reg", client_address(request))):
        return again(429, {"": "Muitos cadastros enviados deste endereço; aguarde alguns minutos"})
    raw = {k: v for k, v in values.items() if v}
    parsed, problems = parse_or_problems(TechnicianInput, raw)
    if problems:
        return again(422, field_problems(problems, set(RT_LABELS)))
    workflow_id = ids.technician_id(parsed.council, parsed.uf, parsed.registration)
    found = await run_in_threadpool(intake, portal.gd, "technician", workflow_id, raw)
    if found:
        return again(422, field_problems(found, set(RT_LABELS)))
    existing = await portal.gd.query_status(workflow_id)
    if existing is not None and existing.get("status") in ("PENDING_REVIEW", "APPROVED"):
        return again(409, {"registration": f"Já existe um cadastro {views.STATUS_TEXT.get(existing['status'], '').lower() or 'ativo'} "
                                           f"para {parsed.key}; use \"Esqueci a senha\" se já foi aprovado"})
    try:
        st = await GdClient(portal.gd.temporal(), portal.gd.settings).start_technician(parsed)
    except GdUnavailable:
        return again(503, {"": "O sistema de cadastro está indisponível; tente de novo em instantes"})
    except GdRefused as error:
        return again(422, field_problems(error.problems, set(RT_LABELS)) or {"": error.message})
    status = st.model_dump(mode="json")
    return render(request, "recibo_rt.html", title="Cadastro recebido", key=parsed.key, st=status,
                  due=views.due_text(status.get("due_at")), email=views.mask_email(parsed.email),
                  senders=(portal.gd.settings.sender_agv, portal.gd.settings.sender_apr, portal.gd.settings.sender_partweb))


# --- passwords: set from a link, first access, forgotten -------------------------------------


@router.get("/definir-senha")
@router.get("/DefinirSenha.aspx")
async def set_password_page(request: Request) -> Response:
    token = request.query_params.get("token", "")[:200]
    return render(request, "definir_senha.html", title="Registrar a senha", token=token, values={}, errors={}, summary=[])


PASSWORD_LABELS = {"perfil": "Você é", "login": "Login", "senha": "Nova senha", "confirmacao": "Repita a senha", "token": "Código"}


@router.post("/definir-senha")
async def set_password(request: Request) -> Response:
    from activities.mail_secrets import SecretRefused, redeem_secret

    portal = portal_of(request)
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    token = text(form, "token", 200)
    role = text(form, "perfil") if text(form, "perfil") in ("technician", "customer") else "technician"
    values = {"perfil": role, "login": text(form, "login", 64)}
    password = form.get("senha") if isinstance(form.get("senha"), str) else ""
    again_pw = form.get("confirmacao") if isinstance(form.get("confirmacao"), str) else ""

    def again(code: int, errors: dict[str, str]) -> Response:
        return render(request, "definir_senha.html", status_code=code, title="Registrar a senha", token=token,
                      values=values, errors=errors, summary=summary_of(errors, PASSWORD_LABELS))

    if not portal.links.allow(accounts.key_of("set", client_address(request))):
        return again(429, {"": "Muitas tentativas; aguarde alguns minutos"})
    login_key, problem = _login_of(role, values["login"])
    errors: dict[str, str] = {}
    if not token:
        errors["token"] = "Informe o código recebido por e-mail"
    if problem:
        errors["login"] = problem
    rule = accounts.password_problem(password, values["login"])
    if rule:
        errors["senha"] = rule
    elif password != again_pw:
        errors["confirmacao"] = "As duas senhas não são iguais"
    if errors:
        return again(422, errors)
    # A portal link (first access, forgotten password) …
    if await run_in_threadpool(accounts.link_is_open, portal.gd.store, token):
        owner = await run_in_threadpool(accounts.redeem_link, portal.gd.store, token, password)
        if owner is None or owner.role != role or owner.login != login_key:
            return again(422, {"login": "Este código não é deste login (confira o login do e-mail)"})
    # … or the APR password-setting token of the RT's third e-mail (single use, 72 h).
    elif role == "technician":
        try:
            await run_in_threadpool(redeem_secret, portal.gd.store, login_key, "apr_password_token", token)
        except SecretRefused as error:
            return again(422, {"token": str(error).capitalize()})
        await run_in_threadpool(accounts.set_password, portal.gd.store, role, login_key, password)
    else:
        return again(422, {"token": "Código inválido ou expirado: peça um novo em \"Primeiro acesso\""})
    session_of(request).flash = "Senha registrada. Entre com o seu login e a nova senha."
    return go(request, "/portal/entrar")


LINK_LABELS = {"perfil": "Você é", "login": "Login", "email": "E-mail"}


@router.get("/esqueci-senha")
@router.get("/primeiro-acesso")
async def link_page(request: Request) -> Response:
    first = request.url.path.endswith("primeiro-acesso")
    return render(request, "link_senha.html", title="Primeiro acesso do cliente" if first else "Esqueci a senha",
                  first=first, values={"perfil": "customer" if first else "technician"}, errors={}, summary=[], sent=False)


@router.post("/esqueci-senha")
@router.post("/primeiro-acesso")
async def send_password_link(request: Request) -> Response:
    portal = portal_of(request)
    first = request.url.path.endswith("primeiro-acesso")
    title = "Primeiro acesso do cliente" if first else "Esqueci a senha"
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    role = text(form, "perfil") if text(form, "perfil") in ("technician", "customer") else "customer"
    values = {"perfil": role, "login": text(form, "login", 64), "email": text(form, "email", 254)}

    def page(code: int, errors: dict[str, str], sent: bool = False) -> Response:
        return render(request, "link_senha.html", status_code=code, title=title, first=first, values=values,
                      errors=errors, summary=summary_of(errors, LINK_LABELS), sent=sent)

    if text(form, "site"):
        return page(422, {"": "Não foi possível enviar. Recarregue a página e tente de novo."})
    login_key, problem = _login_of(role, values["login"])
    if problem:
        return page(422, {"login": problem})
    if role == "customer" and "@" not in values["email"]:
        return page(422, {"email": "Informe o e-mail usado na solicitação"})
    if not (portal.links.allow(accounts.key_of("link", client_address(request)))
            and portal.links.allow(accounts.key_of("link", role, login_key or ""))):
        return page(429, {"": "Muitos pedidos de link; aguarde alguns minutos"})
    to = None
    if role == "technician":
        to = await run_in_threadpool(data.technician_email, portal.gd.store, login_key)
    elif await data.customer_email_matches(portal, login_key, values["email"]):
        to = values["email"]
    if to:
        token = await run_in_threadpool(accounts.issue_link, portal.gd.store, role, login_key)
        base = (portal.web.public_url or str(request.base_url)).rstrip("/")
        link = f"{base}/portal/definir-senha?token={token}"
        who = "o seu registro no conselho" if role == "technician" else "o seu CPF/CNPJ"
        body = (f"Para {'criar' if first else 'registrar uma nova'} senha do portal de geração distribuída, abra o link:\n\n"
                f"{link}\n\nSe o link não abrir, use o código {token} na página \"Registrar a senha\".\n"
                f"Login: {who}. O link vale por 72 horas e uma única vez. "
                "Se você não pediu, ignore este e-mail: a sua senha atual continua valendo.\n")
        await data.send_link(portal.gd.settings, to, "Registre a sua senha do portal de GD", body)
        log.info("portal password link issued (%s)", role)
    # The same answer either way: the page never tells whether a login or e-mail exists.
    return page(200, {}, sent=True)


