"""The HTTP API v1 (API.md): a thin, authenticated door onto the workflows' contract.

``create_app`` builds the FastAPI app: the ``Gd`` context (``api/deps.py``: one Temporal
client with the worker's converter and codec, connected in the lifespan; the worker's
store and blob store, same ``GD_DATABASE_URL``/``GD_BLOB_DIR``), the problem+json error
handlers and the refusal audit, the metrics middleware, and the routers:

=========================  ==============================================================
``api/access_requests.py``  ``/api/v1/requests``: open, read, act, timeline, history, list
``api/documents.py``        ``/api/v1/documents``: upload, download
``api/technicians.py``      ``/api/v1/technicians``
``api/beneficiaries.py``    ``/api/v1/requests/{id}/beneficiaries``
``api/reports.py``          ``/api/v1/reports/sla``
``api/operations.py``       ``/api/v1/docs``, ``/healthz``, ``/readyz``, ``/metrics``
=========================  ==============================================================

A new group of routes: a module ``api/routes_<topic>.py`` exposing ``router = APIRouter()``
(it imports what it needs from ``api/deps.py``, ``api/openapi.py``, ``api/problems.py``)
and ONE ``app.include_router(...)`` line in ``include_routers`` below.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import metrics
from api.auth import AuthError, Principal
from api.config import ApiSettings
from api.deps import PREFIX, RETRY_AFTER, Gd
from api.openapi import install_openapi
from api.problems import ApiProblem, audit, invalid, response
from models.common import Problem
from models.settings import GdSettings

log = logging.getLogger("gd.api")


def include_routers(app: FastAPI) -> None:
    """Every router of the API: one line each."""
    from api import (
        access_requests, beneficiaries, documents, operations, reports, routes_events,
        routes_installations, routes_portal, routes_portal_accounts, routes_portal_email, routes_technicians,
        routes_web,
        technicians,
    )

    app.include_router(operations.router)
    app.include_router(documents.router)
    app.include_router(access_requests.router)
    app.include_router(technicians.router)
    app.include_router(beneficiaries.router)
    app.include_router(reports.router)
    app.include_router(routes_web.router)  # the analysts' web inbox under /ui (issue 18)
    app.include_router(routes_events.router)  # events: subscriptions, webhooks, feed (issue 19)
    app.include_router(routes_installations.router)  # the customer base (issue 17)
    app.include_router(routes_technicians.router)  # the RT's APR password (issue 17)
    app.include_router(routes_portal_accounts.router)  # the portal's accounts (issue 22)
    app.include_router(routes_portal_email.router)  # the RT's new e-mail confirmed by link (issue 17)
    app.include_router(routes_portal.router)  # the RT/customer portal under /portal (issue 22)


def create_app(settings: GdSettings | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    from models.settings import get_settings

    settings = settings or get_settings()
    api_settings = (api_settings or ApiSettings()).check()
    gd = Gd(settings, api_settings)
    import worker

    worker.tracing_interceptors("gd-api")  # OTLP set up before the first request's span

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
    install_error_handlers(app)
    include_routers(app)
    install_openapi(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error as problem+json; refusals (401/403/409/412/422) audited and counted."""

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

    app.add_middleware(Observe)


class Observe:
    """Counts every request and its latency (``/metrics``) and wraps it in a server span
    (observability.server_span: the Temporal client's spans, StartWorkflow,
    StartWorkflowUpdate…, and the worker's become its children). A plain ASGI middleware:
    ``@app.middleware("http")`` (Starlette's ``BaseHTTPMiddleware``) runs each request in a
    task group with a memory stream for its body, ~10 % of the API's CPU on a status read
    (py-spy under ``python -m bench.api``)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        import observability

        method = scope["method"]
        with observability.server_span(Headers(scope=scope), method, scope.get("path", "")) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.REQUESTS.labels(method, route, str(status)).inc()
                metrics.LATENCY.labels(method, route).observe(time.perf_counter() - started)
                observability.end_server_span(span, method, route, status)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _pt_message(err: dict[str, Any]) -> str:
    from models.common import _builtin_message

    try:
        return _builtin_message(err)
    except Exception:  # noqa: BLE001
        return "valor inválido"
