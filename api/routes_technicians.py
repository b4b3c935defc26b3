"""``POST /api/v1/technicians/{council_key}/password``: the RT sets its APR password with
the token of its third approval e-mail (issue 17 item 8; activities/passwords.py).

The token is the credential (the RT has no password yet): no bearer token is needed, the
token is used once and expires in 72 h, and only the password's scrypt hash is stored.
A refusal is a problem+json with a pt-BR ``detail`` and is audited like any other.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem

router = APIRouter()


@router.post("/api/v1/technicians/{council_key}/password", status_code=204, tags=["RT"])
async def set_password(request: Request, council_key: str) -> Response:
    """Registra a senha do APR Web: {"token": "...", "password": "..."} (código de uso único)."""
    from activities.passwords import PasswordRefused, SecretRefused, set_apr_password

    gd = request.app.state.gd
    request.state.action = "set_apr_password"
    request.state.request_id = None
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or set(body) != {"token", "password"} or not all(
            isinstance(body[k], str) for k in ("token", "password")):
        raise ApiProblem(422, "invalid_fields", "corpo: esperado {\"token\": texto, \"password\": texto}",
                         [{"field": "body", "code": "shape", "message": "token e password, ambos texto"}])
    try:
        await run_in_threadpool(set_apr_password, gd.store, council_key.strip().upper(),
                                body["token"].strip(), body["password"])
    except PasswordRefused as error:
        field = str(error).split(":", 1)[0]
        raise ApiProblem(422, "invalid_fields", str(error),
                         [{"field": field, "code": "refused", "message": str(error)}]) from None
    except SecretRefused as error:
        raise ApiProblem(403, "token_refused", f"token: {error}") from None
    return Response(status_code=204)
