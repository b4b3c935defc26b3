"""What every route shares: the ``Gd`` context (settings, Temporal client, store, caches),
the caller (``principal_of``, ``role_for``), parties and reading rights, the body reader
and the status response with its ETag.

A route module gets the context with ``gd_of(request)``; it is created once per app in
``api/app.py`` (``app.state.gd``) and connected in the lifespan.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal, Verifier
from api.config import ApiSettings
from api.openapi import PREFIX  # noqa: F401 - the routes import it from here too
from api.problems import ApiProblem, invalid
from models.common import Problem, normalize_tax_id, parse_or_problems
from models.names import Queries
from models.settings import GdSettings

log = logging.getLogger("gd.api")

STAFF_READERS = ("analyst", "supervisor", "inspector", "auditor", "system")
AUDITORS = ("auditor", "supervisor")
PARTY_ROLES = ("customer", "technician")
MAX_JSON_BYTES = 1024 * 1024
UPDATE_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
QUERY_TIMEOUT = timedelta(seconds=10)
RETRY_AFTER = {"Retry-After": "5"}


# --- per-request facts (parties) --------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What decides who is a party: from the request's start input (never changes)."""

    kind: str | None
    customer_document: str | None
    technician_key: str | None


def _normalized_document(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalize_tax_id(value)
    except Exception:  # noqa: BLE001 - a malformed document was refused at intake anyway
        return None


def facts_from_input(raw: Any) -> Facts:
    if not isinstance(raw, dict):
        return Facts(None, None, None)
    customer = raw.get("customer") if isinstance(raw.get("customer"), dict) else {}
    tech = raw.get("technician")
    key = None
    if isinstance(tech, dict):
        from gd_client import GdRefused, parse_technician_key

        try:
            key = parse_technician_key(
                f"{tech.get('council', '')}-{tech.get('uf', '')}-{tech.get('registration', '')}"
            ).key
        except GdRefused:
            key = None
    return Facts(raw.get("kind"), _normalized_document(customer.get("document")), key)


class Gd:
    """Everything a route needs: settings, Temporal client, store, verifier, caches."""

    def __init__(self, settings: GdSettings, api_settings: ApiSettings):
        self.settings = settings
        self.api = api_settings
        self.verifier = Verifier(api_settings)
        self.client: Client | None = None
        self.store: Any = None
        self.blobs: Any = None
        self.records: Any = None
        self._facts: OrderedDict[str, Facts] = OrderedDict()
        self._connect_task: asyncio.Task | None = None

    # connections ------------------------------------------------------------------------

    async def start(self) -> None:
        from activities.blobs import open_blobs
        from activities.records import RecordActivities
        from activities.store import Store

        self.store = Store(self.settings.database_url)
        try:
            await run_in_threadpool(self.store.create_schema)
        except Exception as error:  # noqa: BLE001 - /readyz reports it
            log.warning("store not ready at start: %s", type(error).__name__)
        # Documents where every process finds them: the database (PostgreSQL), S3, or a
        # local directory in dev (GD_BLOB_URL; activities.blobs.open_blobs).
        self.blobs = open_blobs(self.settings, self.store)
        self.records = RecordActivities(self.store, self.blobs)
        try:
            await self._connect()
        except Exception:  # noqa: BLE001 - keep trying in the background; /readyz says 503
            self._connect_task = asyncio.create_task(self._keep_connecting())

    async def _connect(self) -> None:
        import worker

        self.client = await worker.connect(self.settings, interceptors=worker.tracing_interceptors("gd-api"))

    async def _keep_connecting(self) -> None:
        while self.client is None:
            await asyncio.sleep(2.0)
            try:
                await self._connect()
            except Exception:  # noqa: BLE001
                continue

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
        if self.store is not None:
            self.store.dispose()

    def temporal(self) -> Client:
        if self.client is None:
            raise ApiProblem(503, "temporal_unavailable", "Temporal indisponível; tente de novo em instantes", headers=RETRY_AFTER)
        return self.client

    def unavailable(self, what: str = "Temporal") -> ApiProblem:
        return ApiProblem(503, "temporal_unavailable", f"{what} indisponível; tente de novo em instantes", headers=RETRY_AFTER)

    # reads ------------------------------------------------------------------------------

    async def query_status(self, workflow_id: str) -> dict[str, Any] | None:
        """The ``status`` query as JSON; None when there is no such workflow."""
        handle = self.temporal().get_workflow_handle(workflow_id)
        try:
            result = await handle.query(Queries.STATUS, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self.rpc_problem(error) from error
        except Exception as error:  # noqa: BLE001 - WorkflowQueryFailedError etc.
            log.warning("status query failed on %s: %s", workflow_id, type(error).__name__)
            raise self.unavailable("o processo") from error
        return result if isinstance(result, dict) else json.loads(json.dumps(result, default=str))

    def rpc_problem(self, error: RPCError) -> ApiProblem:
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            return ApiProblem(422, "invalid_argument", "pedido recusado pelo Temporal (argumento inválido)")
        return self.unavailable()

    async def facts(self, workflow_id: str) -> Facts:
        cached = self._facts.get(workflow_id)
        if cached is not None:
            self._facts.move_to_end(workflow_id)
            return cached
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

        client = self.temporal()
        try:
            history = await client.workflow_service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=client.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id),
                    maximum_page_size=1,
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return Facts(None, None, None)
            raise self.rpc_problem(error) from error
        raw = None
        if history.history.events:
            payloads = history.history.events[0].workflow_execution_started_event_attributes.input.payloads
            if payloads:
                raw = (await client.data_converter.decode([payloads[0]]))[0]
        found = facts_from_input(raw)
        self._facts[workflow_id] = found
        if len(self._facts) > 20_000:
            self._facts.popitem(last=False)
        return found


def gd_of(request: Request) -> Gd:
    """The app's ``Gd`` (created by ``create_app``)."""
    return request.app.state.gd


# --- the caller, parties and reading rights ---------------------------------------------


async def principal_of(request: Request, action: str, request_id: str | None = None) -> Principal:
    """The verified caller (401 otherwise); ``action``/``request_id`` go to the refusal log."""
    request.state.action = action
    request.state.request_id = request_id
    header = request.headers.get("authorization")
    verifier = gd_of(request).verifier
    token = Verifier.bearer(header)  # AuthError (401) when absent or malformed
    found = verifier.remembered(token)
    if found is not None:  # verified less than a minute ago (Verifier.verify)
        pass
    elif verifier.needs_fetch(token):  # an unknown kid: fetch the JWKS off the event loop
        found = await run_in_threadpool(verifier.verify, header)
    else:
        found = verifier.verify(header)
    request.state.principal = found
    return found


def role_for(request: Request, principal: Principal, allowed: tuple[str, ...], action: str) -> str:
    """The first of the token's roles that ``allowed`` admits (403 when none)."""
    role = principal.first_role(allowed)
    if role is None:
        raise ApiProblem(
            403, "role_refused",
            f"{action}: nenhum dos papéis do token ({', '.join(principal.roles) or 'nenhum'}) "
            f"pode executar esta ação (permitido: {', '.join(allowed)})",
        )
    request.state.role = role
    return role


def is_party(principal: Principal, role: str, facts: Facts) -> bool:
    if role == "customer":
        return principal.document is not None and principal.document == facts.customer_document
    if role == "technician":
        return principal.council_key is not None and principal.council_key == facts.technician_key
    return False


def may_read(principal: Principal, facts: Facts) -> bool:
    if any(r in STAFF_READERS for r in principal.roles):
        return True
    return any(is_party(principal, r, facts) for r in principal.roles if r in PARTY_ROLES)


def actor_of(principal: Principal, role: str) -> dict[str, Any]:
    actor: dict[str, Any] = {"id": principal.id, "role": role}
    if principal.council_key:
        actor["council_key"] = principal.council_key
    if principal.document:
        actor["document"] = principal.document
    return actor


def etag_of(status: dict[str, Any]) -> str:
    """From the status' ``sequence`` when it has one, else a digest of what a decision
    changes (status, cycle, decisions, clock, NS, documents, deadline)."""
    if status.get("sequence") is not None:
        return f'"{status["sequence"]}"'
    relevant = {
        k: status.get(k)
        for k in (
            "status", "cycle", "decisions", "clock_paused", "service_notes", "works_declared",
            "due_at", "documents", "effective_from",
        )
    }
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()
    return f'"{digest[:32]}"'


def check_request_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ApiProblem(404, "not_found", f"solicitação {value[:64]!r} não encontrada")
    return value


def technician_key(value: str) -> Any:
    from gd_client import GdRefused, parse_technician_key

    try:
        return parse_technician_key(value)
    except GdRefused:
        raise ApiProblem(404, "not_found", "responsável técnico não encontrado (use CONSELHO-UF-REGISTRO)") from None


async def read_json(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise ApiProblem(413, "body_too_large", "corpo JSON maior que 1 MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiProblem(413, "body_too_large", "corpo JSON maior que 1 MB")
    if ctype and "json" not in ctype.lower():
        raise ApiProblem(400, "not_json", "o corpo deve ser JSON (Content-Type: application/json)")
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ApiProblem(400, "not_json", "o corpo não é JSON válido") from None
    if not isinstance(data, dict):
        raise ApiProblem(400, "not_object", "o corpo deve ser um objeto JSON")
    if "actor" in data:
        raise ApiProblem(
            422, "actor_in_body",
            "actor: não envie actor no corpo; quem age vem do token",
            [{"field": "actor", "code": "actor_in_body", "message": "quem age vem do token, não do corpo"}],
        )
    return data


def parse(model: Any, raw: Any) -> Any:
    parsed, problems = parse_or_problems(model, raw)
    if problems:
        raise invalid(problems)
    return parsed


def intake(gd: Gd, process: str, workflow_id: str, raw: Any) -> list[Problem]:
    from models.activities import IntakeCheck

    result = gd.records.validate_intake(IntakeCheck(process=process, workflow_id=workflow_id, raw=raw))
    return list(result.problems)


def status_response(status: dict[str, Any], code: int, *, location: str | None = None) -> Response:
    headers = {"ETag": etag_of(status)}
    if location:
        headers["Location"] = location
    return JSONResponse(status, status_code=code, headers=headers)
