"""``/api/v1/technicians``: an RT's registration (TechnicianRegistration): create, read,
approve/reject; and the correction of its e-mail (``actions/change_email`` then
``actions/confirm_email`` with the code sent to the new address: TechnicianEmailChange)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.deps import (
    PREFIX,
    actor_of,
    gd_of,
    intake,
    parse,
    principal_of,
    read_json,
    role_for,
    status_response,
    technician_key,
)
from api.openapi import PROBLEM_RESPONSES, json_body
from api.problems import ApiProblem, invalid
from api.updates import idempotency_key, run_update, snake
from domain import rules
from models import ids
from models.common import REFUSAL_HTTP_STATUS
from models.names import Updates
from models.technician import (
    ChangeEmailArgs,
    ConfirmEmailArgs,
    TechnicianApproveArgs,
    TechnicianInput,
    TechnicianRejectArgs,
)

router = APIRouter()

# Roles from the rules table (domain/rules.py); argument models from the contract.
_ARGS = {
    Updates.APPROVE: TechnicianApproveArgs, Updates.REJECT: TechnicianRejectArgs,
    Updates.CHANGE_EMAIL: ChangeEmailArgs, Updates.CONFIRM_EMAIL: ConfirmEmailArgs,
}
TECHNICIAN_ACTIONS = {update: (_ARGS[update], rule.roles) for update, rule in rules.TECHNICIAN.updates.items()}
# Served by the RT's TechnicianEmailChange workflow, not by the registration (which has
# ended once approved).
EMAIL_UPDATES = (Updates.CHANGE_EMAIL, Updates.CONFIRM_EMAIL)


@router.post(
    f"{PREFIX}/technicians", status_code=201, tags=["responsáveis técnicos"], responses=PROBLEM_RESPONSES,
    openapi_extra=json_body(TechnicianInput),
)
async def create_technician(request: Request) -> Response:
    """Cadastro de RT (o próprio RT ou um sistema)."""
    from gd_client import GdClient, GdRefused, GdUnavailable

    gd = gd_of(request)
    principal = await principal_of(request, "create_technician")
    role = role_for(request, principal, ("system", "technician"), "cadastrar RT")
    raw = await read_json(request)
    parsed = parse(TechnicianInput, raw)
    if role == "technician" and principal.council_key != parsed.key:
        raise ApiProblem(403, "party_refused", "o RT só cadastra a si mesmo (gd_council_key do token)")
    workflow_id = ids.technician_id(parsed.council, parsed.uf, parsed.registration)
    request.state.request_id = parsed.key
    problems = await run_in_threadpool(intake, gd, "technician", workflow_id, raw)
    if problems:
        raise invalid(problems)
    try:
        st = await GdClient(gd.temporal(), gd.settings).start_technician(parsed)
    except GdUnavailable:
        raise gd.unavailable("o worker") from None
    except GdRefused as error:
        raise invalid(error.problems, error.message) from None
    return status_response(st.model_dump(mode="json"), 201, location=f"{PREFIX}/technicians/{parsed.key}")


async def readable_technician(request: Request, principal: Principal, council_key: str) -> tuple[str, dict[str, Any]]:
    gd = gd_of(request)
    tech = technician_key(council_key)
    workflow_id = ids.technician_id(tech.council, tech.uf, tech.registration)
    missing = ApiProblem(404, "not_found", f"responsável técnico {tech.key} não encontrado")
    readers = ("analyst", "supervisor", "auditor", "system")
    if not (any(r in readers for r in principal.roles)
            or ("technician" in principal.roles and principal.council_key == tech.key)):
        raise missing
    status = await gd.query_status(workflow_id)
    if status is None:
        raise missing
    return workflow_id, status


@router.get(f"{PREFIX}/technicians/{{council_key}}", tags=["responsáveis técnicos"], responses=PROBLEM_RESPONSES)
async def get_technician(request: Request, council_key: str) -> Response:
    principal = await principal_of(request, "read_technician", council_key[:64])
    _, status = await readable_technician(request, principal, council_key)
    return status_response(status, 200)


@router.post(
    f"{PREFIX}/technicians/{{council_key}}/actions/{{update}}", tags=["responsáveis técnicos"],
    responses=PROBLEM_RESPONSES, openapi_extra=json_body(None),
)
async def technician_action(request: Request, council_key: str, update: str) -> Response:
    """approve | reject (analista, supervisor); change_email | confirm_email (o próprio RT,
    analista, supervisor)."""
    gd = gd_of(request)
    if update not in TECHNICIAN_ACTIONS:
        raise ApiProblem(404, "unknown_action", f"ação desconhecida; aceitas: {', '.join(TECHNICIAN_ACTIONS)}")
    principal = await principal_of(request, f"technician_{update}", council_key[:64])
    model, allowed = TECHNICIAN_ACTIONS[update]
    role = role_for(request, principal, allowed, update)
    tech = technician_key(council_key)
    body = await read_json(request)
    args = parse(model, {**body, "actor": actor_of(principal, role)}).model_dump(mode="json", exclude_none=True)
    workflow_id = ids.technician_id(tech.council, tech.uf, tech.registration)
    if role == "technician" and principal.council_key != tech.key:
        raise ApiProblem(403, "party_refused", f"{update}: o RT só age sobre o próprio cadastro (gd_council_key do token)")
    status = await gd.query_status(workflow_id)
    if status is None:
        raise ApiProblem(404, "not_found", f"responsável técnico {tech.key} não encontrado")
    if update in EMAIL_UPDATES:
        return await email_action(request, tech.key, update, args)
    return await run_update(request, workflow_id, update, args, status)


async def email_action(request: Request, key: str, update: str, args: dict[str, Any]) -> Response:
    """change_email → 202 (a code went to the new address; nothing changed yet);
    confirm_email → 200 (the new address is the RT's). Refusals as any update's.
    ``Idempotency-Key`` is the update's id (API.md): a retried change_email answers the
    first outcome and sends no second code or notice."""
    from gd_client import GdClient, GdRefused, GdUnavailable

    gd = gd_of(request)
    client = GdClient(gd.temporal(), gd.settings)
    update_id = idempotency_key(request)
    try:
        if update == Updates.CHANGE_EMAIL:
            st = await client.change_technician_email(key, args["actor"], args["email"], update_id)
        else:
            st = await client.confirm_technician_email(key, args["actor"], args["code"], update_id)
    except GdUnavailable:
        raise gd.unavailable("o worker") from None
    except GdRefused as error:
        kind = getattr(error, "kind", "InputRefused")
        raise ApiProblem(REFUSAL_HTTP_STATUS.get(kind, 422), snake(kind), error.message) from None
    return status_response(st.model_dump(mode="json"), 202 if update == Updates.CHANGE_EMAIL else 200)
