"""``/api/v1/requests``: open a request (validated before any workflow starts), read it,
act on it (``actions/{update}``), its timeline and history, and the lists."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.auth import Principal
from api.deps import (
    AUDITORS,
    PARTY_ROLES,
    PREFIX,
    STAFF_READERS,
    START_TIMEOUT_S,
    Facts,
    Gd,
    actor_of,
    check_request_id,
    gd_of,
    intake,
    is_party,
    may_read,
    parse,
    principal_of,
    read_json,
    role_for,
    status_response,
    technician_key,
)
from api.openapi import PROBLEM_RESPONSES, json_body
from api.problems import ApiProblem, invalid
from api.updates import run_update
from domain import rules
from listing import STORE_KINDS
from models import ids
from models.access import UPDATE_ARGS, AccessRequestInput, input_digest
from models.common import ActorArgs
from models.names import Workflows

router = APIRouter()

# update → (argument model, roles allowed): API.md's table.
# Which update the API accepts, who may send it and whether a party must: the rules table
# (domain/rules.py) says; the argument model comes from the contract's UPDATE_ARGS.
ACCESS_ACTIONS: dict[str, tuple[type[ActorArgs], tuple[str, ...]]] = {
    update: (UPDATE_ARGS[update], rule.roles) for update, rule in rules.ACCESS.updates.items()
}


@router.post(
    f"{PREFIX}/requests", status_code=201, tags=["solicitações"], responses=PROBLEM_RESPONSES,
    openapi_extra=json_body(AccessRequestInput),
)
async def create_request(request: Request) -> Response:
    """Abre uma solicitação ou consulta (AccessRequest); o request_id é a chave de idempotência."""
    gd = gd_of(request)
    principal = await principal_of(request, "create_request")
    role = role_for(request, principal, ("customer", "technician", "system"), "criar solicitação")
    raw = await read_json(request)
    parsed = parse(AccessRequestInput, raw)
    request.state.request_id = parsed.request_id
    if role == "customer" and (principal.document is None or principal.document != parsed.customer.document):
        raise ApiProblem(403, "party_refused", "customer.document: o cliente só abre solicitações em seu próprio CPF/CNPJ")
    if role == "technician" and (principal.council_key is None or parsed.technician is None
                                 or principal.council_key != parsed.technician.key):
        raise ApiProblem(403, "party_refused", "technician: o RT só abre solicitações em que ele é o responsável técnico")
    workflow_id = ids.access_request_id(parsed.request_id)
    existing = await gd.query_status(workflow_id)
    if existing is not None:
        return _same_or_conflict(existing, parsed, workflow_id)
    problems = await run_in_threadpool(intake, gd, "access", workflow_id, raw)
    if problems:
        raise invalid(problems)
    client = gd.temporal()
    try:
        await client.start_workflow(
            Workflows.ACCESS_REQUEST, raw, id=workflow_id, task_queue=gd.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass
    except RPCError as error:
        raise gd.rpc_problem(error) from error
    status = await wait_intake(gd, workflow_id, lambda s: s.get("status") != "RECEIVED")
    await _listed_soon(gd, workflow_id, status.get("status"))
    if status.get("input_digest") and status["input_digest"] != input_digest(parsed):
        raise _reused(parsed.request_id, workflow_id)
    return status_response(status, 201, location=f"{PREFIX}/requests/{parsed.request_id}")


def _same_or_conflict(existing: dict[str, Any], parsed: AccessRequestInput, workflow_id: str) -> Response:
    if existing.get("input_digest") and existing["input_digest"] != input_digest(parsed):
        raise _reused(parsed.request_id, workflow_id)
    return status_response(existing, 200, location=f"{PREFIX}/requests/{parsed.request_id}")


def _reused(request_id: str, workflow_id: str) -> ApiProblem:
    return ApiProblem(409, "request_id_reused",
                      f"request_id: '{request_id}' já foi usado para outra solicitação com conteúdo diferente")


# The sequence of the last action this API process sent to each request (bounded):
# a GET after one's own POST never gets the store's older status (read-your-writes).
_ACTED: OrderedDict[str, int] = OrderedDict()
_ACTED_MAX = 10_000


def _acted(workflow_id: str, response: Response) -> None:
    etag = (response.headers.get("etag") or "").strip('"')
    if not etag.isdigit():
        return
    _ACTED[workflow_id] = int(etag)
    _ACTED.move_to_end(workflow_id)
    while len(_ACTED) > _ACTED_MAX:
        _ACTED.popitem(last=False)


async def stored_status(gd: Gd, workflow_id: str) -> dict[str, Any] | None:
    """The request's status from the store (``request_status``, written by each step's
    ``record_transition``), when it can stand for the query's answer: settled (no effect
    pending) and not older than an action this process sent. ``actions`` and
    ``next_actor`` from the rules table as it is now. None: ask the workflow."""
    import sqlalchemy as sql

    from activities.tables import RequestStatus

    table = RequestStatus.__table__
    statement = sql.select(table.c.sequence, table.c.status).where(table.c.workflow_id == workflow_id)

    def read() -> Any:
        try:
            with gd.store.connection(write=False) as conn:
                return conn.execute(statement).first()
        except Exception:  # noqa: BLE001 - no store (or before 0010): the workflow answers
            return None

    row = await run_in_threadpool(read)
    if row is None:
        return None
    sequence, status = row
    if (not isinstance(status, dict) or "status" not in status or status.get("pending_effects")
            or sequence < _ACTED.get(workflow_id, 0)):
        return None
    name = status.get("status") or ""
    return {**status, "sequence": sequence, "next_actor": rules.ACCESS.next_actor(name),
            "actions": rules.ACCESS.actions(name)}


async def readable_request(request: Request, principal: Principal, request_id: str,
                           *, stored: bool = False) -> tuple[str, dict[str, Any], Facts | None]:
    """The request's status, and its parties' facts for a party's read (404 when the
    principal may not read it). ``stored``: the store's status may answer."""
    gd = gd_of(request)
    workflow_id = ids.access_request_id(check_request_id(request_id))
    status = await stored_status(gd, workflow_id) if stored else None
    request.state.status_source = "store" if status is not None else "workflow"
    if status is None:
        status = await gd.query_status(workflow_id)
    missing = ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
    if status is None:
        raise missing
    facts = None
    if not any(r in STAFF_READERS for r in principal.roles):
        # A party's read: who the request's parties are comes from its first history page
        # (one more call the first time; staff read every request without it).
        facts = await gd.facts(workflow_id)
        if not may_read(principal, facts):
            raise missing
    return workflow_id, status, facts


