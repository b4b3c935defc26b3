"""Per-request caps: how far one access request may grow (documents, decisions, pauses).

Every update that adds to a request is refused with ``LimitRefused`` (HTTP 409) once it
would pass a cap, so no caller can grow a request's state, its history and the e-mails
it sends without bound. Pure: the validators call ``check_growth`` with the state and the
parsed update. Withdrawal and resuming a paused clock are never capped.
"""

from __future__ import annotations

from typing import Any

from models.common import DocumentRef, LimitRefused

# A request's life has a handful of cycles of a few decisions each, and a few dozen
# documents; the caps sit far above that and far below what would strain the history.
MAX_DOCUMENTS_PER_REQUEST = 300
MAX_DECISIONS_PER_REQUEST = 200
MAX_PAUSES_PER_REQUEST = 20

# Updates that append a Decision to the request (the others only add documents).
DECIDING = frozenset({
    "approve", "suspend", "reprove", "declare_works", "pause_clock", "answer_inquiry",
    "record_inspection",
})


def cited_documents(parsed: Any) -> list[DocumentRef]:
    """Documents an update adds: ``documents``, ``parecer``, ``report`` (when present)."""
    found = list(getattr(parsed, "documents", None) or [])
    for name in ("parecer", "report"):
        ref = getattr(parsed, name, None)
        if isinstance(ref, DocumentRef):
            found.append(ref)
    return found


def check_growth(state: Any, action: str, parsed: Any) -> None:
    """Refuse ``action`` when it would pass a cap of this request (``LimitRefused``)."""
    adding = len(cited_documents(parsed))
    if adding and len(state.documents) + adding > MAX_DOCUMENTS_PER_REQUEST:
        raise LimitRefused(
            f"documents: a solicitação já tem {len(state.documents)} documento(s); com mais "
            f"{adding} passaria do limite de {MAX_DOCUMENTS_PER_REQUEST} por solicitação"
        )
    if action in DECIDING and len(state.decisions) + 1 > MAX_DECISIONS_PER_REQUEST:
        raise LimitRefused(
            f"{action}: a solicitação atingiu o limite de {MAX_DECISIONS_PER_REQUEST} "
            "decisões; só a desistência (withdraw) ainda é possível"
        )
    if action == "pause_clock":
        pauses = sum(1 for d in state.decisions if d.action == "pause_clock")
        if pauses + 1 > MAX_PAUSES_PER_REQUEST:
            raise LimitRefused(
                f"pause_clock: o prazo já foi suspenso {pauses} vezes; o limite é "
                f"{MAX_PAUSES_PER_REQUEST} suspensões por solicitação"
            )
