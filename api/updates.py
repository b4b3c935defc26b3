"""Sending an update through the API: Idempotency-Key as the update id, If-Match against
the status' ETag, typed validator refusals mapped to 403/409/422 (REFUSAL_HTTP_STATUS)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import UPDATE_TIMEOUT_S, etag_of, gd_of, status_response
from api.problems import ApiProblem
from models.common import REFUSAL_HTTP_STATUS


async def run_update(request: Request, workflow_id: str, update: str, args: dict[str, Any], status: dict[str, Any] | None) -> Response:
    gd = gd_of(request)
    key = idempotency_key(request)
    handle = gd.temporal().get_workflow_handle(workflow_id)
    if_match = request.headers.get("if-match")
    if if_match is not None and status is None:
        status = await gd.query_status(workflow_id)
        if status is None:
            raise ApiProblem(404, "not_found", "processo não encontrado")
    if if_match is not None and status is not None and if_match.strip() != "*" and etag_of(status) not in [t.strip() for t in if_match.split(",")]:
        if key is not None and await update_done(handle, key):
            return status_response(await gd.query_status(workflow_id) or status or {}, 200)
        raise ApiProblem(412, "stale_if_match", "If-Match não confere: a solicitação mudou desde a sua leitura; leia de novo")
    try:
        await asyncio.wait_for(handle.execute_update(update, args, id=key or str(uuid.uuid4())), UPDATE_TIMEOUT_S)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError):
            kind = cause.type or "InputRefused"
            code = REFUSAL_HTTP_STATUS.get(kind, 422)
            raise ApiProblem(code, snake(kind), cause.message) from None
        raise ApiProblem(422, "refused", "ação recusada") from None
    except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise gd.unavailable("o worker") from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            final = await gd.query_status(workflow_id)
            if final is not None:
                raise ApiProblem(409, "process_closed", f"{update}: processo já encerrado ({final.get('status')}); nenhuma ação é possível") from None
            raise ApiProblem(404, "not_found", "processo não encontrado") from None
        raise gd.rpc_problem(error) from error
    current = await gd.query_status(workflow_id)
    if current is None:
        raise ApiProblem(404, "not_found", "processo não encontrado")
    return status_response(current, 200)


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (API.md: the update's id), checked; None if absent."""
    key = request.headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= 64 and key.isprintable() and key.isascii()):
        raise ApiProblem(422, "bad_idempotency_key", "Idempotency-Key: 1 a 64 caracteres ASCII imprimíveis",
                         [{"field": "Idempotency-Key", "code": "format", "message": "1 a 64 caracteres ASCII imprimíveis"}])
    return key


async def update_done(handle: Any, key: str) -> bool:
    try:
        await asyncio.wait_for(handle.get_update_handle(key).result(rpc_timeout=timedelta(seconds=2)), 3.0)
        return True
    except Exception:  # noqa: BLE001 - unknown id, refused, or still running
        return False


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
