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
from models import ids
from models.common import DOCUMENT_KINDS

router = APIRouter()

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


@router.post(
    f"{PREFIX}/documents", status_code=201, tags=["documentos"],
    responses={**PROBLEM_RESPONSES, "413": {"description": "arquivo maior que 3 MB"},
               "415": {"description": "conteúdo não é PDF, PNG, JPEG, DWG ou DXF"}},
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file", "kind"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "kind": {"type": "string", "enum": list(DOCUMENT_KINDS)},
                       "request_id": {"type": "string", "pattern": REQUEST_ID_PATTERN, "maxLength": 64,
                                      "description": "a solicitação para a qual o arquivo é enviado "
                                                     "(opcional; ela passa a deter o arquivo)"}}}}}}},
)
async def upload_document(request: Request) -> Response:
    """Envia um arquivo (até 3 MB; PDF, PNG, JPEG, DWG ou DXF pelo conteúdo) → DocumentRef.

    Com ``request_id``, a solicitação passa a deter o arquivo (pode citá-lo e enviá-lo por
    e-mail mesmo que outra solicitação tenha citado os mesmos bytes antes); sem ele, a
    primeira solicitação que o citar o detém."""
    from activities.blobs import ACCEPTED_TYPES_TEXT, UploadRefused, looks_executable, sniff_content_type, upload
    from api.uploads import read_form

    gd = gd_of(request)
    principal = await principal_of(request, "upload_document")
    form = await read_form(request.headers.get("content-type"), request.headers.get("content-length"), request.stream())
    kind = form.fields.get("kind", "").strip()
    request_id = form.fields.get("request_id", "").strip() or None
    errors = []
    if kind not in DOCUMENT_KINDS:
        errors.append({"field": "kind", "code": "kind_unknown",
                       "message": f"tipo de documento desconhecido; aceitos: {', '.join(DOCUMENT_KINDS)}"})
    if form.file is None or not form.file:
        errors.append({"field": "file", "code": "file_missing", "message": "arquivo ausente ou vazio"})
    if request_id is not None and not re.fullmatch(REQUEST_ID_PATTERN, request_id):
        errors.append({"field": "request_id", "code": "request_id_format",
                       "message": "de 1 a 64 caracteres: letras, dígitos, ponto, hífen ou sublinhado"})
    if errors:
        raise ApiProblem(422, "invalid_fields", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
    data = bytes(form.file or b"")
    if sniff_content_type(data, form.filename) is None:
        hint = " (arquivo executável renomeado?)" if looks_executable(data, form.filename) else ""
        raise ApiProblem(415, "content_type_refused", f"conteúdo não é {ACCEPTED_TYPES_TEXT}{hint}")
    for_workflow = None
    if request_id is not None:
        request.state.request_id = request_id
        for_workflow = ids.access_request_id(request_id)
        # An existing request takes files only from who may read it (a non-party: 404, as
        # for a read); one not opened yet takes them (upload first, then open it).
        if await gd.query_status(for_workflow) is not None and not may_read(principal, await gd.facts(for_workflow)):
            raise ApiProblem(404, "not_found", f"solicitação {request_id} não encontrada")
    try:
        ref = await run_in_threadpool(upload, gd.store, gd.blobs, data, kind=kind, filename=form.filename,
                                      for_workflow=for_workflow)
    except UploadRefused as error:
        raise ApiProblem(422, "upload_refused", str(error), [{"field": "file", "code": "upload_refused", "message": str(error)}]) from None
    return JSONResponse(ref.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"{PREFIX}/documents/{ref.sha256}"})


@router.get(f"{PREFIX}/documents/{{sha256}}", tags=["documentos"], responses=PROBLEM_RESPONSES)
async def download_document(request: Request, sha256: str) -> Response:
    """O arquivo, a quem pode ler uma solicitação que o cita ou o detém."""
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
        for workflow_id in await run_in_threadpool(readable_candidates, gd.store, digest):
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


def readable_candidates(store: Any, digest: str) -> list[str]:
    """The workflows that hold a document (uploaded for them, or claimed) and then those
    whose event log cites it: reading one of them is the right to download it."""
    from activities.documents import holders

    found = holders(store, digest)
    return found + [w for w in citing_workflows(store, digest) if w not in found]


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
