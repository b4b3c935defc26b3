"""The HTTP API v1 (API.md): a thin, authenticated door onto the workflows' contract.

One Temporal client (the worker's converter and codec) is connected in the lifespan;
the store and blob store are the worker's (same ``GD_DATABASE_URL``/``GD_BLOB_DIR``).
Every error is ``application/problem+json``; refusals are logged and counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api import metrics
from api.auth import AuthError, Principal, Verifier
from api.config import ApiSettings
from api.problems import PROBLEM_TYPE, ApiProblem, audit, invalid, response
from models import ids
from models.access import (
    AccessRequestInput,
    AnswerInquiryArgs,
    ApproveArgs,
    AttachCorrectionsArgs,
    DeclareWorksArgs,
    PauseClockArgs,
    RecordInspectionArgs,
    RegisterAprArgs,
    ReproveArgs,
    RequestInspectionArgs,
    RequestReanalysisArgs,
    SuspendArgs,
    WithdrawArgs,
    input_digest,
)
from models.beneficiaries import BeneficiaryInput, ConfirmArgs, RejectArgs
from models.common import (
    DOCUMENT_KINDS,
    REFUSAL_HTTP_STATUS,
    ActorArgs,
    Problem,
    normalize_tax_id,
    parse_or_problems,
)
from models.names import Queries, Updates, Workflows
from models.settings import GdSettings
from models.technician import TechnicianApproveArgs, TechnicianInput, TechnicianRejectArgs

log = logging.getLogger("gd.api")

PREFIX = "/api/v1"
STAFF_READERS = ("analyst", "supervisor", "inspector", "auditor", "system")
DECIDERS = ("analyst", "supervisor")
AUDITORS = ("auditor", "supervisor")
PARTY_ROLES = ("customer", "technician")
MAX_JSON_BYTES = 1024 * 1024
UPDATE_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
QUERY_TIMEOUT = timedelta(seconds=10)
RETRY_AFTER = {"Retry-After": "5"}

# update → (argument model, roles allowed): API.md's table.
ACCESS_ACTIONS: dict[str, tuple[type[ActorArgs], tuple[str, ...]]] = {
    Updates.REGISTER_APR: (RegisterAprArgs, ("technician",)),
    Updates.ATTACH_CORRECTIONS: (AttachCorrectionsArgs, ("technician",)),
    Updates.REQUEST_REANALYSIS: (RequestReanalysisArgs, PARTY_ROLES),
    Updates.REQUEST_INSPECTION: (RequestInspectionArgs, PARTY_ROLES),
    Updates.WITHDRAW: (WithdrawArgs, PARTY_ROLES),
    Updates.APPROVE: (ApproveArgs, DECIDERS),
    Updates.SUSPEND: (SuspendArgs, DECIDERS),
    Updates.REPROVE: (ReproveArgs, DECIDERS),
    Updates.DECLARE_WORKS: (DeclareWorksArgs, DECIDERS),
    Updates.PAUSE_CLOCK: (PauseClockArgs, DECIDERS),
    Updates.RESUME_CLOCK: (ActorArgs, DECIDERS),
    Updates.ANSWER_INQUIRY: (AnswerInquiryArgs, DECIDERS),
    Updates.RECORD_INSPECTION: (RecordInspectionArgs, ("inspector",)),
}
TECHNICIAN_ACTIONS = {
    Updates.APPROVE: (TechnicianApproveArgs, DECIDERS),
    Updates.REJECT: (TechnicianRejectArgs, DECIDERS),
}
BENEFICIARY_ACTIONS = {
    Updates.CONFIRM: (ConfirmArgs, DECIDERS),
    Updates.REJECT: (RejectArgs, DECIDERS),
}


# --- OpenAPI helpers -------------------------------------------------------------------


def _json_body(model: Any | None = None, *, without_actor: bool = True, example: Any = None) -> dict:
    if model is None:
        schema: dict[str, Any] = {"type": "object"}
    else:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs = schema.pop("$defs", {})
        _EXTRA_SCHEMAS.update(defs)
        if without_actor:
            schema.get("properties", {}).pop("actor", None)
            if "required" in schema:
                schema["required"] = [r for r in schema["required"] if r != "actor"]
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


_EXTRA_SCHEMAS: dict[str, Any] = {}
PROBLEM_RESPONSES = {
    str(code): {"description": text, "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for code, text in (
        (400, "corpo não é JSON / não é objeto"),
        (401, "sem token ou token inválido"),
        (403, "papel ou parte não permitidos"),
        (404, "não encontrado (ou não visível a quem chama)"),
        (409, "não cabe na situação atual"),
        (412, "If-Match desatualizado"),
        (422, "campos inválidos"),
        (503, "Temporal ou o repositório indisponível"),
    )
}


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
        from activities.blobs import BlobStore
        from activities.records import RecordActivities
        from activities.store import Store

        self.store = Store(self.settings.database_url)
        try:
            await run_in_threadpool(self.store.create_schema)
        except Exception as error:  # noqa: BLE001 - /readyz reports it
            log.warning("store not ready at start: %s", type(error).__name__)
        self.blobs = BlobStore(self.settings.blob_dir)
        self.records = RecordActivities(self.store, self.blobs)
        try:
            await self._connect()
        except Exception:  # noqa: BLE001 - keep trying in the background; /readyz says 503
            self._connect_task = asyncio.create_task(self._keep_connecting())

    async def _connect(self) -> None:
        import worker

        self.client = await worker.connect(self.settings)

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
            raise self._rpc_problem(error) from error
        except Exception as error:  # noqa: BLE001 - WorkflowQueryFailedError etc.
            log.warning("status query failed on %s: %s", workflow_id, type(error).__name__)
            raise self.unavailable("o processo") from error
        return result if isinstance(result, dict) else json.loads(json.dumps(result, default=str))

    def _rpc_problem(self, error: RPCError) -> ApiProblem:
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
            raise self._rpc_problem(error) from error
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


# --- principal, parties and reading rights --------------------------------------------


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


def _check_request_id(value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ApiProblem(404, "not_found", f"solicitação {value[:64]!r} não encontrada")
    return value


def _technician_key(value: str) -> Any:
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


def _parse(model: Any, raw: Any) -> Any:
    parsed, problems = parse_or_problems(model, raw)
    if problems:
        raise invalid(problems)
    return parsed


def _intake(gd: Gd, process: str, workflow_id: str, raw: Any) -> list[Problem]:
    from models.activities import IntakeCheck

    result = gd.records.validate_intake(IntakeCheck(process=process, workflow_id=workflow_id, raw=raw))
    return list(result.problems)


# --- the app ----------------------------------------------------------------------------


def create_app(settings: GdSettings | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    from models.settings import get_settings

    settings = settings or get_settings()
    api_settings = (api_settings or ApiSettings()).check()
    gd = Gd(settings, api_settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await gd.start()
        try:
            yield
        finally:
            await gd.stop()

    app = FastAPI(
        title="gd-orchestrator — API HTTP v1",
        version="1.0.0",
        description="Acesso de micro e minigeração distribuída (CEMIG): solicitações, ações, documentos e listas.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gd = gd

    # docs: swagger-ui assets from the installed swagger-ui-bundle package (no CDN)
    import swagger_ui_bundle

    app.mount(f"{PREFIX}/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=f"{PREFIX}/openapi.json",
            title="gd-orchestrator — API v1",
            swagger_js_url=f"{PREFIX}/docs/static/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/docs/static/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/docs/static/favicon-32x32.png",
        )

    # errors ----------------------------------------------------------------------------

    def _audit(request: Request, problem: ApiProblem) -> None:
        principal: Principal | None = getattr(request.state, "principal", None)
        audit(
            problem,
            actor=principal.id if principal else None,
            role=getattr(request.state, "role", None) or (principal.main_role if principal else None),
            action=getattr(request.state, "action", None) or _route_of(request),
            request_id=getattr(request.state, "request_id", None),
        )

    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, problem: ApiProblem) -> Response:
        _audit(request, problem)
        return response(problem)

    @app.exception_handler(AuthError)
    async def on_auth(request: Request, error: AuthError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="gd-orchestrator"'} if error.status == 401 else {}
        if error.status == 503:
            headers = dict(RETRY_AFTER)
        problem = ApiProblem(error.status, error.code, error.message, headers=headers)
        _audit(request, problem)
        return response(problem)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, error: RequestValidationError) -> Response:
        from models.common import problems_from
        from pydantic import ValidationError

        problems = []
        for err in error.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
            problems.append(Problem(field=".".join(loc), code=str(err.get("type", "invalid")),
                                    message=_pt_message(err)))
        problem = invalid(problems)
        _audit(request, problem)
        return response(problem)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> Response:
        detail = {404: "recurso não encontrado", 405: "método não permitido neste recurso"}.get(
            error.status_code, str(error.detail)
        )
        return response(ApiProblem(error.status_code, f"http_{error.status_code}", detail, headers=dict(error.headers or {})))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", _route_of(request))
        return response(ApiProblem(500, "internal_error", "erro interno inesperado (registrado para análise)"))

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            answer = await call_next(request)
            status = answer.status_code
            return answer
        finally:
            route = _route_of(request)
            metrics.REQUESTS.labels(request.method, route, str(status)).inc()
            metrics.LATENCY.labels(request.method, route).observe(time.perf_counter() - started)

    # auth dependency -------------------------------------------------------------------

    async def principal_of(request: Request, action: str, request_id: str | None = None) -> Principal:
        request.state.action = action
        request.state.request_id = request_id
        header = request.headers.get("authorization")
        try:
            token = Verifier.bearer(header)
            if gd.verifier.needs_fetch(token):
                found = await run_in_threadpool(gd.verifier.verify, header)
            else:
                found = gd.verifier.verify(header)
        except AuthError:
            raise
        request.state.principal = found
        return found

    def role_for(request: Request, principal: Principal, allowed: tuple[str, ...], action: str) -> str:
        role = principal.first_role(allowed)
        if role is None:
            raise ApiProblem(
                403, "role_refused",
                f"{action}: nenhum dos papéis do token ({', '.join(principal.roles) or 'nenhum'}) "
                f"pode executar esta ação (permitido: {', '.join(allowed)})",
            )
        request.state.role = role
        return role

    # operations ------------------------------------------------------------------------

    @app.get("/healthz", tags=["operação"])
    async def healthz() -> dict[str, str]:
        """200 enquanto o processo vive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operação"], responses={"503": PROBLEM_RESPONSES["503"]})
    async def readyz() -> Response:
        """200 quando o Temporal e o repositório respondem; senão 503."""
        checks: dict[str, str] = {}
        try:
            client = gd.temporal()
            await asyncio.wait_for(client.workflow_service.get_system_info(
                __import__("temporalio.api.workflowservice.v1", fromlist=["GetSystemInfoRequest"]).GetSystemInfoRequest()
            ), 3.0)
            checks["temporal"] = "ok"
        except Exception:  # noqa: BLE001
            checks["temporal"] = "indisponível"
        try:
            await asyncio.wait_for(run_in_threadpool(gd.store.schema_version), 3.0)
            gd.blobs.root.stat()
            checks["store"] = "ok"
        except Exception:  # noqa: BLE001
            checks["store"] = "indisponível"
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ok", "checks": checks})
        down = ", ".join(k for k, v in checks.items() if v != "ok")
        problem = ApiProblem(503, "not_ready", f"indisponível: {down}", headers=RETRY_AFTER)
        problem.errors = [{"field": k, "code": "unavailable", "message": v} for k, v in checks.items() if v != "ok"]
        return response(problem)

    @app.get("/metrics", tags=["operação"])
    async def metrics_endpoint() -> Response:
        """Métricas Prometheus (texto)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # documents -------------------------------------------------------------------------

    @app.post(
        f"{PREFIX}/documents", status_code=201, tags=["documentos"],
        responses={**PROBLEM_RESPONSES, "413": {"description": "arquivo maior que 3 MB"},
                   "415": {"description": "conteúdo não é PDF, PNG, JPEG, DWG ou DXF"}},
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "kind"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           "kind": {"type": "string", "enum": list(DOCUMENT_KINDS)}}}}}}},
    )
    async def upload_document(request: Request) -> Response:
        """Envia um arquivo (até 3 MB; PDF, PNG, JPEG, DWG ou DXF pelo conteúdo) → DocumentRef."""
        from activities.blobs import ACCEPTED_TYPES_TEXT, UploadRefused, looks_executable, sniff_content_type, upload
        from api.uploads import read_form

        await principal_of(request, "upload_document")
        form = await read_form(request.headers.get("content-type"), request.headers.get("content-length"), request.stream())
        kind = form.fields.get("kind", "").strip()
        errors = []
        if kind not in DOCUMENT_KINDS:
            errors.append({"field": "kind", "code": "kind_unknown",
                           "message": f"tipo de documento desconhecido; aceitos: {', '.join(DOCUMENT_KINDS)}"})
        if form.file is None or not form.file:
            errors.append({"field": "file", "code": "file_missing", "message": "arquivo ausente ou vazio"})
        if errors:
            raise ApiProblem(422, "invalid_fields", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
        data = bytes(form.file or b"")
        if sniff_content_type(data, form.filename) is None:
            hint = " (arquivo executável renomeado?)" if looks_executable(data, form.filename) else ""
            raise ApiProblem(415, "content_type_refused", f"conteúdo não é {ACCEPTED_TYPES_TEXT}{hint}")
        try:
            ref = await run_in_threadpool(upload, gd.store, gd.blobs, data, kind=kind, filename=form.filename)
        except UploadRefused as error:
            raise ApiProblem(422, "upload_refused", str(error), [{"field": "file", "code": "upload_refused", "message": str(error)}]) from None
        return JSONResponse(ref.model_dump(mode="json"), status_code=201,
                            headers={"Location": f"{PREFIX}/documents/{ref.sha256}"})

    @app.get(f"{PREFIX}/documents/{{sha256}}", tags=["documentos"], responses=PROBLEM_RESPONSES)
    async def download_document(request: Request, sha256: str) -> Response:
        """O arquivo, a quem pode ler uma solicitação que o cita."""
        principal = await principal_of(request, "download_document")
        digest = sha256.strip().lower()
        missing = ApiProblem(404, "not_found", "documento não encontrado")
        import re

        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise missing
        record = await run_in_threadpool(gd.store.document, digest)
        if record is None or not gd.blobs.exists(digest, record.size):
            raise missing
        if not any(r in STAFF_READERS for r in principal.roles):
            allowed = False
            for workflow_id in await run_in_threadpool(_citing_workflows, gd.store, digest):
                if workflow_id.startswith("gd-request-") and may_read(principal, await gd.facts(workflow_id)):
                    allowed = True
                    break
            if not allowed:
                raise missing
        data = await run_in_threadpool(gd.blobs.get, digest)
        safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in record.filename)[:120] or "documento"
        return Response(
            data, media_type=record.content_type,
            headers={"Content-Disposition": f'attachment; filename="{safe_name}"', "ETag": f'"{digest}"',
                     "X-Content-Type-Options": "nosniff"},
        )

    # requests --------------------------------------------------------------------------

    @app.post(
        f"{PREFIX}/requests", status_code=201, tags=["solicitações"], responses=PROBLEM_RESPONSES,
        openapi_extra=_json_body(AccessRequestInput),
    )
    async def create_request(request: Request) -> Response:
        """Abre uma solicitação ou consulta (AccessRequest); o request_id é a chave de idempotência."""
        principal = await principal_of(request, "create_request")
        role = role_for(request, principal, ("customer", "technician", "system"), "criar solicitação")
        raw = await read_json(request)
        parsed = _parse(AccessRequestInput, raw)
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
        problems = await run_in_threadpool(_intake, gd, "access", workflow_id, raw)
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
            raise gd._rpc_problem(error) from error
        status = await _wait_intake(gd, workflow_id, lambda s: s.get("status") != "RECEIVED")
        if status.get("input_digest") and status["input_digest"] != input_digest(parsed):
            raise _reused(parsed.request_id, workflow_id)
        return _status_response(status, 201, location=f"{PREFIX}/requests/{parsed.request_id}")

    def _same_or_conflict(existing: dict[str, Any], parsed: AccessRequestInput, workflow_id: str) -> Response:
        if existing.get("input_digest") and existing["input_digest"] != input_digest(parsed):
            raise _reused(parsed.request_id, workflow_id)
        return _status_response(existing, 200, location=f"{PREFIX}/requests/{parsed.request_id}")

    def _reused(request_id: str, workflow_id: str) -> ApiProblem:
        return ApiProblem(409, "request_id_reused",
                          f"request_id: '{request_id}' já foi usado para outra solicitação com conteúdo diferente")

    async def _readable_request(request: Request, principal: Principal, request_id: str) -> tuple[str, dict[str, Any], Facts]:
        workflow_id = ids.access_request_id(_check_request_id(request_id))
        status = await gd.query_status(workflow_id)
        missing = ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
        if status is None:
            raise missing
        facts = await gd.facts(workflow_id)
        if not may_read(principal, facts):
            raise missing
        return workflow_id, status, facts

    @app.get(f"{PREFIX}/requests/{{request_id}}", tags=["solicitações"], responses=PROBLEM_RESPONSES)
    async def get_request(request: Request, request_id: str) -> Response:
        """A situação (query status) com ETag."""
        principal = await principal_of(request, "read_request", request_id)
        _, status, _ = await _readable_request(request, principal, request_id)
        return _status_response(status, 200)

    @app.post(
        f"{PREFIX}/requests/{{request_id}}/actions/{{update}}", tags=["solicitações"], responses=PROBLEM_RESPONSES,
        openapi_extra=_json_body(None),
    )
    async def request_action(request: Request, request_id: str, update: str) -> Response:
        """Uma ação (update do contrato: register_apr, approve, suspend, …); sem actor no corpo."""
        if update not in ACCESS_ACTIONS:
            request.state.action = "unknown_action"
            raise ApiProblem(404, "unknown_action", f"ação desconhecida: {update[:64]}; aceitas: {', '.join(ACCESS_ACTIONS)}")
        principal = await principal_of(request, update, request_id)
        model, allowed = ACCESS_ACTIONS[update]
        role = role_for(request, principal, allowed, update)
        workflow_id = ids.access_request_id(_check_request_id(request_id))
        body = await read_json(request)
        args = _parse(model, {**body, "actor": actor_of(principal, role)}).model_dump(mode="json", exclude_none=True)
        status = None
        if role in PARTY_ROLES:
            facts = await gd.facts(workflow_id)
            if facts.kind is None and await gd.query_status(workflow_id) is None:
                raise ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
            if not is_party(principal, role, facts):
                raise ApiProblem(403, "party_refused", f"{update}: só {'o RT' if role == 'technician' else 'o cliente'} desta solicitação pode executar esta ação")
        return await _run_update(request, workflow_id, update, args, status)

    async def _run_update(request: Request, workflow_id: str, update: str, args: dict[str, Any], status: dict[str, Any] | None) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and not (1 <= len(key) <= 64 and key.isprintable() and key.isascii()):
            raise ApiProblem(422, "bad_idempotency_key", "Idempotency-Key: 1 a 64 caracteres ASCII imprimíveis",
                             [{"field": "Idempotency-Key", "code": "format", "message": "1 a 64 caracteres ASCII imprimíveis"}])
        handle = gd.temporal().get_workflow_handle(workflow_id)
        if_match = request.headers.get("if-match")
        if if_match is not None and status is None:
            status = await gd.query_status(workflow_id)
            if status is None:
                raise ApiProblem(404, "not_found", "processo não encontrado")
        if if_match is not None and status is not None and if_match.strip() != "*" and etag_of(status) not in [t.strip() for t in if_match.split(",")]:
            if key is not None and await _update_done(handle, key):
                return _status_response(await gd.query_status(workflow_id) or status or {}, 200)
            raise ApiProblem(412, "stale_if_match", "If-Match não confere: a solicitação mudou desde a sua leitura; leia de novo")
        try:
            await asyncio.wait_for(handle.execute_update(update, args, id=key or str(uuid.uuid4())), UPDATE_TIMEOUT_S)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                kind = cause.type or "InputRefused"
                code = REFUSAL_HTTP_STATUS.get(kind, 422)
                raise ApiProblem(code, _snake(kind), cause.message) from None
            raise ApiProblem(422, "refused", "ação recusada") from None
        except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise gd.unavailable("o worker") from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                final = await gd.query_status(workflow_id)
                if final is not None:
                    raise ApiProblem(409, "process_closed", f"{update}: processo já encerrado ({final.get('status')}); nenhuma ação é possível") from None
                raise ApiProblem(404, "not_found", "processo não encontrado") from None
            raise gd._rpc_problem(error) from error
        current = await gd.query_status(workflow_id)
        if current is None:
            raise ApiProblem(404, "not_found", "processo não encontrado")
        return _status_response(current, 200)

    async def _update_done(handle: Any, key: str) -> bool:
        try:
            await asyncio.wait_for(handle.get_update_handle(key).result(rpc_timeout=timedelta(seconds=2)), 3.0)
            return True
        except Exception:  # noqa: BLE001 - unknown id, refused, or still running
            return False

    @app.get(f"{PREFIX}/requests/{{request_id}}/timeline", tags=["solicitações"], responses=PROBLEM_RESPONSES)
    async def timeline(request: Request, request_id: str) -> Response:
        """As etapas (linha do tempo) em JSON."""
        principal = await principal_of(request, "timeline", request_id)
        workflow_id, _, _ = await _readable_request(request, principal, request_id)
        from audit import export as exports
        from audit import timeline as timelines

        try:
            loaded = await exports.fetch_chain(gd.temporal(), workflow_id)
            built = await timelines.build(loaded)
        except RPCError as error:
            raise gd._rpc_problem(error) from error
        return JSONResponse(json.loads(json.dumps(built.to_dict(), default=str)))

    @app.get(f"{PREFIX}/requests/{{request_id}}/history", tags=["auditoria"], responses=PROBLEM_RESPONSES)
    async def history(request: Request, request_id: str) -> Response:
        """Exportação do histórico (gd-history-export/1): auditor, supervisor."""
        principal = await principal_of(request, "history", request_id)
        role_for(request, principal, AUDITORS, "exportar histórico")
        workflow_id, _, _ = await _readable_request(request, principal, request_id)
        from audit import export as exports

        try:
            loaded = await exports.fetch_chain(gd.temporal(), workflow_id)
        except RPCError as error:
            raise gd._rpc_problem(error) from error
        return Response(loaded.to_json(), media_type="application/json")

    # lists -----------------------------------------------------------------------------

    @app.get(f"{PREFIX}/requests", tags=["solicitações"], responses=PROBLEM_RESPONSES)
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

        principal = await principal_of(request, "list_requests")
        role = role_for(request, principal, ("analyst", "supervisor", "inspector", "auditor", "system", "technician", "customer"), "listar")
        if role == "technician":
            if principal.council_key is None:
                raise ApiProblem(403, "party_refused", "listar: token de RT sem gd_council_key")
            if technician and _technician_key(technician).key != principal.council_key:
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
        token = _decode_cursor(cursor, scope) if cursor else None
        it = gd.temporal().list_workflows(query, page_size=limit, next_page_token=token)
        try:
            await it.fetch_next_page(page_size=limit)
        except RPCError as error:
            raise gd._rpc_problem(error) from error
        items = []
        for execution in it.current_page or []:
            row = summary_from(execution)
            if role == "customer" and not is_party(principal, "customer", await gd.facts(row.workflow_id)):
                continue
            items.append(row.model_dump(mode="json"))
        next_token = it.next_page_token
        return JSONResponse({"items": items, "next_cursor": _encode_cursor(next_token, scope) if next_token else None})

    # technicians -----------------------------------------------------------------------

    @app.post(
        f"{PREFIX}/technicians", status_code=201, tags=["responsáveis técnicos"], responses=PROBLEM_RESPONSES,
        openapi_extra=_json_body(TechnicianInput),
    )
    async def create_technician(request: Request) -> Response:
        """Cadastro de RT (o próprio RT ou um sistema)."""
        from gd_client import GdClient, GdRefused, GdUnavailable

        principal = await principal_of(request, "create_technician")
        role = role_for(request, principal, ("system", "technician"), "cadastrar RT")
        raw = await read_json(request)
        parsed = _parse(TechnicianInput, raw)
        if role == "technician" and principal.council_key != parsed.key:
            raise ApiProblem(403, "party_refused", "o RT só cadastra a si mesmo (gd_council_key do token)")
        workflow_id = ids.technician_id(parsed.council, parsed.uf, parsed.registration)
        request.state.request_id = parsed.key
        problems = await run_in_threadpool(_intake, gd, "technician", workflow_id, raw)
        if problems:
            raise invalid(problems)
        try:
            st = await GdClient(gd.temporal(), gd.settings).start_technician(parsed)
        except GdUnavailable:
            raise gd.unavailable("o worker") from None
        except GdRefused as error:
            raise invalid(error.problems, error.message) from None
        return _status_response(st.model_dump(mode="json"), 201, location=f"{PREFIX}/technicians/{parsed.key}")

    async def _readable_technician(principal: Principal, council_key: str) -> tuple[str, dict[str, Any]]:
        tech = _technician_key(council_key)
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

    @app.get(f"{PREFIX}/technicians/{{council_key}}", tags=["responsáveis técnicos"], responses=PROBLEM_RESPONSES)
    async def get_technician(request: Request, council_key: str) -> Response:
        principal = await principal_of(request, "read_technician", council_key[:64])
        _, status = await _readable_technician(principal, council_key)
        return _status_response(status, 200)

    @app.post(
        f"{PREFIX}/technicians/{{council_key}}/actions/{{update}}", tags=["responsáveis técnicos"],
        responses=PROBLEM_RESPONSES, openapi_extra=_json_body(None),
    )
    async def technician_action(request: Request, council_key: str, update: str) -> Response:
        """approve | reject (analista, supervisor)."""
        if update not in TECHNICIAN_ACTIONS:
            raise ApiProblem(404, "unknown_action", "ação desconhecida; aceitas: approve, reject")
        principal = await principal_of(request, f"technician_{update}", council_key[:64])
        model, allowed = TECHNICIAN_ACTIONS[update]
        role = role_for(request, principal, allowed, update)
        tech = _technician_key(council_key)
        body = await read_json(request)
        args = _parse(model, {**body, "actor": actor_of(principal, role)}).model_dump(mode="json", exclude_none=True)
        workflow_id = ids.technician_id(tech.council, tech.uf, tech.registration)
        status = await gd.query_status(workflow_id)
        if status is None:
            raise ApiProblem(404, "not_found", f"responsável técnico {tech.key} não encontrado")
        return await _run_update(request, workflow_id, update, args, status)

    # beneficiaries ---------------------------------------------------------------------

    @app.post(
        f"{PREFIX}/requests/{{request_id}}/beneficiaries", status_code=201, tags=["UCs recebedoras"],
        responses=PROBLEM_RESPONSES, openapi_extra=_json_body(BeneficiaryInput),
    )
    async def create_beneficiaries(request: Request, request_id: str) -> Response:
        """Cadastro de UCs recebedoras (o cliente da solicitação, ou um sistema)."""
        from gd_client import GdClient, GdRefused, GdUnavailable

        principal = await principal_of(request, "create_beneficiaries", request_id)
        role = role_for(request, principal, ("customer", "system"), "cadastrar UCs recebedoras")
        workflow_id = ids.access_request_id(_check_request_id(request_id))
        body = await read_json(request)
        body.setdefault("request_id", request_id)
        if body.get("request_id") != request_id:
            raise ApiProblem(422, "invalid_fields", "request_id: difere do da URL",
                             [{"field": "request_id", "code": "mismatch", "message": "difere do request_id da URL"}])
        raw = {**body, "actor": actor_of(principal, role)}
        parsed = _parse(BeneficiaryInput, raw)
        if await gd.query_status(workflow_id) is None:
            raise ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
        facts = await gd.facts(workflow_id)
        if role == "customer":
            if not is_party(principal, "customer", facts):
                raise ApiProblem(403, "party_refused", "só o titular da usina cadastra as UCs recebedoras")
        if facts.customer_document and parsed.holder_document != facts.customer_document:
            raise ApiProblem(403, "party_refused", "holder_document: deve ser o titular da usina (o cliente da solicitação)")
        bworkflow = ids.beneficiaries_id(request_id)
        problems = await run_in_threadpool(_intake, gd, "beneficiaries", bworkflow, raw)
        if problems:
            raise invalid(problems)
        try:
            st = await GdClient(gd.temporal(), gd.settings).start_beneficiaries(parsed)
        except GdUnavailable:
            raise gd.unavailable("o worker") from None
        except GdRefused as error:
            raise invalid(error.problems, error.message) from None
        return _status_response(st.model_dump(mode="json"), 201, location=f"{PREFIX}/requests/{request_id}/beneficiaries")

    @app.get(f"{PREFIX}/requests/{{request_id}}/beneficiaries", tags=["UCs recebedoras"], responses=PROBLEM_RESPONSES)
    async def get_beneficiaries(request: Request, request_id: str) -> Response:
        principal = await principal_of(request, "read_beneficiaries", request_id)
        await _readable_request(request, principal, request_id)
        status = await gd.query_status(ids.beneficiaries_id(request_id))
        if status is None:
            raise ApiProblem(404, "not_found", f"nenhum cadastro de UCs recebedoras para {request_id}")
        return _status_response(status, 200)

    @app.post(
        f"{PREFIX}/requests/{{request_id}}/beneficiaries/actions/{{update}}", tags=["UCs recebedoras"],
        responses=PROBLEM_RESPONSES, openapi_extra=_json_body(None),
    )
    async def beneficiaries_action(request: Request, request_id: str, update: str) -> Response:
        """confirm | reject (analista, supervisor)."""
        if update not in BENEFICIARY_ACTIONS:
            raise ApiProblem(404, "unknown_action", "ação desconhecida; aceitas: confirm, reject")
        principal = await principal_of(request, f"beneficiaries_{update}", request_id)
        model, allowed = BENEFICIARY_ACTIONS[update]
        role = role_for(request, principal, allowed, update)
        _check_request_id(request_id)
        body = await read_json(request)
        args = _parse(model, {**body, "actor": actor_of(principal, role)}).model_dump(mode="json", exclude_none=True)
        workflow_id = ids.beneficiaries_id(request_id)
        status = await gd.query_status(workflow_id)
        if status is None:
            raise ApiProblem(404, "not_found", f"nenhum cadastro de UCs recebedoras para {request_id}")
        return await _run_update(request, workflow_id, update, args, status)

    # reports ---------------------------------------------------------------------------

    @app.get(f"{PREFIX}/reports/sla", tags=["auditoria"], responses=PROBLEM_RESPONSES)
    async def sla_report(
        request: Request,
        from_: date = Query(..., alias="from", description="AAAA-MM-DD"),
        to: date = Query(..., description="AAAA-MM-DD"),
    ) -> Response:
        """Cumprimento dos prazos por regra: auditor, supervisor."""
        principal = await principal_of(request, "sla_report")
        role_for(request, principal, AUDITORS, "relatório de SLA")
        if to < from_:
            raise ApiProblem(422, "invalid_fields", "to: a data final é anterior à inicial",
                             [{"field": "to", "code": "before_from", "message": "anterior à data inicial"}])
        if (to - from_).days > 3660:
            raise ApiProblem(422, "invalid_fields", "to: período de no máximo 10 anos",
                             [{"field": "to", "code": "too_long", "message": "período de no máximo 10 anos"}])
        from audit import sla

        try:
            result = await run_in_threadpool(sla.report, gd.store, from_, to)
        except ValueError as error:
            raise ApiProblem(503, "store_unavailable", str(error), headers=RETRY_AFTER) from None
        return JSONResponse(result.to_dict())

    app.include_router(__import__("api.routes_installations", fromlist=["router"]).router)
    app.include_router(__import__("api.routes_technicians", fromlist=["router"]).router)
    _install_openapi(app)
    return app


# --- helpers --------------------------------------------------------------------------


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _pt_message(err: dict[str, Any]) -> str:
    from models.common import _builtin_message

    try:
        return _builtin_message(err)
    except Exception:  # noqa: BLE001
        return "valor inválido"


def _status_response(status: dict[str, Any], code: int, *, location: str | None = None) -> Response:
    headers = {"ETag": etag_of(status)}
    if location:
        headers["Location"] = location
    return JSONResponse(status, status_code=code, headers=headers)


async def _wait_intake(gd: Gd, workflow_id: str, done) -> dict[str, Any]:
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


def _citing_workflows(store: Any, digest: str) -> list[str]:
    """Workflows whose event log cites a document (by its sha256)."""
    import sqlalchemy as sa
    from sqlmodel import select

    from activities.tables import EventRecord

    with store.session(write=False) as s:
        rows = s.exec(
            select(EventRecord.workflow_id)
            .where(sa.cast(EventRecord.documents, sa.Text).like(f"%{digest}%"))
            .distinct()
            .limit(200)
        ).all()
    return list(rows)


def _encode_cursor(token: bytes, scope: str) -> str:
    packed = json.dumps({"s": scope, "t": base64.b64encode(token).decode()}).encode()
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def _decode_cursor(cursor: str, scope: str) -> bytes:
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


def _install_openapi(app: FastAPI) -> None:
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes,
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(_EXTRA_SCHEMAS)
        schemas["Problem"] = {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}},
            },
        }
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        schema["security"] = [{"bearer": []}]
        for path, ops in schema.get("paths", {}).items():
            if not path.startswith(PREFIX):
                for op in ops.values():
                    op["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
