"""``application/problem+json`` errors, the refusal audit line and its counter."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi.responses import JSONResponse

from api import metrics

log = logging.getLogger("gd.api.refusal")

PROBLEM_TYPE = "application/problem+json"
TITLES = {
    400: "Corpo da requisição inválido",
    401: "Não autenticado",
    403: "Ação não permitida",
    404: "Não encontrado",
    405: "Método não permitido",
    409: "Conflito com a situação atual",
    412: "Versão desatualizada",
    413: "Conteúdo grande demais",
    415: "Tipo de conteúdo não aceito",
    422: "Campos inválidos",
    500: "Erro interno",
    503: "Serviço indisponível",
}
AUDITED = (401, 403, 409, 412, 422)


class ApiProblem(Exception):
    """An answer other than 2xx: status, a reason code (logged) and the pt-BR detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(detail)


def field_errors(problems: list[Any]) -> list[dict[str, str]]:
    return [{"field": p.field, "code": p.code, "message": p.message} for p in problems]


def invalid(problems: list[Any], detail: str | None = None) -> ApiProblem:
    errors = field_errors(problems)
    listed = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
    return ApiProblem(422, "invalid_fields", detail or f"campos inválidos: {listed}", errors)


def response(problem: ApiProblem) -> JSONResponse:
    body = {
        "type": f"/api/v1/problems/{problem.code}",
        "title": TITLES.get(problem.status, "Erro"),
        "status": problem.status,
        "detail": problem.detail,
        "errors": problem.errors,
    }
    return JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_TYPE)


def audit(problem: ApiProblem, *, actor: str | None, role: str | None, action: str, request_id: str | None) -> None:
    """One structured line per refusal (ids and codes only: no personal data) + counter."""
    if problem.status not in AUDITED:
        return
    log.warning(
        json.dumps(
            {
                "event": "refusal",
                "status": problem.status,
                "actor": actor or "-",
                "role": role or "-",
                "action": action,
                "request_id": request_id or "-",
                "reason": problem.code,
            },
            ensure_ascii=False,
        )
    )
    metrics.REFUSALS.labels(status=str(problem.status), action=action, reason=problem.code).inc()