@router.get(f"{PREFIX}/requests/{{request_id}}", tags=["solicitações"], responses=PROBLEM_RESPONSES)
async def get_request(
    request: Request, request_id: str,
    consistency: str = Query("stored", pattern="^(stored|strong)$",
                             description="strong: pergunta ao workflow (query status); "
                             "stored (padrão): a situação gravada no último passo"),
) -> Response:
    """A situação com ETag: a gravada no banco pelo último passo (``consistency=stored``,
    o padrão) ou a do workflow (``consistency=strong``, ou cabeçalho
    ``Cache-Control: no-cache``)."""
    principal = await principal_of(request, "read_request", request_id)
    strong = consistency == "strong" or "no-cache" in (request.headers.get("cache-control") or "").lower()
    _, status, _ = await readable_request(request, principal, request_id, stored=not strong)
    response = status_response(status, 200)
    response.headers["Gd-Status-Source"] = request.state.status_source
    return response


@router.post(
    f"{PREFIX}/requests/{{request_id}}/actions/{{update}}", tags=["solicitações"], responses=PROBLEM_RESPONSES,
    openapi_extra=json_body(None),
)
async def request_action(request: Request, request_id: str, update: str) -> Response:
    """Uma ação (update do contrato: register_apr, approve, suspend, …); sem actor no corpo."""
    gd = gd_of(request)
    if update not in ACCESS_ACTIONS:
        request.state.action = "unknown_action"
        raise ApiProblem(404, "unknown_action", f"ação desconhecida: {update[:64]}; aceitas: {', '.join(ACCESS_ACTIONS)}")
    principal = await principal_of(request, update, request_id)
    model, allowed = ACCESS_ACTIONS[update]
    role = role_for(request, principal, allowed, update)
    workflow_id = ids.access_request_id(check_request_id(request_id))
    body = await read_json(request)
    args = parse(model, {**body, "actor": actor_of(principal, role)}).model_dump(mode="json", exclude_none=True)
    status = None
    if role in PARTY_ROLES and rules.ACCESS.updates[update].party:
        facts = await gd.facts(workflow_id)
        if facts.kind is None and await gd.query_status(workflow_id) is None:
            raise ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
        if not is_party(principal, role, facts):
            raise ApiProblem(403, "party_refused", f"{update}: só {'o RT' if role == 'technician' else 'o cliente'} desta solicitação pode executar esta ação")
    response = await run_update(request, workflow_id, update, args, status)
    _acted(workflow_id, response)
    return response


