"""The auditor's page of one process (``/ui/auditoria/{workflow_id}``): its timeline read
from the Temporal history (``audit.timeline``), the history export to download
(``audit.export``, the same file as ``gd audit export``) and the replay verdict with
today's workflow code (``audit.replay``, the same as ``gd audit replay``).

For auditors and supervisors (the API's report roles). Recipients' addresses are masked
(the timeline's default); the export carries the payloads as stored on the server
(encrypted once a codec key is set), like the command line's.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import AUDITORS
from api.web_common import forbidden, page_of, render, user_or_login, web_of, with_cookie
from models import ids

log = logging.getLogger("gd.web")
router = APIRouter(include_in_schema=False)  # mounted under /ui by api/routes_web.py
_WORKFLOW_ID = re.compile(r"gd-(request|technician|beneficiaries)-[A-Za-z0-9._-]{1,64}")


def _auditor(request: Request) -> Any:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    if principal.first_role(AUDITORS) is None:
        return forbidden(request, "A página de auditoria é da auditoria e da supervisão.")
    return principal


async def _export(request: Request, workflow_id: str) -> Any:
    from audit.export import ExportError, fetch_chain

    if not _WORKFLOW_ID.fullmatch(workflow_id):
        return forbidden(request, "Processo não encontrado.", 404)
    try:
        return await fetch_chain(web_of(request).gd.temporal(), workflow_id)
    except ExportError:
        return forbidden(request, f"Processo {workflow_id} não encontrado no servidor.", 404)


def replayer_of(request: Request) -> Any:
    """One Replayer per app (the worker's workflows and converter), built on first use.
    ``debug_mode=False``: activations on the SDK's thread pool with its 2 s deadlock
    detection, as in a worker, so a history the code cannot advance fails the verdict
    instead of holding the API's event loop."""
    web = web_of(request)
    found = getattr(web, "replayer", None)
    if found is None:
        from audit.replay import build_replayer

        found = web.replayer = build_replayer(debug_mode=False)
    return found


@router.get("/auditoria/{workflow_id}")
async def audit_page(request: Request, workflow_id: str) -> Response:
    principal = _auditor(request)
    if isinstance(principal, Response):
        return principal
    export = await _export(request, workflow_id)
    if isinstance(export, Response):
        return export
    from audit import timeline as tl
    from audit.replay import replay

    timeline = await tl.build(export)
    try:
        (outcome,) = await replay([export], replayer_of(request), lanes=1)
    except Exception as error:  # noqa: BLE001 - the verdict says it could not run
        log.warning("replay failed to run: %s", type(error).__name__)
        outcome = None
    from domain import reasons as catalogue

    page = page_of(workflow_id)
    key = workflow_id
    for prefix in ids.PREFIXES:
        key = key.removeprefix(prefix)
    label = {ids.ACCESS_PREFIX: "Solicitação", ids.TECHNICIAN_PREFIX: "Cadastro de RT",
             ids.BENEFICIARIES_PREFIX: "UCs recebedoras"}
    page_label = next(f"{name} {key}" for prefix, name in label.items() if workflow_id.startswith(prefix))
    return render(request, "auditoria.html", title=f"Auditoria {workflow_id}", workflow_id=workflow_id,
                  tl=timeline, export=export, outcome=outcome, page=page, page_label=page_label, local=tl.local,
                  reasons_text={code: entry.text for code, entry in catalogue.catalogue().items()})


@router.get("/auditoria/{workflow_id}/historico.json")
async def audit_export(request: Request, workflow_id: str) -> Response:
    principal = _auditor(request)
    if isinstance(principal, Response):
        return principal
    export = await _export(request, workflow_id)
    if isinstance(export, Response):
        return export
    answer = Response(export.to_json(), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{workflow_id}.json"'})
    return with_cookie(request, answer)
