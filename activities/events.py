"""Status-change events for other systems: CloudEvents 1.0 derived from the store's
transitions, kept in the ``outbound_event`` table (the pull feed and the webhooks read it).

Written by ``record_transition`` in the same transaction as the ``EventRecord`` they come
from: a transition is recorded once, so its events are too, and a retried activity derives
the same ids (``evt_`` + a digest of workflow id, event key and type). Nothing in an event
is personal data: ids, numbers (NS, Protocolo), statuses, dates and the sequence.

Which events a transition gives (``derive``), compared with the projection before it:

* ``br.gd.request.status_changed``: the request's status differs from the one before;
* ``br.gd.request.decided``: that change was made by staff (analyst, supervisor, inspector);
* ``br.gd.request.deadline_set``: the request's due date is new or another;
* ``br.gd.request.sla_breached``: the transition is the SLA breach;
* ``br.gd.technician.status_changed`` / ``br.gd.beneficiaries.status_changed``: the
  registration's status differs from the one before.

Order: ``position`` is assigned at insert. On PostgreSQL the insert takes a transaction
advisory lock held until commit, so positions become visible in the order they were
assigned and a reader that saw position N never later finds a smaller one appear (SQLite
has one writer at a time anyway).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from activities.tables import (
    BeneficiaryAllocation,
    OutboundEvent,
    RequestRecord,
    TechnicianRecord,
)
from models.activities import Transition
from models.names import EVENT_TYPES, EventTypes

SPEC_VERSION = "1.0"
SOURCES = {
    "access": "/gd-orchestrator/requests",
    "technician": "/gd-orchestrator/technicians",
    "beneficiaries": "/gd-orchestrator/beneficiaries",
}
STAFF_ROLES = ("analyst", "supervisor", "inspector")
MAX_FEED_PAGE = 500
_SAFE_SUBJECT = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def event_id(workflow_id: str, event_key: str, type_: str) -> str:
    """Stable id of one event: the same transition always gives the same id."""
    digest = hashlib.sha256(f"{workflow_id}\n{event_key}\n{type_}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def sequence_of(event_key: str) -> int:
    """The step number an event key starts with (``0007-approved`` -> 7; 0 for a key of
    another shape, e.g. an e-mail change's)."""
    head = event_key.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _subject(candidate: str | None, workflow_id: str) -> str:
    return candidate if candidate and _SAFE_SUBJECT.match(candidate) else workflow_id


class Before:
    """The projection as it was before a transition (read in its transaction)."""

    def __init__(self, status: str | None = None, due_at: datetime | None = None):
        self.status = status
        self.due_at = _aware(due_at)


def before(s: Session, t: Transition) -> Before:
    """Read what the transition is about to change (call before the projections' upsert)."""
    if t.request is not None:
        row = s.get(RequestRecord, t.request.workflow_id)
        return Before(row.status, row.due_at) if row else Before()
    if t.technician is not None:
        row = s.get(TechnicianRecord, t.technician.key)
        return Before(row.status) if row else Before()
    if t.allocation is not None:
        row = s.exec(
            select(BeneficiaryAllocation)
            .where(BeneficiaryAllocation.workflow_id == t.allocation.workflow_id)
            .order_by(BeneficiaryAllocation.id.desc())  # type: ignore[union-attr]
        ).first()
        return Before(row.status) if row else Before()
    return Before()


def derive(t: Transition, prior: Before) -> list[OutboundEvent]:
    """The events of one transition, in the order a consumer should see them."""
    found: list[tuple[str, dict[str, Any]]] = []
    sequence = sequence_of(t.event_key)
    if t.process == "access" and t.request is not None:
        row = t.request
        subject = _subject(row.request_id, t.workflow_id)
        due_at = _aware(row.due_at)
        base = {
            "request_id": subject,
            "service_note": row.service_note,
            "protocol": row.protocol,
            "status": row.status,
            "previous_status": prior.status,
            "due_at": _iso(due_at),
            "sequence": sequence,
        }
        changed = row.status != prior.status
        if changed:
            found.append((EventTypes.REQUEST_STATUS_CHANGED, base))
            if t.actor is not None and t.actor.role in STAFF_ROLES:
                found.append((EventTypes.REQUEST_DECIDED, {**base, "action": t.action}))
        if due_at is not None and due_at != prior.due_at:
            found.append((EventTypes.REQUEST_DEADLINE_SET, {**base, "rule": row.due_rule}))
        if t.action == "sla_breach":
            found.append((EventTypes.REQUEST_SLA_BREACHED, {**base, "rule": t.data.get("rule")}))
    elif t.process == "technician" and t.technician is not None:
        if t.technician.status != prior.status:
            subject = _subject(t.technician.key, t.workflow_id)
            found.append((EventTypes.TECHNICIAN_STATUS_CHANGED, {
                "request_id": None, "technician": subject, "service_note": None,
                "protocol": None, "status": t.technician.status,
                "previous_status": prior.status, "due_at": None, "sequence": sequence}))
    elif t.process == "beneficiaries" and t.allocation is not None:
        if t.allocation.status != prior.status:
            subject = _subject(t.allocation.request_id, t.workflow_id)
            found.append((EventTypes.BENEFICIARIES_STATUS_CHANGED, {
                "request_id": subject, "service_note": None, "protocol": None,
                "status": t.allocation.status, "previous_status": prior.status,
                "due_at": None, "sequence": sequence}))
    else:
        return []
    subject = found[0][1].get("request_id") or found[0][1].get("technician") if found else ""
    return [
        OutboundEvent(
            event_id=event_id(t.workflow_id, t.event_key, type_),
            type=type_,
            source=SOURCES[t.process],
            subject=subject or t.workflow_id,
            workflow_id=t.workflow_id,
            time=_aware(t.at) or datetime.now(timezone.utc),
            data=data,
        )
        for type_, data in found
    ]


def _lock_positions(conn: sa.Connection) -> None:
    """PostgreSQL: positions become visible in the order they are assigned (see above)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('gd-outbound-event'))"))


def append(s: Session, events: list[OutboundEvent], dialect: str) -> None:
    """Insert the events at the end of the transaction (the lock is held until commit)."""
    if not events:
        return
    _lock_positions(s.connection())
    for event in events:
        s.add(event)
    s.flush()


ACCESS_PREFIX = "gd-request-"


def record_email_failed(conn: sa.Connection, workflow_id: str, template: str, key: str) -> None:
    """In the mail outbox's own transaction (SQLAlchemy Core): the event of an access
    request's e-mail recorded refused. Once per outbox key (the event id derives from it)."""
    if not workflow_id.startswith(ACCESS_PREFIX):
        return
    event = email_failed(workflow_id, workflow_id[len(ACCESS_PREFIX):], template, key,
                         datetime.now(timezone.utc))
    table = OutboundEvent.__table__
    if conn.execute(sa.select(table.c.position).where(table.c.event_id == event.event_id)).first():
        return
    _lock_positions(conn)
    conn.execute(table.insert().values(
        event_id=event.event_id, type=event.type, source=event.source, subject=event.subject,
        workflow_id=event.workflow_id, time=event.time, data=event.data, recorded_at=event.recorded_at,
    ))


def email_failed(workflow_id: str, request_id: str, template: str, key: str,
                 at: datetime) -> OutboundEvent:
    """The event of an e-mail recorded refused (for the mail outbox to append: no
    address, only the template and the request)."""
    return OutboundEvent(
        event_id=event_id(workflow_id, key, EventTypes.REQUEST_EMAIL_FAILED),
        type=EventTypes.REQUEST_EMAIL_FAILED,
        source=SOURCES["access"],
        subject=_subject(request_id, workflow_id),
        workflow_id=workflow_id,
        time=_aware(at) or datetime.now(timezone.utc),
        data={"request_id": _subject(request_id, workflow_id), "template": template,
              "service_note": None, "protocol": None, "status": None,
              "previous_status": None, "due_at": None, "sequence": 0},
    )


def cloudevent(row: OutboundEvent) -> dict[str, Any]:
    """The CloudEvents 1.0 JSON of a stored event (structured mode)."""
    return {
        "specversion": SPEC_VERSION,
        "id": row.event_id,
        "type": row.type,
        "source": row.source,
        "subject": row.subject,
        "time": _iso(row.time),
        "datacontenttype": "application/json",
        "data": row.data,
    }


def read_after(store: Any, after: int, limit: int = 100,
               types: list[str] | tuple[str, ...] | None = None) -> tuple[list[OutboundEvent], int]:
    """Events after position ``after`` (of ``types``, all when None), oldest first, and
    the highest position looked at (the cursor to go on from, past filtered-out events)."""
    limit = max(1, min(limit, MAX_FEED_PAGE))
    with store.session(write=False) as s:
        # The top first: every position up to it is committed (see the module docstring),
        # so rows read next, up to it, have no gap even under READ COMMITTED.
        top = int(s.exec(select(sa.func.max(OutboundEvent.position))).first() or 0)
        if top <= after:
            return [], after
        query = select(OutboundEvent).where(
            OutboundEvent.position > after, OutboundEvent.position <= top)  # type: ignore[operator]
        if types is not None and set(types) != set(EVENT_TYPES):
            query = query.where(OutboundEvent.type.in_(list(types)))  # type: ignore[attr-defined]
        rows = list(s.exec(query.order_by(OutboundEvent.position).limit(limit)).all())  # type: ignore[arg-type]
        through = int(rows[-1].position or after) if len(rows) == limit else top
        return rows, through


def last_position(store: Any) -> int:
    with store.session(write=False) as s:
        top = s.exec(select(sa.func.max(OutboundEvent.position))).first()
        return int(top or 0)
