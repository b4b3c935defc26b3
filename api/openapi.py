"""The OpenAPI document's shared parts: JSON bodies from the pydantic models (without
``actor``: it comes from the token), the problem+json responses, the bearer scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.problems import PROBLEM_TYPE

PREFIX = "/api/v1"


def json_body(model: Any | None = None, *, without_actor: bool = True, example: Any = None) -> dict:
    """``openapi_extra`` of a route whose JSON body is ``model`` (read by ``read_json``)."""
    if model is None:
        schema: dict[str, Any] = {"type": "object"}
    else:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs = schema.pop("$defs", {})
        EXTRA_SCHEMAS.update(defs)
        if without_actor:
            schema.get("properties", {}).pop("actor", None)
            if "required" in schema:
                schema["required"] = [r for r in schema["required"] if r != "actor"]
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


EXTRA_SCHEMAS: dict[str, Any] = {}
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


def install_openapi(app: FastAPI) -> None:
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes,
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(EXTRA_SCHEMAS)
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
