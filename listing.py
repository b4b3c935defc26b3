"""Listing processes: the visibility query over the ``Gd*`` search attributes, the row each
process becomes (``RequestSummary``: search attributes only, no personal data), and the
order rows are shown in (by due date; the dev server's SQL visibility refuses ORDER BY).

Pure functions: no connection here (``GdClient.list_requests`` runs the query).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

from temporalio.client import WorkflowExecution, WorkflowExecutionStatus

from domain.calendar import end_of_day, local_date
from gd_errors import GdRefused, refusing
from models import ids
from models import search_attributes as sa
from models.common import Model

KINDS = ("inquiry", "request", "technician", "beneficiaries")
CLASSES = ("micro", "mini")
# Every status a search attribute can hold (AccessRequest, RT and beneficiaries).
KNOWN_STATUSES = (
    "RECEIVED", "REFUSED", "AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED",
    "REPROVED", "APPROVED", "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "CONNECTED",
    "AWAITING_ANSWER", "ANSWERED", "CANCELLED", "PENDING_REVIEW", "REJECTED", "REGISTERED",
)  # fmt: skip
ACTORS = ("technician", "analyst", "customer", "inspector", "supervisor", "system")


class RequestSummary(Model):
    """One process as visibility sees it (search attributes only: no personal data)."""

    workflow_id: str
    workflow_type: str
    request_id: str
    kind: str | None = None
    status: str | None = None
    generation_class: str | None = None
    service_note: str | None = None
    protocol: str | None = None
    technician: str | None = None
    next_actor: str | None = None
    due_at: datetime | None = None
    sla_breached: bool = False
    running: bool = True
    started_at: datetime | None = None
    closed_at: datetime | None = None


def summary_from(execution: WorkflowExecution) -> RequestSummary:
    attrs = execution.typed_search_attributes
    return RequestSummary(
        workflow_id=execution.id,
        workflow_type=execution.workflow_type,
        request_id=ids.short_id(execution.id),
        kind=attrs.get(sa.GD_KIND),
        status=attrs.get(sa.GD_STATUS),
        generation_class=attrs.get(sa.GD_CLASS),
        service_note=attrs.get(sa.GD_SERVICE_NOTE),
        protocol=attrs.get(sa.GD_PROTOCOL),
        technician=attrs.get(sa.GD_TECHNICIAN),
        next_actor=attrs.get(sa.GD_NEXT_ACTOR),
        due_at=attrs.get(sa.GD_DUE_AT),
        sla_breached=bool(attrs.get(sa.GD_SLA_BREACHED)),
        running=execution.status == WorkflowExecutionStatus.RUNNING,
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listed(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in (x.strip() for x in value.split(",")) if v]
    return [v for v in value if v]


def _in(name: str, values: list[str]) -> str:
    if len(values) == 1:
        return f"{name} = {_quote(values[0])}"
    return f"{name} IN ({', '.join(_quote(v) for v in values)})"


def _known_values(values: list[str], allowed: Sequence[str], what: str) -> list[str]:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise GdRefused(f"{what} desconhecido: {', '.join(bad)}; aceitos: {', '.join(allowed)}")
    return values


_technician_key = refusing(ids.parse_technician_key)


def build_list_query(
    *,
    status: str | Iterable[str] | None = None,
    overdue: bool = False,
    due_within_days: int | None = None,
    technician: str | None = None,
    generation_class: str | None = None,
    kind: str | Iterable[str] | None = None,
    next_actor: str | None = None,
    open_only: bool = False,
    now: datetime | None = None,
) -> str:
    """The visibility query over the Gd* search attributes (values checked, then quoted)."""
    now = now or datetime.now(timezone.utc)
    kinds = _known_values(_listed(kind) or ["request", "inquiry"], KINDS, "tipo")
    clauses = [_in(sa.GD_KIND.name, kinds)]
    statuses = [s.upper() for s in _listed(status)]
    if statuses:
        clauses.append(_in(sa.GD_STATUS.name, _known_values(statuses, KNOWN_STATUSES, "status")))
    if generation_class:
        cls = _known_values([generation_class.lower()], CLASSES, "classe")[0]
        clauses.append(f"{sa.GD_CLASS.name} = {_quote(cls)}")
    if technician:
        clauses.append(f"{sa.GD_TECHNICIAN.name} = {_quote(_technician_key(technician).key)}")
    if next_actor:
        actor = _known_values([next_actor], ACTORS, "próximo a agir")[0]
        clauses.append(f"{sa.GD_NEXT_ACTOR.name} = {_quote(actor)}")
    if overdue or due_within_days is not None or open_only:
        clauses.append("ExecutionStatus = 'Running'")
    due = sa.GD_DUE_AT.name
    if overdue:
        clauses.append(f"{due} < {_quote(_rfc3339(now))}")
    if due_within_days is not None:
        if due_within_days < 0:
            raise GdRefused("--due-within deve ser um número de dias ≥ 0")
        until = end_of_day(local_date(now) + timedelta(days=due_within_days))
        if not overdue:
            clauses.append(f"{due} >= {_quote(_rfc3339(now))}")
        clauses.append(f"{due} <= {_quote(_rfc3339(until))}")
    return " AND ".join(clauses)


def sort_by_due(rows: Iterable[RequestSummary]) -> list[RequestSummary]:
    """Earliest due date first; rows without one last, newest first among them."""
    far = datetime.max.replace(tzinfo=timezone.utc)
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(
        rows,
        key=lambda r: (
            r.due_at is None,
            r.due_at or far,
            -((r.started_at or epoch) - epoch).total_seconds(),
        ),
    )


# --- the store's read model ----------------------------------------------------------------
# Requests and inquiries are also projected into the store (``RequestRecord``, written by
# the ``record_transition`` activity after each step): a table the queue can filter and
# sort by due date in one indexed SQL statement, where the dev server's visibility scans
# its rows (and refuses ORDER BY). Source of truth: the workflow (its ``status`` query);
# the store lags it by the time its effect queue takes to run ``record_transition``
# (well under a second normally; during a store outage, until the store is back), and
# visibility by the server's visibility write (milliseconds on the dev server).

STORE_KINDS = ("request", "inquiry")


def store_select(
    *,
    status: str | Iterable[str] | None = None,
    overdue: bool = False,
    due_within_days: int | None = None,
    technician: str | None = None,
    generation_class: str | None = None,
    kind: str | Iterable[str] | None = None,
    next_actor: str | None = None,
    open_only: bool = False,
    now: datetime | None = None,
):
    """The same filters as ``build_list_query`` over ``RequestRecord`` (values checked the
    same way), ordered like ``sort_by_due``; ``GdRefused`` for a kind the store does not
    hold (technician, beneficiaries: visibility lists those)."""
    import sqlalchemy as sql

    from activities.tables import RequestRecord
    from domain.rules import ACCESS

    now = now or datetime.now(timezone.utc)
    kinds = _known_values(_listed(kind) or list(STORE_KINDS), KINDS, "tipo")
    if set(kinds) - set(STORE_KINDS):
        raise GdRefused(f"tipo: o registro local só tem {', '.join(STORE_KINDS)}")
    req = RequestRecord.__table__
    where = [req.c.kind.in_(kinds)]
    statuses = [s.upper() for s in _listed(status)]
    if statuses:
        where.append(req.c.status.in_(_known_values(statuses, KNOWN_STATUSES, "status")))
    if generation_class:
        where.append(req.c.generation_class == _known_values([generation_class.lower()], CLASSES, "classe")[0])
    if technician:
        where.append(req.c.technician == _technician_key(technician).key)
    if next_actor:
        actor = _known_values([next_actor], ACTORS, "próximo a agir")[0]
        where.append(req.c.status.in_([s for s in ACCESS.statuses if ACCESS.next_actor(s) == actor]))
    if overdue or due_within_days is not None or open_only:
        where.append(req.c.status.notin_(ACCESS.terminal()))
    if overdue:
        where.append(req.c.due_at < now)
    if due_within_days is not None:
        if due_within_days < 0:
            raise GdRefused("--due-within deve ser um número de dias ≥ 0")
        if not overdue:
            where.append(req.c.due_at >= now)
        where.append(req.c.due_at <= end_of_day(local_date(now) + timedelta(days=due_within_days)))
    return (
        sql.select(req).where(*where)
        .order_by(req.c.due_at.is_(None), req.c.due_at, req.c.created_at.desc(), req.c.request_id)
    )


def summary_from_record(row) -> RequestSummary:
    """A ``RequestRecord`` row (mapping) as the list shows it."""
    from domain.rules import ACCESS
    from models.names import Workflows

    running = row["status"] not in ACCESS.terminal()
    return RequestSummary(
        workflow_id=row["workflow_id"],
        workflow_type=Workflows.ACCESS_REQUEST,
        request_id=row["request_id"],
        kind=row["kind"],
        status=row["status"],
        generation_class=row["generation_class"],
        service_note=row["service_note"],
        protocol=row["protocol"],
        technician=row["technician"],
        next_actor=ACCESS.next_actor(row["status"]),
        due_at=_utc(row["due_at"]),
        sla_breached=(row["sla_breaches"] or 0) > 0,
        running=running,
        started_at=_utc(row["created_at"]),
        closed_at=None if running else _utc(row["updated_at"]),
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
