"""``/api/v1/documents``: upload (streamed, 3 MB, type by content; optionally for one
request) and download (only to who may read a request that holds or cites the file)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import PREFIX, STAFF_READERS, gd_of, may_read, principal_of
from api.openapi import PROBLEM_RESPONSES
from api.problems import ApiProblem
from models.common import DOCUMENT_KINDS

router = APIRouter()


@router.post(
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
    gd = gd_of(request)
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


@router.get(f"{PREFIX}/documents/{{sha256}}", tags=["documentos"], responses=PROBLEM_RESPONSES)
async def download_document(request: Request, sha256: str) -> Response:
    """O arquivo, a quem pode ler uma solicitação que o cita."""
    gd = gd_of(request)
    principal = await principal_of(request, "download_document")
    digest = sha256.strip().lower()
    missing = ApiProblem(404, "not_found", "documento não encontrado")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise missing
    record = await run_in_threadpool(gd.store.document, digest)
    if record is None or not gd.blobs.exists(digest, record.size):
        raise missing
    if not any(r in STAFF_READERS for r in principal.roles):
        allowed = False
        for workflow_id in await run_in_threadpool(citing_workflows, gd.store, digest):
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


def citing_workflows(store: Any, digest: str) -> list[str]:
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