@router.get(f"{PREFIX}/requests/{{request_id}}/timeline", tags=["solicitações"], responses=PROBLEM_RESPONSES)
async def timeline(request: Request, request_id: str) -> Response:
    """As etapas (linha do tempo) em JSON."""
    gd = gd_of(request)
    principal = await principal_of(request, "timeline", request_id)
    workflow_id, _, _ = await readable_request(request, principal, request_id)
    from audit import export as exports
    from audit import timeline as timelines

    try:
        loaded = await exports.fetch_chain(gd.temporal(), workflow_id)
        built = await timelines.build(loaded)
    except RPCError as error:
        raise gd.rpc_problem(error) from error
    return JSONResponse(json.loads(json.dumps(built.to_dict(), default=str)))


@router.get(f"{PREFIX}/requests/{{request_id}}/history", tags=["auditoria"], responses=PROBLEM_RESPONSES)
async def history(request: Request, request_id: str) -> Response:
    """Exportação do histórico (gd-history-export/1): auditor, supervisor."""
    gd = gd_of(request)
    principal = await principal_of(request, "history", request_id)
    role_for(request, principal, AUDITORS, "exportar histórico")
    workflow_id, _, _ = await readable_request(request, principal, request_id)
    from audit import export as exports

    try:
        loaded = await exports.fetch_chain(gd.temporal(), workflow_id)
    except RPCError as error:
        raise gd.rpc_problem(error) from error
    return Response(loaded.to_json(), media_type="application/json")

# lists -----------------------------------------------------------------------------
@router.get(f"{PREFIX}/requests", tags=["solicitações"], responses=PROBLEM_RESPONSES)
async def list_requests(
    request: Request,
    status: str | None = Query(None, max_length=400, description="status separados por vírgula"),
    overdue: bool = Query(False),
    due_within: int | None = Query(None, ge=0, le=3650),
    technician: str | None = Query(None, max_length=64),
    kind: str | None = Query(None, max_length=100),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=4096),
) -> Response:
    """Lista com filtros e cursor opaco; RT e cliente veem só as suas."""
    from gd_client import GdRefused, build_list_query, summary_from

    gd = gd_of(request)
    principal = await principal_of(request, "list_requests")
    role = role_for(request, principal, ("analyst", "supervisor", "inspector", "auditor", "system", "technician", "customer"), "listar")
    if role == "technician":
        if principal.council_key is None:
            raise ApiProblem(403, "party_refused", "listar: token de RT sem gd_council_key")
        if technician and technician_key(technician).key != principal.council_key:
            raise ApiProblem(403, "party_refused", "technician: o RT só lista as próprias solicitações")
        technician = principal.council_key
    if role == "customer" and principal.document is None:
        raise ApiProblem(403, "party_refused", "listar: token de cliente sem gd_document")
    try:
        query = build_list_query(status=status, overdue=overdue, due_within_days=due_within,
                                 technician=technician, kind=kind or None)
    except GdRefused as error:
        raise invalid(error.problems, error.message) from None
    scope = hashlib.sha256(f"{query}|{role}|{principal.id}".encode()).hexdigest()[:16]
    token = decode_cursor(cursor, scope) if cursor else None
    if role != "customer" and set(_kinds(kind)) <= set(STORE_KINDS):
        # Requests and inquiries: from the store's read model, by due date (listing.py
        # says how far behind the workflows it can be); a customer's own list needs the
        # parties of each row, which visibility's path checks.
        return await _list_from_store(gd, scope, token, limit, status=status, overdue=overdue,
                                      due_within_days=due_within, technician=technician, kind=kind or None)
    it = gd.temporal().list_workflows(query, page_size=limit, next_page_token=token)
    try:
        await it.fetch_next_page(page_size=limit)
    except RPCError as error:
        raise gd.rpc_problem(error) from error
    items = []
    for execution in it.current_page or []:
        row = summary_from(execution)
        if role == "customer" and not is_party(principal, "customer", await gd.facts(row.workflow_id)):
            continue
        items.append(row.model_dump(mode="json"))
    next_token = it.next_page_token
    return JSONResponse({"items": items, "next_cursor": encode_cursor(next_token, scope) if next_token else None})


