"""The inbox's queue read from the store (api/web_views.load_queue) on SQLite and on the
machine's PostgreSQL: order (overdue first), what waits for the distributor, "prazo
suspenso" and the filters that leave a paused deadline out, and "minhas" (the latest
assignment of each request, read in the database). Rows are written as the worker's
record_transition writes them (request_record, event_record)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from activities.tables import EventRecord, RequestRecord
from api import web_views as views
from tests.store_fixtures import Database, database, store  # noqa: F401

NOW = datetime.now(timezone.utc)


def put(store, rid: str, status: str, due: datetime, *, paused: bool = False, assigned: tuple[str, ...] = ()) -> None:
    wid = f"gd-request-{rid}"
    with store.connection() as conn:
        conn.execute(sa.insert(RequestRecord.__table__), [{
            "workflow_id": wid, "request_id": rid, "kind": "request", "status": status, "generation_class": "micro",
            "service_note": f"NS-{rid}", "protocol": f"P-{rid}", "due_at": due, "due_rule": "parecer",
            "sla_breaches": 0, "technician": "CREA-MG-123456", "cycle": 1, "clock_paused": paused,
            "created_at": NOW - timedelta(days=3), "updated_at": NOW - timedelta(days=3),
        }])
        for n, analyst in enumerate(assigned):
            conn.execute(sa.insert(EventRecord.__table__), [{
                "workflow_id": wid, "event_key": f"{n:04d}-assigned", "process": "access", "action": "assigned",
                "status": status, "at": NOW - timedelta(hours=10 - n), "actor_id": analyst, "actor_role": "analyst",
                "reasons": [], "documents": [], "data": {"analyst": analyst, "cycle": 1}, "recorded_at": NOW,
            }])


def notes(queue) -> list[str]:
    return [r.service_note for r in queue.rows]


def test_queue_order_paused_filters_and_mine(store):  # noqa: F811
    put(store, "late", "UNDER_ANALYSIS", NOW - timedelta(days=1), assigned=("ana.analista", "bruno.analista"))
    put(store, "paused", "UNDER_ANALYSIS", NOW + timedelta(days=1), paused=True)
    put(store, "later", "INSPECTION_REQUESTED", NOW + timedelta(days=40), assigned=("ana.analista",))
    put(store, "rt-turn", "SUSPENDED", NOW + timedelta(days=2))

    queue = views.load_queue(store, views.QueueFilters(), "ana.analista", at=NOW)
    assert notes(queue) == ["NS-late", "NS-paused", "NS-later"]  # SUSPENDED waits for the RT
    assert queue.counts == {"UNDER_ANALYSIS": 2, "INSPECTION_REQUESTED": 1, "AWAITING_ANSWER": 0}
    paused = queue.rows[1]
    assert paused.paused and paused.due.text == "prazo suspenso" and not paused.due.overdue
    assert queue.rows[0].due.overdue and queue.rows[0].assignee == "bruno.analista"

    # a paused deadline is neither overdue nor due soon
    assert notes(views.load_queue(store, views.QueueFilters(overdue=True), "x", at=NOW)) == ["NS-late"]
    assert notes(views.load_queue(store, views.QueueFilters(due_within=5), "x", at=NOW)) == ["NS-late"]

    # mine: the latest assignment counts (late was reassigned from ana to bruno)
    assert notes(views.load_queue(store, views.QueueFilters(mine=True), "ana.analista", at=NOW)) == ["NS-later"]
    assert notes(views.load_queue(store, views.QueueFilters(mine=True), "bruno.analista", at=NOW)) == ["NS-late"]
    assert notes(views.load_queue(store, views.QueueFilters(mine=True), "ivo.inspetor", at=NOW)) == []
