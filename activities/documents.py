"""Which documents a process may cite and mail out (the ``DocumentLink`` rows).

A ``DocumentRef`` sent by a caller is only a claim: its hash is visible in any status, so
anyone can name another customer's file. Every cited reference is resolved here, in an
activity, against the store:

* it must be a stored document (``DocumentRecord``) whose blob exists;
* it must belong to the citing workflow: a link to it exists (uploaded for it, or cited
  by it before), or no process holds it yet, and then the citing workflow claims it;
* its type and size are the store's (sniffed at upload), never the caller's.

Where the document goes somewhere (an e-mail attachment) a document held only by other
workflows is refused; at intake it may be cited (a customer's second request reuses its
files) but does not become the new request's. The same bytes uploaded again for
this workflow (``upload(..., for_workflow=...)``) link it here too: holding the file is
the right to use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from activities.store import Store
from activities.tables import DocumentLink, DocumentRecord, utcnow
from models.common import DocumentRef

_LINKS: sa.Table = DocumentLink.__table__  # type: ignore[attr-defined]
_DOCUMENTS: sa.Table = DocumentRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Resolved:
    """A cited document as the store knows it (``problem`` set when it may not be used)."""

    ref: DocumentRef
    content_type: str | None = None
    size: int | None = None
    problem: str | None = None  # pt-BR
    code: str | None = None


def link(store: Store, sha256: str, workflow_id: str, *, source: str = "upload") -> None:
    """Link a document to a workflow (idempotent)."""
    try:
        with store.connection() as conn:
            _insert_link(conn, sha256.lower(), workflow_id, source)
    except IntegrityError:
        pass  # a concurrent twin linked it first


def _insert_link(conn: Connection, sha256: str, workflow_id: str, source: str) -> None:
    exists = conn.execute(sa.select(_LINKS.c.id).where(
        _LINKS.c.sha256 == sha256, _LINKS.c.workflow_id == workflow_id)).first()
    if exists is None:
        conn.execute(_LINKS.insert().values(sha256=sha256, workflow_id=workflow_id,
                                            source=source, linked_at=utcnow()))


def holders(store: Store, sha256: str) -> list[str]:
    with store.connection(write=False) as conn:
        return list(conn.execute(sa.select(_LINKS.c.workflow_id).where(
            _LINKS.c.sha256 == sha256.lower()).order_by(_LINKS.c.id)).scalars())


def resolve(store: Store, workflow_id: str, refs: list[DocumentRef], *,
            claim: bool = True) -> list[Resolved]:
    """Resolve each reference for ``workflow_id``; with ``claim``, documents nobody holds
    become this workflow's (one short transaction per document)."""
    out: list[Resolved] = []
    for ref in refs:
        out.append(_resolve_one(store, workflow_id, ref, claim))
    return out


def _label(ref: DocumentRef) -> str:
    return f"documento {ref.kind} (sha256 {ref.sha256[:12]}…)"


def _resolve_one(store: Store, workflow_id: str, ref: DocumentRef, claim: bool) -> Resolved:
    sha = ref.sha256.lower()
    for attempt in range(2):
        try:
            with store.connection(write=claim) as conn:
                record = conn.execute(sa.select(_DOCUMENTS.c.content_type, _DOCUMENTS.c.size)
                                      .where(_DOCUMENTS.c.sha256 == sha)).first()
                if record is None:
                    return Resolved(ref, problem=f"{_label(ref)} não foi enviado ao repositório "
                                    "de arquivos (gd docs upload)", code="document_unknown")
                owners = set(conn.execute(sa.select(_LINKS.c.workflow_id)
                                          .where(_LINKS.c.sha256 == sha)).scalars())
                if owners and workflow_id not in owners:
                    return Resolved(ref, problem=f"{_label(ref)} pertence a outro processo; "
                                    "envie o arquivo para esta solicitação", code="document_not_owned")
                if not owners and claim:
                    _insert_link(conn, sha, workflow_id, "claimed")
                return Resolved(ref, content_type=record.content_type, size=record.size)
        except IntegrityError:
            if attempt:
                raise
            continue  # another workflow claimed it at the same instant: read again
    raise AssertionError("unreachable")
