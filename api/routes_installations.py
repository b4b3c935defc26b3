"""``GET /api/v1/installations?document=``: the customer base, for the holder (issue 17).

The seed's AGV login lists "as instalações veiculadas ao nome" of a CPF. A customer reads
only its own (its token's ``gd_document``: the same CPF, or the same CNPJ root); staff
roles (analyst, supervisor, inspector, auditor, system) read any holder's. Mounted with
one ``app.include_router(router)`` line in api/app.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool

from api.deps import gd_of, principal_of
from api.problems import ApiProblem
from models.common import holder_key, normalize_tax_id

router = APIRouter()
READERS = ("analyst", "supervisor", "inspector", "auditor", "system")


@router.get("/api/v1/installations", tags=["base de clientes"])
async def list_installations(request: Request, document: str = "") -> Any:
    """Instalações de um titular (CPF, ou todas as da raiz do CNPJ), com endereço, classe e
    se há usina de GD conectada."""
    gd = gd_of(request)
    principal = await principal_of(request, "list_installations")
    try:
        normalized = normalize_tax_id(document.strip()[:32])
    except PydanticCustomError as error:
        raise ApiProblem(422, "invalid_fields", f"document: {error.message()}",
                         [{"field": "document", "code": error.type, "message": error.message()}])
    role = principal.first_role(READERS + ("customer",))
    if role is None:
        raise ApiProblem(403, "role_refused", "list_installations: permitido a customer (o "
                         f"próprio titular) e a {', '.join(READERS)}")
    if role == "customer" and principal.first_role(READERS) is None:
        own = principal.document
        if own is None or holder_key(own) != holder_key(normalized):
            raise ApiProblem(403, "party_refused", "document: um cliente só consulta as "
                             "instalações do próprio CPF/CNPJ")
    request.state.role = role
    from activities.installations import of_holder

    rows = await run_in_threadpool(of_holder, gd.store, normalized)
    return JSONResponse({"items": [
        {"installation_number": r.number, "holder_document": r.holder_document,
         "address": r.address, "customer_class": r.customer_class,
         "gd_connected": r.gd_connected} for r in rows]})
