"""Operations: the docs page (assets served locally), ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api import metrics
from api.deps import PREFIX, RETRY_AFTER, gd_of
from api.openapi import PROBLEM_RESPONSES
from api.problems import ApiProblem, response

router = APIRouter()


@router.get(f"{PREFIX}/docs", include_in_schema=False)
async def docs() -> Response:
    return get_swagger_ui_html(
        openapi_url=f"{PREFIX}/openapi.json",
        title="gd-orchestrator — API v1",
        swagger_js_url=f"{PREFIX}/docs/static/swagger-ui-bundle.js",
        swagger_css_url=f"{PREFIX}/docs/static/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/docs/static/favicon-32x32.png",
    )


@router.get("/healthz", tags=["operação"])
async def healthz() -> dict[str, str]:
    """200 enquanto o processo vive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operação"], responses={"503": PROBLEM_RESPONSES["503"]})
async def readyz(request: Request) -> Response:
    """200 quando o Temporal e o repositório respondem; senão 503."""
    gd = gd_of(request)
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
        if hasattr(gd.blobs, "root"):  # a local directory; database/S3 blobs have none
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


@router.get("/metrics", tags=["operação"])
async def metrics_endpoint(request: Request) -> Response:
    """Métricas Prometheus (texto): contadores da API e números do repositório."""
    from prometheus_client import CONTENT_TYPE_LATEST

    store = getattr(gd_of(request), "store", None)
    body = await run_in_threadpool(metrics.exposition, store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
