"""``/api/v1/reports``: the SLA report (auditor, supervisor)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import AUDITORS, PREFIX, RETRY_AFTER, gd_of, principal_of, role_for
from api.openapi import PROBLEM_RESPONSES
from api.problems import ApiProblem

router = APIRouter()


@router.get(f"{PREFIX}/reports/sla", tags=["auditoria"], responses=PROBLEM_RESPONSES)
async def sla_report(
    request: Request,
    from_: date = Query(..., alias="from", description="AAAA-MM-DD"),
    to: date = Query(..., description="AAAA-MM-DD"),
) -> Response:
    """Cumprimento dos prazos por regra: auditor, supervisor."""
    gd = gd_of(request)
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
