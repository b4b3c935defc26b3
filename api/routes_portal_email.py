"""The portal page that confirms an RT's new e-mail (issue 17 item 4): the link of the code
e-mail (``<GD_APR_URL>/rt/email/confirmar?rt=KEY&codigo=CODE``, activities/mail.py) opens
it. No login: holding the code proves the new address (it was sent only there).

GET shows what will change (the new address masked; not the current one) and a "Confirmar novo e-mail" button;
only the POST (with the session's CSRF token) sends ``confirm_email`` to the RT's
TechnicianEmailChange, so a mail scanner that follows the link changes nothing. A wrong,
expired or used code is the workflow's refusal, in pt-BR; nothing changes. Rate-limited
per client address like the portal's login, and per RT. No address or code is logged.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import portal_accounts as accounts
from api import web_views as views
from api.routes_portal import (
    CSRF_TEXT,
    client_address,
    form_of,
    log,
    portal_of,
    problem_page,
    render,
    session_of,
    text,
)
from api.web_session import csrf_ok

router = APIRouter(prefix="/portal", include_in_schema=False)

TITLE = "Confirmar o novo e-mail"
_CODE = re.compile(r"\d{6}")
GONE = {
    "CONFIRMED": "Este e-mail já foi confirmado: as respostas da Cemig já vão para ele. Nada mais a fazer.",
    "EXPIRED": "O código expirou (vale 72 horas) e nada mudou. Peça uma nova troca de e-mail à Cemig.",
    "LOCKED": "As tentativas deste código se esgotaram e nada mudou. Peça uma nova troca de e-mail à Cemig.",
}
NOTHING = "Não há troca de e-mail aguardando confirmação para este registro; nada mudou."


def _key(raw: str) -> str | None:
    from gd_client import GdRefused, parse_technician_key

    try:
        return parse_technician_key(raw[:64]).key
    except GdRefused:
        return None


def _limited(request: Request, key: str) -> bool:
    portal = portal_of(request)
    return not (portal.login_by_address.allow(accounts.key_of("addr", client_address(request)))
                and portal.login_by_account.allow(accounts.key_of("email-code", key)))


async def _change(request: Request, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """(what the page shows, None) while a change waits; (None, why not) otherwise."""
    from gd_client import GdClient, GdNotFound

    gd = portal_of(request).gd
    try:
        change = await GdClient(gd.temporal(), gd.settings).email_change_status(key)
    except GdNotFound:
        return None, NOTHING
    if change.status != "AWAITING_CONFIRMATION":
        return None, GONE.get(change.status, NOTHING)
    # Not the current address, even masked: whoever holds a link (or guesses a council key)
    # learns nothing of the registration before the code is checked on the POST.
    return {"key": key, "new": change.new_email_hint, "expires_at": change.expires_at}, None


def _page(request: Request, status_code: int, **context: Any) -> Response:
    return render(request, "confirmar_email.html", status_code=status_code, title=TITLE,
                  **{"change": None, "error": None, "done": None, "rt": "", "codigo": "", **context})


@router.get("/rt/email/confirmar")
async def confirm_page(request: Request) -> Response:
    raw_key, code = request.query_params.get("rt", ""), request.query_params.get("codigo", "")[:12]
    key = _key(raw_key)
    if key is None or not _CODE.fullmatch(code):
        return _page(request, 422, error="Link incompleto: confira se o endereço do e-mail foi copiado inteiro "
                                         "(ele termina com o código de 6 dígitos).")
    if _limited(request, key):
        return _page(request, 429, error="Muitas tentativas; aguarde alguns minutos e abra o link de novo.")
    change, why = await _change(request, key)
    if change is None:
        return _page(request, 409, error=why)
    return _page(request, 200, change=change, rt=key, codigo=code)


@router.post("/rt/email/confirmar")
async def confirm(request: Request) -> Response:
    from gd_client import GdClient, GdRefused, GdUnavailable

    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    key, code = _key(text(form, "rt", 64)), text(form, "codigo", 12)
    if key is None or not _CODE.fullmatch(code):
        return _page(request, 422, error="Link incompleto: abra de novo o link do e-mail.")
    if _limited(request, key):
        return _page(request, 429, error="Muitas tentativas; aguarde alguns minutos e tente de novo.")
    change, why = await _change(request, key)
    if change is None:
        return _page(request, 409, error=why)
    gd = portal_of(request).gd
    # The RT itself: whoever holds the code sent to the new address.
    actor = {"id": key, "role": "technician", "council_key": key}
    try:
        await GdClient(gd.temporal(), gd.settings).confirm_technician_email(key, actor, code)
    except GdRefused as error:
        message = re.sub(r"^code: ", "", error.message)
        return _page(request, 422, change=change, rt=key, codigo=code,
                     error=f"Não foi possível confirmar: {message}.")
    except GdUnavailable:
        return _page(request, 503, change=change, rt=key, codigo=code,
                     error="O sistema não respondeu a tempo; tente de novo em instantes.")
    log.info("portal: RT e-mail change confirmed by link")
    return _page(request, 200, done=change)


# --- "Meus dados": the logged-in RT asks for the change itself ------------------------------

ACCOUNT_TITLE = "Meus dados"


async def _account(request: Request, user: Any) -> dict[str, Any]:
    """The RT's key, current address (masked), pending change, and whether the rules table
    lets the RT ask now (the registration status' ``actions``)."""
    from gd_client import GdClient, GdNotFound
    from models import ids
    from models.names import Updates

    gd = portal_of(request).gd
    key = user.council_key
    status = await gd.query_status(ids.TECHNICIAN_PREFIX + key) or {}
    roles = next((a["roles"] for a in status.get("actions") or [] if a["update"] == Updates.CHANGE_EMAIL), [])
    pending = None
    try:
        change = await GdClient(gd.temporal(), gd.settings).email_change_status(key)
        if change.status == "AWAITING_CONFIRMATION":
            pending = change
    except GdNotFound:
        pending = None
    current = await run_in_threadpool(gd.store.technician_email, key)
    return {"key": key, "current": views.mask_email(current), "pending": pending,
            "can_change": "technician" in roles}


def _rt_or_login(request: Request) -> Any:
    from api.routes_portal import user_or_login

    user = user_or_login(request)
    if isinstance(user, Response):
        return user
    if "technician" not in user.roles or not user.council_key:
        return problem_page(request, "Meus dados do RT: entre com o login de Responsável Técnico.", 403)
    return user


@router.get("/meus-dados")
async def account_page(request: Request) -> Response:
    user = _rt_or_login(request)
    if isinstance(user, Response):
        return user
    return render(request, "meus_dados.html", title=ACCOUNT_TITLE, account=await _account(request, user),
                  values={}, errors={}, summary=[], nonce=uuid.uuid4().hex)


@router.post("/meus-dados/email")
async def account_change_email(request: Request) -> Response:
    """``change_email`` as the logged-in RT (the actor from the session, never the form)."""
    from api.deps import actor_of
    from gd_client import GdClient, GdRefused, GdUnavailable

    user = _rt_or_login(request)
    if isinstance(user, Response):
        return user
    form = await form_of(request)
    if form is None or not csrf_ok(session_of(request), form.get("csrf")):
        return problem_page(request, CSRF_TEXT)
    email = text(form, "email", 300)
    account = await _account(request, user)

    def again(code: int, message: str) -> Response:
        return render(request, "meus_dados.html", status_code=code, title=ACCOUNT_TITLE, account=account,
                      values={"email": email}, errors={"email": message}, summary=[("email", message)],
                      nonce=uuid.uuid4().hex)

    if not account["can_change"]:
        return again(409, "A troca de e-mail não é possível na situação atual do seu cadastro")
    if not email:
        return again(422, "Informe o novo e-mail")
    portal = portal_of(request)
    if not portal.links.allow(accounts.key_of("email-change", account["key"])):
        return again(429, "Muitos pedidos de troca; aguarde alguns minutos")
    nonce = text(form, "pedido", 64)
    update_id = f"portal-{nonce}" if re.fullmatch(r"[A-Za-z0-9-]{1,64}", nonce) else None
    try:
        change = await GdClient(portal.gd.temporal(), portal.gd.settings).change_technician_email(
            account["key"], actor_of(user, "technician"), email, update_id)
    except GdRefused as error:
        return again(422, re.sub(r"^(email|change_email): ", "", error.message))
    except GdUnavailable:
        return again(503, "O sistema não respondeu a tempo; tente de novo em instantes")
    session_of(request).flash = (f"Enviamos um código e um link para {change.new_email_hint}; o endereço atual "
                                 "recebeu um aviso. Nada muda até você confirmar pelo link do e-mail.")
    from api.routes_portal import go

    return go(request, "/portal/meus-dados")
