"""``/api/v1/requests/{request_id}/beneficiaries``: the UCs recebedoras of a request
(BeneficiaryRegistration): the plant holder (or a system) registers, analysts decide."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.access_requests import readable_request
from api.deps import (
    PREFIX,
    actor_of,
    check_request_id,
    gd_of,
    intake,
    is_party,
    parse,
    principal_of,
    read_json,
    role_for,
    status_response,
)
from api.openapi import PROBLEM_RESPONSES, json_body
from api.problems import ApiProblem, invalid
from api.updates import run_update
from domain import rules
from models import ids
from models.beneficiaries import BeneficiaryInput, ConfirmArgs, RejectArgs
from models.names import Updates

router = APIRouter()

# Roles from the rules table (domain/rules.py); argument models from the contract.
_ARGS = {Updates.CONFIRM: ConfirmArgs, Updates.REJECT: RejectArgs}
BENEFICIARY_ACTIONS = {update: (_ARGS[update], rule.roles) for update, rule in rules.BENEFICIARIES.updates.items()}


@router.post(
    f"{PREFIX}/requests/{{request_id}}/beneficiaries", status_code=201, tags=["UCs recebedoras"],
    responses=PROBLEM_RESPONSES, openapi_extra=json_body(BeneficiaryInput),
)
async def create_beneficiaries(request: Request, request_id: str) -> Response:
    """Cadastro de UCs recebedoras (o cliente da solicitação, ou um sistema)."""
    from gd_client import GdClient, GdRefused, GdUnavailable

    gd = gd_of(request)
    principal = await principal_of(request, "create_beneficiaries", request_id)
    role = role_for(request, principal, ("customer", "system"), "cadastrar UCs recebedoras")
    workflow_id = ids.access_request_id(check_request_id(request_id))
    body = await read_json(request)
    body.setdefault("request_id", request_id)
    if body.get("request_id") != request_id:
        raise ApiProblem(422, "invalid_fields", "request_id: difere do da URL",
                         [{"field": "request_id", "code": "mismatch", "message": "difere do request_id da URL"}])
    raw = {**body, "actor": actor_of(principal, role)}
    parsed = parse(BeneficiaryInput, raw)
    if await gd.query_status(workflow_id) is None:
        raise ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
    facts = await gd.facts(workflow_id)
    if role == "customer":
        if not is_party(principal, "customer", facts):
            raise ApiProblem(403, "party_refused", "só o titular da usina cadastra as UCs recebedoras")
    if facts.customer_document and parsed.holder_document != facts.customer_document:
        raise ApiProblem(403, "party_refused", "holder_document: deve ser o titular da usina (o cliente da solicitação)")
    bworkflow = ids.beneficiaries_id(request_id)
    problems = await run_in_threadpool(intake, gd, "beneficiaries", bworkflow, raw)
    if problems:
        raise invalid(problems)
    try:
        st = await GdClient(gd.temporal(), gd.settings).start_beneficiaries(parsed)
    except GdUnavailable:
        raise gd.unavailable("o worker") from None
    except GdRefused as error:
        raise invalid(error.problems, error.message) from None
    return status_response(st.model_dump(mode="json"), 201, location=f"{PREFIX}/requests/{request_id}/beneficiaries")


@router.get(f"{PREFIX}/requests/{{request_id}}/beneficiaries", tags=["UCs recebedoras"], responses=PROBLEM_RESPONSES)
async def get_beneficiaries(request: Request, request_id: str) -> Response:
    gd = gd_of(request)
    principal = await principal_of(request, "read_beneficiaries", request_id)
    await readable_request(request, principal, request_id)
    status = await gd.query_status(ids.beneficiaries_id(request_id))
    if status is None:
        raise ApiProblem(404, "not_found", f"nenhum cadastro de UCs recebedoras para {request_id}")
    return status_response(status, 200)


@router.post(
    f"{PREFIX}/requests/{{request_id}}/beneficiaries/actions/{{update}}", tags=["UCs recebedoras"],
    responses=PROBLEM_RESPONSES, openapi_extra=json_body(None),
)
async def beneficiaries_action(request: Request, request_id: str, update: str) -> Response:
    """confirm | reject (analista, supervisor)."""
    gd = gd_of(request)
    if update not in BENEFICIARY_ACTIONS:
        raise ApiProblem(404, "unknown_action", "ação desconhecida; aceitas: confirm, reject")
    principal = await principal_of(request, f"beneficiaries_{update}", request_id)
    model, allowed = BENEFICIARY_ACTIONS[update]
    role = role_for(request, principal, allowed, update)
    check_request_id(request_id)
    body = await read_json(request)
    args = parse(model, {**body, "actor": actor_of(principal, role)}).model_dump(mode="json", exclude_none=True)
    workflow_id = ids.beneficiaries_id(request_id)
    status = await gd.query_status(workflow_id)
    if status is None:
        raise ApiProblem(404, "not_found", f"nenhum cadastro de UCs recebedoras para {request_id}")
    return await run_update(request, workflow_id, update, args, status)