async def _listed_soon(gd: Gd, workflow_id: str, status: str | None, wait_s: float = 2.0) -> None:
    """Until the store's read model (what the lists read) has the request in ``status``,
    at most ``wait_s``: whoever created it finds it in the list it reads next. Its
    ``record_transition`` is the first effect after intake; a store that is down only
    delays the answer by ``wait_s``."""
    import sqlalchemy as sql

    from activities.tables import RequestRecord

    req = RequestRecord.__table__
    statement = sql.select(req.c.status).where(req.c.workflow_id == workflow_id)

    def read() -> str | None:
        try:
            with gd.store.connection(write=False) as conn:
                return conn.execute(statement).scalar()
        except Exception:  # noqa: BLE001 - the store is down: the answer does not wait for it
            return status

    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait_s
    while await run_in_threadpool(read) != status and loop.time() < give_up:
        await asyncio.sleep(0.05)


def _kinds(kind: str | None) -> list[str]:
    return [k.strip() for k in (kind or "").split(",") if k.strip()] or list(STORE_KINDS)


async def _list_from_store(gd: Gd, scope: str, token: bytes | None, limit: int, **filters: Any) -> Response:
    from listing import store_select, summary_from_record

    try:
        offset = int(token.decode()) if token else 0
    except ValueError:
        offset = -1
    if offset < 0:
        raise ApiProblem(422, "invalid_fields", "cursor: inválido ou de outra consulta (repita a listagem sem cursor)",
                         [{"field": "cursor", "code": "cursor_invalid", "message": "inválido ou de outra consulta"}])
    statement = store_select(**filters).limit(limit + 1).offset(offset)

    def read() -> list[dict[str, Any]]:
        with gd.store.connection(write=False) as conn:
            return [summary_from_record(row).model_dump(mode="json") for row in conn.execute(statement).mappings()]

    items = await run_in_threadpool(read)
    more = len(items) > limit
    next_cursor = encode_cursor(str(offset + limit).encode(), scope) if more else None
    return JSONResponse({"items": items[:limit], "next_cursor": next_cursor})


async def wait_intake(gd: Gd, workflow_id: str, done) -> dict[str, Any]:
    from gd_client import poll_pauses

    loop = asyncio.get_running_loop()
    give_up = loop.time() + START_TIMEOUT_S
    pauses = poll_pauses()
    while True:
        current = await gd.query_status(workflow_id)
        if current is not None and done(current):
            return current
        if loop.time() > give_up:
            raise gd.unavailable("o worker")
        await asyncio.sleep(next(pauses))


def encode_cursor(token: bytes, scope: str) -> str:
    packed = json.dumps({"s": scope, "t": base64.b64encode(token).decode()}).encode()
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> bytes:
    bad = ApiProblem(422, "invalid_fields", "cursor: inválido ou de outra consulta (repita a listagem sem cursor)",
                     [{"field": "cursor", "code": "cursor_invalid", "message": "inválido ou de outra consulta"}])
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("s") != scope:
            raise bad
        return base64.b64decode(data["t"], validate=True)
    except ApiProblem:
        raise
    except Exception:  # noqa: BLE001
        raise bad from None
