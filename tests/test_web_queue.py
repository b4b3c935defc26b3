"""The inbox's queue read from the store (api/web_views.load_queue) on SQLite and on the
machine's PostgreSQL: order (overdue first), what waits for the distributor, "prazo
suspenso" and the filters that leave a paused deadline out, "minhas" (the latest
assignment of each request, read in the database), the technician and breached filters
and paging, read from the query string as the page's links write it. Rows are written as the worker's
record_transition writes them (request_record, event_record)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from activities.tables import EventRecord, RequestRecord
from api import web_views as views
from tests.store_fixtures import Database, database, store  # noqa: F401

NOW = datetime.now(timezone.utc)


def put(store, rid: str, status: str, due: datetime, *, paused: bool = False, assigned: tuple[str, ...] = (),
        technician: str = "CREA-MG-123456", breaches: int = 0) -> None:
    wid = f"gd-request-{rid}"
    with store.connection() as conn:
        conn.execute(sa.insert(RequestRecord.__table__), [{
            "workflow_id": wid, "request_id": rid, "kind": "request", "status": status, "generation_class": "micro",
            "service_note": f"NS-{rid}", "protocol": f"P-{rid}", "due_at": due, "due_rule": "parecer",
            "sla_breaches": breaches, "technician": technician, "cycle": 1, "clock_paused": paused,
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


def test_queue_technician_breached_filters_and_paging(store):  # noqa: F811
    # technician and breach flag on three requests of the distributor's turn and one of the RT's
    put(store, "j-late", "UNDER_ANALYSIS", NOW - timedelta(days=2), breaches=1)
    put(store, "j-soon", "INSPECTION_REQUESTED", NOW + timedelta(days=3))
    put(store, "p-breached", "UNDER_ANALYSIS", NOW + timedelta(days=5), technician="CAU-SP-A98765", breaches=2)
    put(store, "p-rt-turn", "SUSPENDED", NOW + timedelta(days=1), technician="CAU-SP-A98765", breaches=1)

    def read(query: dict[str, str], user: str = "x"):
        return views.load_queue(store, views.parse_filters(query), user, at=NOW)

    # rt: the council key as typed (lower case is the same RT); another RT's requests are out
    assert notes(read({"rt": "crea-mg-123456"})) == ["NS-j-late", "NS-j-soon"]
    paula = read({"rt": "CAU-SP-A98765"})
    assert notes(paula) == ["NS-p-breached"]  # the suspended one waits for the RT, not the distributor
    assert paula.counts == {"UNDER_ANALYSIS": 1, "INSPECTION_REQUESTED": 0, "AWAITING_ANSWER": 0}
    assert notes(read({"rt": "CREA-MG-999999"})) == []
    # a malformed key is named, and the rest of the queue still shows
    bad = views.parse_filters({"rt": "123456"})
    assert bad.errors == {"rt": "RT no formato CONSELHO-UF-REGISTRO (ex.: CREA-MG-123456)"} and bad.technician == ""
    assert notes(read({"rt": "123456"})) == ["NS-j-late", "NS-j-soon", "NS-p-breached"]

    # descumpridas: a deadline breached at least once, overdue or not; combined with rt
    breached = read({"descumpridas": "1"})
    assert notes(breached) == ["NS-j-late", "NS-p-breached"]
    assert all(r.breached for r in breached.rows)
    assert notes(read({"descumpridas": "1", "rt": "CAU-SP-A98765"})) == ["NS-p-breached"]
    assert notes(read({"descumpridas": "1", "vencidas": "1"})) == ["NS-j-late"]
    assert notes(read({"descumpridas": "0"})) == ["NS-j-late", "NS-j-soon", "NS-p-breached"]


def test_queue_pages_follow_each_other_without_overlap_or_gap(store):  # noqa: F811
    size = views.PAGE_SIZE
    # one page and 4 more; due dates tie in pairs (a tie must not move a row across pages)
    # and one row is RT's turn (never on any page)
    dues = {f"r{n:02d}": NOW + timedelta(days=1 + n // 2) for n in range(size + 4)}
    for rid, due in dues.items():
        put(store, rid, "UNDER_ANALYSIS", due)
    put(store, "rt-turn", "SUSPENDED", NOW)

    def page(query: dict[str, str]):
        return views.load_queue(store, views.parse_filters(query), "x", at=NOW)

    first, second = page({}), page({"pagina": "2"})
    assert (first.total, first.pages, first.page, second.page) == (size + 4, 2, 1, 2)
    assert len(first.rows) == size and len(second.rows) == 4
    by_due = sorted(dues, key=lambda rid: dues[rid])  # ties: by request id, as the ids were made
    assert notes(first) + notes(second) == [f"NS-{rid}" for rid in by_due]  # no overlap, no gap
    assert set(notes(first)).isdisjoint(notes(second))
    # the same pages again (a stable order, not the database's whim)
    assert notes(page({"pagina": "2"})) == notes(second) and notes(page({"pagina": "1"})) == notes(first)
    # past the last page: the last page; nonsense: the first
    assert notes(page({"pagina": "9"})) == notes(second) and page({"pagina": "9"}).page == 2
    assert notes(page({"pagina": "abc"})) == notes(first)
    # the page's "Próxima" link keeps the filters and asks for page 2
    filters = views.parse_filters({"classe": "micro", "rt": "CREA-MG-123456"})
    assert filters.query(pagina=2) == "classe=micro&rt=CREA-MG-123456&pagina=2"
    micro_next = page({"classe": "micro", "rt": "CREA-MG-123456", "pagina": "2"})
    assert notes(micro_next) == [f"NS-{rid}" for rid in by_due[size:]]
