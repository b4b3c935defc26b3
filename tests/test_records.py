"""Record activities: intake validation, NS/Protocolo numbering, the event log."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from temporalio.testing import ActivityEnvironment

from activities.blobs import BlobStore
from activities.records import RecordActivities
from activities.store import Store
from activities.tables import EventRecord, IssuedNumber
from models.activities import (
    AllocationRecord,
    IntakeCheck,
    IssuedNumbers,
    NumberRequest,
    RequestRow,
    Transition,
)
from models.common import Actor, DocumentRef, Reason
from tests.store_fixtures import (  # noqa: F401
    Database,
    access_raw,
    blobs,
    database,
    fake_ref,
    make_cpf,
    records,
    set_technician,
    store,
    upload_pdf,
)

UTC = timezone.utc
TECH = "CREA-MG-12345"


def _run_together(n: int, fn) -> list[Any]:
    barrier = threading.Barrier(n)

    def call(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


# --- numbering ----------------------------------------------------------------------


def test_numbers_are_unique_under_concurrent_workers(database: Database, blobs: BlobStore) -> None:
    """50 threads on two Store instances (two workers) sharing one database."""
    stores = [database.open(), database.open()]
    stores[0].create_schema()
    workers = [RecordActivities(s, blobs) for s in stores]
    threads, per_thread = 50, 4

    def issue(i: int) -> list[IssuedNumbers]:
        worker = workers[i % 2]
        return [
            worker.issue_numbers(NumberRequest(workflow_id=f"gd-request-c{i}", step=f"s{k}"))
            for k in range(per_thread)
        ]

    started = time.perf_counter()
    issued = [n for batch in _run_together(threads, issue) for n in batch]
    elapsed = time.perf_counter() - started
    total = threads * per_thread
    print(f"\n[{database.kind}] {total} numbers from {threads} threads / 2 stores in "
          f"{elapsed:.2f} s ({total / elapsed:.0f}/s)")
    notes = [n.service_note for n in issued]
    protocols = [n.protocol for n in issued]
    assert len(set(notes)) == total and len(set(protocols)) == total
    assert all(len(ns) == 10 and ns.isdigit() for ns in notes)
    year = str(datetime.now(ZoneInfo("America/Sao_Paulo")).year)
    assert all(len(p) == 10 and p.startswith(year) for p in protocols)
    # Gapless: every value of the sequences was handed out exactly once.
    assert sorted(int(ns) for ns in notes) == list(range(7_000_000_001, 7_000_000_001 + total))
    assert sorted(int(p[4:]) for p in protocols) == list(range(1, total + 1))


def test_same_step_concurrently_gets_one_answer(database: Database, blobs: BlobStore) -> None:
    stores = [database.open(), database.open()]
    stores[0].create_schema()
    workers = [RecordActivities(s, blobs) for s in stores]
    request = NumberRequest(workflow_id="gd-request-twin", step="intake")
    answers = _run_together(20, lambda i: workers[i % 2].issue_numbers(request))
    assert len({(a.service_note, a.protocol, a.issued_at) for a in answers}) == 1
    with stores[0].session(write=False) as s:
        assert len(s.exec(sa.select(IssuedNumber)).all()) == 1
    # The twins' increments were rolled back: the next number follows at once.
    following = workers[0].issue_numbers(NumberRequest(workflow_id="gd-request-next", step="intake"))
    assert int(following.service_note) == int(answers[0].service_note) + 1
    assert int(following.protocol) == int(answers[0].protocol) + 1


def test_numbers_are_idempotent_and_per_step(records: RecordActivities) -> None:
    first = records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="intake"))
    again = records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="intake"))
    other = records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="reanalysis-1"))
    assert first == again
    assert other.service_note != first.service_note
    assert first.service_note == "7000000001"
    assert first.issued_at.tzinfo is not None


def test_protocol_year_is_the_sao_paulo_year(store: Store, blobs: BlobStore) -> None:
    # 02:00 UTC on 1 January is still 31 December in Minas Gerais.
    clock = {"now": datetime(2026, 1, 1, 2, 0, tzinfo=UTC)}
    records = RecordActivities(store, blobs, clock=lambda: clock["now"])
    late = records.issue_numbers(NumberRequest(workflow_id="gd-request-y1", step="intake"))
    clock["now"] = datetime(2026, 1, 1, 3, 30, tzinfo=UTC)
    early = records.issue_numbers(NumberRequest(workflow_id="gd-request-y2", step="intake"))
    assert late.protocol == "2025000001"
    assert early.protocol == "2026000001"  # the yearly sequence starts again
    assert (late.service_note, early.service_note) == ("7000000001", "7000000002")


# --- event log and projections ------------------------------------------------------


def _transition(key: str, status: str = "AWAITING_APR", **extra: Any) -> Transition:
    now = extra.pop("at", datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
    return Transition(
        workflow_id="gd-request-r1",
        event_key=key,
        process="access",
        action=key.split("-")[0],
        status=status,
        at=now,
        actor=Actor(id="analyst-7", role="analyst"),
        reasons=[Reason(code="DOC_ILEGIVEL", text="ilegível")],
        documents=[fake_ref("parecer")],
        data={"due_at": now + timedelta(days=15), "n": 1},
        **extra,
    )


def _row(status: str, updated_at: datetime, **extra: Any) -> RequestRow:
    return RequestRow(
        workflow_id="gd-request-r1", request_id="r1", kind="request", status=status,
        created_at=datetime(2026, 5, 4, 12, 0, tzinfo=UTC), updated_at=updated_at, **extra,
    )


def test_a_retried_transition_writes_one_event(records: RecordActivities, store: Store) -> None:
    t = _transition("intake-0", request=_row("AWAITING_APR", datetime(2026, 5, 4, 12, tzinfo=UTC)))
    for _ in range(3):
        records.record_transition(t)
    _run_together(10, lambda i: records.record_transition(t))
    events = store.events("gd-request-r1")
    assert len(events) == 1
    event = events[0]
    assert (event.event_key, event.action, event.status) == ("intake-0", "intake", "AWAITING_APR")
    assert (event.actor_id, event.actor_role) == ("analyst-7", "analyst")
    assert event.reasons == [{"code": "DOC_ILEGIVEL", "text": "ilegível"}]
    assert event.documents[0]["kind"] == "parecer" and "content" not in event.documents[0]
    assert event.data["n"] == 1 and event.data["due_at"].startswith("2026-05-19T12:00:00")
    assert event.at == datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_a_retried_transition_does_not_touch_projections(records: RecordActivities, store: Store) -> None:
    t1 = datetime(2026, 5, 4, 12, tzinfo=UTC)
    records.record_transition(_transition("intake-0", request=_row("AWAITING_APR", t1)))
    records.record_transition(
        _transition("apr-0", "UNDER_ANALYSIS",
                    request=_row("UNDER_ANALYSIS", t1 + timedelta(hours=2), service_note="7000000001"))
    )
    # The first activity retried late: nothing changes (its event exists).
    records.record_transition(_transition("intake-0", request=_row("AWAITING_APR", t1)))
    row = store.request_row("gd-request-r1")
    assert row is not None and row.status == "UNDER_ANALYSIS" and row.service_note == "7000000001"
    assert [e.event_key for e in store.events("gd-request-r1")] == ["intake-0", "apr-0"]
    # A new event carrying an older snapshot never moves the projection back in time.
    records.record_transition(_transition("late-0", "AWAITING_APR", request=_row("AWAITING_APR", t1)))
    assert store.request_row("gd-request-r1").status == "UNDER_ANALYSIS"
    assert store.request_row("gd-request-r1").created_at == t1


def _stored_status(store: Store) -> tuple[int, dict[str, Any]] | None:
    with store.connection(write=False) as conn:
        row = conn.execute(sa.text(
            "SELECT sequence, status FROM request_status WHERE workflow_id = 'gd-request-r1'")).first()
    if row is None:
        return None
    status = row[1] if isinstance(row[1], dict) else __import__("json").loads(row[1])
    return row[0], status


def test_the_stored_status_only_moves_forward(records: RecordActivities, store: Store) -> None:
    """request_status keeps the newest status by sequence: a late (retried, out of order)
    step with an older one never puts it back."""
    assert _stored_status(store) is None
    records.record_transition(_transition("0001-received", status_snapshot={
        "request_id": "r1", "status": "AWAITING_APR", "sequence": 1, "pending_effects": 0}))
    assert _stored_status(store) == (1, {"request_id": "r1", "status": "AWAITING_APR",
                                         "sequence": 1, "pending_effects": 0})
    records.record_transition(_transition("0003-suspend", "SUSPENDED", status_snapshot={
        "request_id": "r1", "status": "SUSPENDED", "sequence": 3, "pending_effects": 0}))
    # Step 2 recorded late (its activity retried after step 3's): the event is appended,
    # the status stays the one of step 3.
    records.record_transition(_transition("0002-apr_registered", "UNDER_ANALYSIS", status_snapshot={
        "request_id": "r1", "status": "UNDER_ANALYSIS", "sequence": 2, "pending_effects": 0}))
    assert [e.event_key for e in store.events("gd-request-r1")] == [
        "0001-received", "0003-suspend", "0002-apr_registered"]
    assert _stored_status(store) == (3, {"request_id": "r1", "status": "SUSPENDED",
                                         "sequence": 3, "pending_effects": 0})
    # The same sequence again (a twin) changes nothing either.
    records.record_transition(_transition("0003-other", "CANCELLED", status_snapshot={
        "request_id": "r1", "status": "CANCELLED", "sequence": 3, "pending_effects": 0}))
    assert _stored_status(store)[1]["status"] == "SUSPENDED"
    # One decision recorded by two steps (a handler's step, then the next one's while
    # the first's e-mails drained): the same sequence with fewer effects pending replaces,
    # never the other way round.
    records.record_transition(_transition("0004-a", "APPROVED", status_snapshot={
        "request_id": "r1", "status": "APPROVED", "sequence": 4, "pending_effects": 2}))
    records.record_transition(_transition("0004-b", "APPROVED", status_snapshot={
        "request_id": "r1", "status": "APPROVED", "sequence": 4, "pending_effects": 0}))
    assert _stored_status(store)[1]["pending_effects"] == 0
    records.record_transition(_transition("0004-a-late", "APPROVED", status_snapshot={
        "request_id": "r1", "status": "APPROVED", "sequence": 4, "pending_effects": 2}))
    assert _stored_status(store)[1]["pending_effects"] == 0
    records.record_transition(_transition("0004-approve", "APPROVED", status_snapshot={
        "request_id": "r1", "status": "APPROVED", "sequence": 4, "pending_effects": 0}))
    assert _stored_status(store) == (4, {"request_id": "r1", "status": "APPROVED",
                                         "sequence": 4, "pending_effects": 0})


def test_technician_projection(records: RecordActivities, store: Store) -> None:
    set_technician(records, TECH, "PENDING_REVIEW", 0)
    assert store.technician_status(TECH) == "PENDING_REVIEW"
    set_technician(records, TECH, "APPROVED", 1)
    assert store.technician_status(TECH) == "APPROVED"
    assert len(store.events(f"gd-technician-{TECH}")) == 2


def _allocation(workflow: str, status: str, percents: list[int], day: int) -> Transition:
    cpf = make_cpf(111222333)
    alloc = AllocationRecord(
        workflow_id=workflow, request_id=workflow.removeprefix("gd-beneficiaries-"),
        generator_installation="3001234567", modality="local", mode="percent",
        units=[{"installation_number": f"30099999{i:02d}", "holder_document": cpf, "percent": p}
               for i, p in enumerate(percents)],
        status=status,
        effective_from=date(2026, 7, 1) if status == "REGISTERED" else None,
        recorded_at=datetime(2026, 6, day, tzinfo=UTC),
    )
    return Transition(
        workflow_id=workflow, event_key=f"{status.lower()}-{day}", process="beneficiaries",
        action=status.lower(), status=status, at=datetime(2026, 6, day, tzinfo=UTC),
        allocation=alloc,
    )


def test_allocation_history_keeps_earlier_ones(records: RecordActivities, store: Store) -> None:
    first = "gd-beneficiaries-r1"
    records.record_transition(_allocation(first, "PENDING_REVIEW", [50, 50], 1))
    assert store.current_allocation("3001234567") is None
    records.record_transition(_allocation(first, "REGISTERED", [50, 50], 2))
    current = store.current_allocation("3001234567")
    assert current is not None and current.status == "REGISTERED"
    assert current.effective_from == date(2026, 7, 1)
    # A change later (same workflow id, a new run): rejected first, then registered.
    records.record_transition(_allocation(first, "PENDING_REVIEW", [70, 30], 10))
    records.record_transition(_allocation(first, "REJECTED", [70, 30], 11))
    assert store.current_allocation("3001234567").units[0]["percent"] == 50
    records.record_transition(_allocation(first, "PENDING_REVIEW", [90, 10], 20))
    records.record_transition(_allocation(first, "REGISTERED", [90, 10], 21))
    records.record_transition(_allocation(first, "REGISTERED", [90, 10], 21))  # retried
    history = store.allocation_history("3001234567")
    assert [(h.status, h.units[0]["percent"], h.current) for h in history] == [
        ("REGISTERED", 50, False),
        ("REJECTED", 70, False),
        ("REGISTERED", 90, True),
    ]
    assert store.current_allocation("3001234567").id == history[-1].id


# --- intake validation --------------------------------------------------------------


def _check(raw: Any, process: str = "access") -> IntakeCheck:
    return IntakeCheck(process=process, workflow_id="gd-request-req-1", raw=raw)


def test_intake_returns_every_problem_at_once(
    records: RecordActivities, store: Store, blobs: BlobStore
) -> None:
    stored = upload_pdf(store, blobs, "commercial_id")
    wrong_size = stored.model_copy(update={"size": stored.size + 1})
    missing = fake_ref("access_form")
    raw = access_raw([wrong_size, missing], cpf="123.456.789-00")
    result = records.validate_intake(_check(raw))
    assert result.normalized is None
    found = {(p.field, p.code) for p in result.problems}
    assert found == {
        ("customer.document", "cpf_check_digits"),
        ("documents[0]", "document_size_mismatch"),
        ("documents[1]", "document_missing"),
        ("technician", "technician_not_approved"),
    }
    by_code = {p.code: p.message for p in result.problems}
    assert "CREA-MG nº 12345 não está aprovado" in by_code["technician_not_approved"]
    assert "sem cadastro" in by_code["technician_not_approved"]
    assert "não encontrado" in by_code["document_missing"]


def test_intake_names_the_technician_status(records: RecordActivities, store: Store, blobs: BlobStore) -> None:
    set_technician(records, TECH, "PENDING_REVIEW")
    raw = access_raw([upload_pdf(store, blobs)])
    result = records.validate_intake(_check(raw))
    assert [(p.field, p.code) for p in result.problems] == [("technician", "technician_not_approved")]
    assert "em análise" in result.problems[0].message


def test_clean_access_input_is_normalized(records: RecordActivities, store: Store, blobs: BlobStore) -> None:
    set_technician(records, TECH, "APPROVED")
    ref = upload_pdf(store, blobs)
    cpf = make_cpf(987654321)
    formatted = f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"
    # This customer names no installation (CPF alone, as the seed allows).
    result = records.validate_intake(_check(access_raw([ref], cpf=formatted, installation_number=None)))
    assert result.problems == []
    assert result.normalized is not None
    assert result.normalized["customer"]["document"] == cpf
    assert result.normalized["technician"] == {"council": "CREA", "uf": "MG", "registration": "12345"}
    assert result.normalized["documents"][0]["sha256"] == ref.sha256


def test_inquiry_needs_no_approved_technician(records: RecordActivities) -> None:
    raw = access_raw([], kind="inquiry", installation_number=None)
    result = records.validate_intake(_check(raw))
    assert result.problems == [] and result.normalized["kind"] == "inquiry"


def test_technician_intake(records: RecordActivities) -> None:
    good = {"name": "João Souza", "cpf": make_cpf(222333444), "email": "JOAO@Example.com",
            "phone": "(31) 98888-7777", "council": "CREA", "uf": "mg", "registration": "12.345"}
    result = records.validate_intake(_check(good, "technician"))
    assert result.problems == []
    assert result.normalized["email"] == "joao@example.com"
    assert result.normalized["registration"] == "12345"
    bad = dict(good, cpf="111.111.111-11", email="nope", uf="XX")
    result = records.validate_intake(_check(bad, "technician"))
    assert {p.field for p in result.problems} == {"cpf", "email", "uf"}
    assert result.normalized is None


def _beneficiaries_raw(generator: str = "3001234567", request_id: str = "req-9") -> dict[str, Any]:
    cpf = make_cpf(123456789)  # the holder of 3001234567 in the customer base
    return {
        "request_id": request_id,
        "generator_installation": generator,
        "holder_document": cpf,
        "modality": "remote",
        "actor": {"id": "cust-1", "role": "customer", "document": cpf},
        "allocation": {"mode": "percent", "units": [
            {"installation_number": "3001234568", "holder_document": cpf, "percent": 60},
            {"installation_number": "3001234569", "holder_document": cpf, "percent": 40},
        ]},
    }


def _connected(records: RecordActivities, status: str = "CONNECTED") -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    records.record_transition(Transition(
        workflow_id="gd-request-req-9", event_key=f"{status}-x", process="access",
        action="record_inspection", status=status, at=now,
        request=RequestRow(workflow_id="gd-request-req-9", request_id="req-9", kind="request",
                           status=status, installation_number="3001234567",
                           created_at=now, updated_at=now),
    ))


def test_beneficiaries_need_a_connected_generator(records: RecordActivities) -> None:
    result = records.validate_intake(_check(_beneficiaries_raw(), "beneficiaries"))
    assert [(p.field, p.code) for p in result.problems] == [("request_id", "generator_not_connected")]
    assert "não encontrada" in result.problems[0].message
    _connected(records, "APPROVED")
    result = records.validate_intake(_check(_beneficiaries_raw(), "beneficiaries"))
    assert "situação: APPROVED" in result.problems[0].message


def test_beneficiaries_generator_must_match(records: RecordActivities) -> None:
    _connected(records)
    mismatch = records.validate_intake(_check(_beneficiaries_raw("3009999999"), "beneficiaries"))
    assert [(p.field, p.code) for p in mismatch.problems] == [
        ("generator_installation", "generator_installation_mismatch")
    ]
    ok = records.validate_intake(_check(_beneficiaries_raw(), "beneficiaries"))
    assert ok.problems == []
    assert ok.normalized["allocation"]["units"][0]["installation_number"] == "3001234568"
    # Model problems and store problems together.
    raw = _beneficiaries_raw("3009999999")
    raw["allocation"]["units"][1]["percent"] = 30
    both = records.validate_intake(_check(raw, "beneficiaries"))
    assert {p.code for p in both.problems} == {"value_error", "generator_installation_mismatch"}


# --- through the Temporal activity environment --------------------------------------


def test_activities_run_in_a_temporal_activity_environment(
    records: RecordActivities, store: Store, blobs: BlobStore
) -> None:
    env = ActivityEnvironment()
    set_technician(records, TECH, "APPROVED")
    ref: DocumentRef = upload_pdf(store, blobs)
    result = env.run(records.validate_intake, _check(access_raw([ref])))
    assert result.problems == [] and result.normalized is not None
    numbers = env.run(records.issue_numbers, NumberRequest(workflow_id="gd-request-req-1", step="intake"))
    assert numbers == env.run(
        records.issue_numbers, NumberRequest(workflow_id="gd-request-req-1", step="intake")
    )
    t = _transition("intake-0", request=_row("AWAITING_APR", datetime.now(UTC),
                                              service_note=numbers.service_note,
                                              protocol=numbers.protocol))
    env.run(records.record_transition, t)
    env.run(records.record_transition, t)
    with store.session(write=False) as s:
        assert len(s.exec(sa.select(EventRecord)).all()) == 2  # technician + intake
    assert store.request_row("gd-request-r1").protocol == numbers.protocol
