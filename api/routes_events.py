"""Events for other systems: webhook subscriptions and the pull feed (issue 19).

``POST/GET/DELETE /api/v1/subscriptions`` (role ``system``; each system sees only the
subscriptions it created, others get 404), ``POST /api/v1/subscriptions/{id}/rotate``,
``GET /api/v1/subscriptions/{id}/deliveries`` and ``GET /api/v1/events?after=&wait=``
(roles ``system``, ``auditor``): a long-poll over the store's event table, oldest first,
with the same event ids the webhooks carry.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from activities import events, webhooks
from api.auth import Principal
from api.deps import gd_of, principal_of, read_json, role_for
from api.openapi import PREFIX
from api.problems import ApiProblem

router = APIRouter()

SUBSCRIBERS = ("system",)
FEED_READERS = ("system", "auditor")
MAX_WAIT_S = 30
FEED_POLL_S = 0.25
_CURSOR = re.compile(r"^[0-9]{1,18}$")
_SUB_ID = re.compile(r"^sub_[0-9a-f]{24}$")
RETRY_AFTER = {"Retry-After": "5"}
TAGS = ["eventos"]


def _gd(request: Request) -> Any:
    return gd_of(request)


async def _principal(request: Request, action: str, allowed: tuple[str, ...]) -> Principal:
    """The caller from the token (401 otherwise), with a role ``allowed`` (403 otherwise)."""
    found = await principal_of(request, action)
    role_for(request, found, allowed, action)
    return found


def _dev(request: Request) -> bool:
    return _gd(request).settings.env.strip().lower() == "dev"


def _store(request: Request) -> Any:
    store = _gd(request).store
    if store is None:
        raise ApiProblem(503, "store_unavailable", "repositório indisponível; tente de novo em instantes",
                         headers=RETRY_AFTER)
    return store


def _refused(error: webhooks.SubscriptionRefused) -> ApiProblem:
    return ApiProblem(422, "invalid_fields", f"{error.field}: {error.message}",
                      [{"field": error.field, "code": error.code, "message": error.message}])


def _cursor(value: str | None, field: str) -> int:
    if value is None or value == "":
        return 0
    if not _CURSOR.match(value):
        raise ApiProblem(422, "invalid_fields", f"{field}: cursor inválido (só dígitos, até 18)",
                         [{"field": field, "code": "cursor_invalid", "message": "só dígitos, até 18"}])
    return int(value)


async def _own(request: Request, principal: Principal, subscription_id: str) -> Any:
    if not _SUB_ID.match(subscription_id):
        raise ApiProblem(404, "subscription_not_found", "assinatura não encontrada")
    row = await run_in_threadpool(webhooks.get_subscription, _store(request), subscription_id)
    if row is None or row.owner != principal.id or row.status == "deleted":
        raise ApiProblem(404, "subscription_not_found", "assinatura não encontrada")
    return row


# --- subscriptions ----------------------------------------------------------------------


@router.post(f"{PREFIX}/subscriptions", status_code=201, tags=TAGS)
async def create_subscription(request: Request) -> Response:
    """Assina eventos por webhook: {url, types} → a assinatura e o segredo (mostrado uma vez)."""
    principal = await _principal(request, "create_subscription", SUBSCRIBERS)
    data = await read_json(request)
    unknown = sorted(set(data) - {"url", "types"})
    if unknown:
        raise ApiProblem(422, "invalid_fields", f"{unknown[0][:40]}: campo não aceito (aceitos: url, types)",
                         [{"field": unknown[0][:40], "code": "field_unknown", "message": "campo não aceito"}])
    gd = _gd(request)
    client = gd.temporal()
    try:
        row, secret = await run_in_threadpool(
            lambda: webhooks.create_subscription(_store(request), principal.id, data.get("url"),
                                                 data.get("types"), dev=_dev(request)))
    except webhooks.SubscriptionRefused as error:
        raise _refused(error) from None
    except webhooks.SecretsUnavailable as error:
        raise ApiProblem(503, "secrets_unavailable", str(error)) from None
    await webhooks.start_delivery(client, row, gd.settings.task_queue)
    body = {**webhooks.public_view(row), "secret": secret}
    return JSONResponse(body, status_code=201, headers={
        "Location": f"{PREFIX}/subscriptions/{row.id}", "Cache-Control": "no-store"})


@router.get(f"{PREFIX}/subscriptions", tags=TAGS)
async def list_subscriptions(request: Request) -> Response:
    """As assinaturas de quem chama (sem segredos)."""
    principal = await _principal(request, "list_subscriptions", SUBSCRIBERS)
    rows = await run_in_threadpool(webhooks.list_subscriptions, _store(request), principal.id)
    return JSONResponse({"items": [webhooks.public_view(r) for r in rows if r.status != "deleted"]})


@router.get(f"{PREFIX}/subscriptions/{{subscription_id}}", tags=TAGS)
async def get_subscription(request: Request, subscription_id: str) -> Response:
    """Uma assinatura (sem segredo)."""
    principal = await _principal(request, "get_subscription", SUBSCRIBERS)
    return JSONResponse(webhooks.public_view(await _own(request, principal, subscription_id)))


@router.delete(f"{PREFIX}/subscriptions/{{subscription_id}}", status_code=204, tags=TAGS)
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    """Cancela a assinatura: nenhuma entrega nova."""
    principal = await _principal(request, "delete_subscription", SUBSCRIBERS)
    await _own(request, principal, subscription_id)
    await run_in_threadpool(webhooks.delete_subscription, _store(request), subscription_id)
    await webhooks.stop_delivery(_gd(request).temporal(), subscription_id)
    return Response(status_code=204)


@router.post(f"{PREFIX}/subscriptions/{{subscription_id}}/rotate", tags=TAGS)
async def rotate_secret(request: Request, subscription_id: str) -> Response:
    """Novo segredo; o anterior continua assinando junto por ``overlap_hours`` (padrão 24)."""
    principal = await _principal(request, "rotate_subscription_secret", SUBSCRIBERS)
    await _own(request, principal, subscription_id)
    data = await read_json(request)
    try:
        row, secret = await run_in_threadpool(
            lambda: webhooks.rotate_secret(_store(request), subscription_id,
                                           data.get("overlap_hours"), dev=_dev(request)))
    except webhooks.SubscriptionRefused as error:
        raise _refused(error) from None
    except webhooks.SecretsUnavailable as error:
        raise ApiProblem(503, "secrets_unavailable", str(error)) from None
    return JSONResponse({**webhooks.public_view(row), "secret": secret},
                        headers={"Cache-Control": "no-store"})


@router.get(f"{PREFIX}/subscriptions/{{subscription_id}}/deliveries", tags=TAGS)
async def list_deliveries(
    request: Request, subscription_id: str,
    after: str | None = Query(None, description="cursor da página anterior"),
    limit: int = Query(100, ge=1, le=500),
) -> Response:
    """As tentativas de entrega, em ordem (status HTTP, duração, desfecho)."""
    principal = await _principal(request, "list_deliveries", SUBSCRIBERS)
    await _own(request, principal, subscription_id)
    rows = await run_in_threadpool(webhooks.deliveries, _store(request), subscription_id,
                                   _cursor(after, "after"), limit)
    return JSONResponse({
        "items": [webhooks.delivery_view(r) for r in rows],
        "next_cursor": str(rows[-1].id) if len(rows) == limit else None,
    })


# --- the pull feed ------------------------------------------------------------------------


@router.get(f"{PREFIX}/events", tags=TAGS)
async def feed(
    request: Request,
    after: str | None = Query(None, description="cursor: next_cursor da resposta anterior"),
    wait: int = Query(0, ge=0, le=MAX_WAIT_S, description="segundos a esperar por um evento novo"),
    limit: int = Query(100, ge=1, le=events.MAX_FEED_PAGE),
) -> Response:
    """Eventos depois do cursor, do mais antigo ao mais novo (CloudEvents JSON)."""
    await _principal(request, "read_events", FEED_READERS)
    start = _cursor(after, "after")
    store = _store(request)
    give_up = time.monotonic() + wait
    while True:
        rows, through = await run_in_threadpool(events.read_after, store, start, limit)
        if rows or time.monotonic() >= give_up or await request.is_disconnected():
            break
        await asyncio.sleep(FEED_POLL_S)
    return JSONResponse({"events": [events.cloudevent(r) for r in rows], "next_cursor": str(through)})
