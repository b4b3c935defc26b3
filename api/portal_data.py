"""What the portal reads about its users: their requests (the store's projection plus each
request's start input for the party), their installations, the RT's registered e-mail,
and the e-mails the portal itself sends (password links).

``installations_of(gd, document)`` is the installation picker's one source: the
distributor's customer base (the ``installation`` table, ``gd installations import``; the
same rows as ``GET /api/v1/installations?document=``), then the installation numbers of
requests already filed in that CPF/CNPJ that the base does not list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from activities.tables import RequestRecord, TechnicianRecord

log = logging.getLogger("gd.portal")
_REQ: sa.Table = RequestRecord.__table__  # type: ignore[attr-defined]
_TECH: sa.Table = TechnicianRecord.__table__  # type: ignore[attr-defined]
# The most requests a list shows (newest first).
LIST_LIMIT = 200


@dataclass
class Row:
    request_id: str
    workflow_id: str
    kind: str
    status: str
    service_note: str | None
    protocol: str | None
    installation_number: str | None
    due_at: Any
    due_rule: str | None
    generation_class: str | None
    created_at: Any


def _rows(store: Any, where: Any, limit: int) -> list[Row]:
    with store.connection(write=False) as conn:
        found = conn.execute(sa.select(_REQ).where(where).order_by(_REQ.c.created_at.desc()).limit(limit)).all()
    return [Row(r.request_id, r.workflow_id, r.kind, r.status, r.service_note, r.protocol, r.installation_number,
                r.due_at, r.due_rule, r.generation_class, r.created_at) for r in found]


async def requests_of(portal: Any, role: str, *, council_key: str | None = None,
                      document: str | None = None) -> list[Row]:
    """The requests of an RT (the projection's technician column) or of a customer (the
    projection's keyed hash of their CPF/CNPJ, activities/digests.py): one index lookup each."""
    from activities.digests import document_digest

    store = portal.gd.store
    if role == "technician":
        if not council_key:
            return []
        return await run_in_threadpool(_rows, store, _REQ.c.technician == council_key, LIST_LIMIT)
    if not document:
        return []
    return await run_in_threadpool(_rows, store, _REQ.c.customer_digest == document_digest(document), LIST_LIMIT)


async def installations_of(portal: Any, document: str) -> list[str]:
    """The customer's installations for the picker: the customer base's first, then those
    of earlier requests (newest first), no repeats."""
    from activities.installations import of_holder

    seen: list[str] = [r.number for r in await run_in_threadpool(of_holder, portal.gd.store, document)]
    for row in await requests_of(portal, "customer", document=document):
        if row.installation_number and row.installation_number not in seen:
            seen.append(row.installation_number)
    return seen


async def customer_email_matches(portal: Any, document: str, email: str) -> bool:
    """Whether a request in this CPF/CNPJ names this e-mail as the customer's."""
    from api.routes_web import start_input

    wanted = email.strip().lower()
    for row in await requests_of(portal, "customer", document=document):
        raw = await start_input(portal, row.workflow_id)
        given = ((raw.get("customer") or {}).get("email") or "").strip().lower()
        if given and given == wanted:
            return True
    return False


def technician_email(store: Any, key: str) -> str | None:
    """The approved RT's registered e-mail (where its password link goes)."""
    with store.connection(write=False) as conn:
        row = conn.execute(sa.select(_TECH.c.email, _TECH.c.status).where(_TECH.c.key == key)).first()
    if row is None or row.status != "APPROVED":
        return None
    return row.email


async def send_link(settings: Any, to: str, subject: str, body: str) -> bool:
    """One e-mail from the AGV sender through the configured relay; False when it failed
    (logged without the address)."""
    import aiosmtplib

    message = EmailMessage()
    message["From"] = settings.sender_agv
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_s,
            use_tls=settings.smtp_ssl, start_tls=settings.smtp_starttls,
            username=settings.smtp_username or None, password=password,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        log.warning("portal e-mail not sent: %s", type(error).__name__)
        return False
    return True
