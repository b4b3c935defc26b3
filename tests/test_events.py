"""Status-change events (issue 19): derived in the store's transaction, delivered by a
WebhookSubscription workflow to a real HTTP receiver on loopback, signed per the Standard
Webhooks spec (checked here by an implementation written from the spec's text), and
served by the pull feed with the same ids."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlmodel import select
from temporalio.common import WorkflowIDConflictPolicy

from activities import events, webhooks
from activities.blobs import upload
from activities.records import RecordActivities
from activities.tables import OutboundEvent, WebhookDelivery, WebhookSubscription
from models.activities import RequestRow, TechnicianRow, Transition
from models.common import Actor
from models.ids import technician_id
from models.technician import TechnicianStatus
from models.webhooks import SubscriptionProgress
from tests.access_helpers import (
    ANALYST,
    APR_KINDS,
    CUSTOMER,
    INSPECTOR,
    TECH,
    quiet,
    request_input,
    start,
    status,
    update,
)
from tests.pdf_fixture import make_pdf
from tests.smtp_sink import free_port

T0 = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)  # 10:00 in São Paulo


# --- the spec, implemented from its text (never calling our signer) ------------------------


def spec_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: the signed content is ``msg_id.timestamp.payload``; the key is
    the base64 part of the secret after the ``whsec_`` prefix; the signature is the base64
    HMAC-SHA256, sent as a space-delimited list of ``v1,<signature>``."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    key = base64.b64decode(secret.split("_", 1)[1])
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for part in headers["webhook-signature"].split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return True
    return False


# --- a real receiver on loopback ---------------------------------------------------------


class Receiver:
    """HTTP server in a thread. ``fail_next`` answers 500, ``answer`` sets a fixed status,
    ``delay_s`` makes it slow, ``down()``/``up()`` close and reopen the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.fail_next = 0
        self.answer = 200
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/gd"

    def up(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver.lock:
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        code = 500
                    else:
                        code = receiver.answer
                    receiver.received.append({
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body, "code": code, "path": self.path})
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if 200 <= r["code"] < 300]

    def deduped_ids(self) -> list[str]:
        """The ids a receiver deduping by ``webhook-id`` keeps, in first-arrival order."""
        seen: dict[str, None] = {}
        for r in self.accepted():
            seen.setdefault(r["headers"]["webhook-id"], None)
        return list(seen)


async def wait_until(predicate, timeout: float, what: str, env=None, step: timedelta | None = None) -> None:
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        if env is not None and step is not None:
            await env.sleep(step)
        await asyncio.sleep(0.1)


def feed_after(store, after: int) -> list[OutboundEvent]:
    rows, _ = events.read_after(store, after, 500)
    return rows


def check_delivered(receiver: Receiver, secret: str, expected: list[OutboundEvent]) -> None:
    """Every event arrived, signed, each id at least once; deduped, in feed order."""
    for r in receiver.received:
        assert spec_verify(secret, r["headers"], r["body"]), "signature does not verify"
        event = json.loads(r["body"])
        assert event["id"] == r["headers"]["webhook-id"]
        assert event["specversion"] == "1.0"
        assert r["headers"]["content-type"].startswith("application/cloudevents+json")
    assert receiver.deduped_ids() == [e.event_id for e in expected]
    by_subject: dict[str, list[int]] = defaultdict(list)
    positions = {e.event_id: e.position for e in expected}
    for event_id in receiver.deduped_ids():
        subject = next(e.subject for e in expected if e.event_id == event_id)
        by_subject[subject].append(positions[event_id])
    for subject, seen in by_subject.items():
        assert seen == sorted(seen), f"out of order for {subject}"


# --- derivation, in the store's transaction --------------------------------------------------


def _row(status: str, at: datetime, due: datetime | None = None, ns: str | None = "7000000001",
         request_id: str = "REQ-EVT-1") -> RequestRow:
    return RequestRow(workflow_id=f"gd-request-{request_id}", request_id=request_id, kind="request",
                      status=status, service_note=ns, protocol="2026000001", due_at=due,
                      due_rule="apr_window" if due else None, created_at=T0, updated_at=at)


def _t(seq: int, action: str, status: str, at: datetime, due: datetime | None = None,
       actor: dict | None = None, request_id: str = "REQ-EVT-1") -> Transition:
    return Transition(
        workflow_id=f"gd-request-{request_id}", event_key=f"{seq:04d}-{action}", process="access",
        action=action, status=status, at=at, actor=Actor(**actor) if actor else None,
        request=_row(status, at, due, request_id=request_id))


def test_transitions_become_cloudevents_once_with_stable_ids(deps):
    records = RecordActivities(deps.store, deps.blobs)
    due = datetime(2026, 3, 3, 13, 0, tzinfo=timezone.utc)
    first = _t(1, "received", "AWAITING_APR", T0, due)
    records.record_transition(first)
    records.record_transition(first)  # a retried activity: nothing twice
    records.record_transition(_t(2, "reminder", "AWAITING_APR", T0 + timedelta(hours=20), due))
    records.record_transition(_t(3, "approved", "APPROVED", T0 + timedelta(days=1), None, ANALYST))
    rows = feed_after(deps.store, 0)
    assert [(r.type, r.data["status"], r.data["previous_status"], r.data["sequence"]) for r in rows] == [
        ("br.gd.request.status_changed", "AWAITING_APR", None, 1),
        ("br.gd.request.deadline_set", "AWAITING_APR", None, 1),
        ("br.gd.request.status_changed", "APPROVED", "AWAITING_APR", 3),
        ("br.gd.request.decided", "APPROVED", "AWAITING_APR", 3),
    ]
    assert rows[1].data["due_at"] == "2026-03-03T13:00:00Z"
    assert {r.subject for r in rows} == {"REQ-EVT-1"}
    # The id is a function of workflow, event key and type only (stable across retries).
    expected = "evt_" + hashlib.sha256(
        b"gd-request-REQ-EVT-1\n0001-received\nbr.gd.request.status_changed").hexdigest()[:32]
    assert rows[0].event_id == expected
    data_keys = {"request_id", "service_note", "protocol", "status", "previous_status", "due_at", "sequence"}
    assert data_keys <= set(rows[0].data)
    body = json.dumps([events.cloudevent(r) for r in rows])
    assert "@" not in body and "529" not in body  # no e-mail, no CPF
    ce = events.cloudevent(rows[0])
    assert ce["specversion"] == "1.0" and ce["source"] == "/gd-orchestrator/requests"
    assert ce["time"] == "2026-03-02T13:00:00Z" and ce["subject"] == "REQ-EVT-1"


def test_technician_status_changes_and_feed_cursor_skips_nothing(deps):
    records = RecordActivities(deps.store, deps.blobs)
    for seq, status in enumerate(("PENDING_REVIEW", "APPROVED"), start=1):
        records.record_transition(Transition(
            workflow_id="gd-technician-CREA-MG-123456", event_key=f"{seq:04d}-{status.lower()}",
            process="technician", action=status.lower(), status=status, at=T0 + timedelta(minutes=seq),
            technician=TechnicianRow(key="CREA-MG-123456", workflow_id="gd-technician-CREA-MG-123456",
                                     status=status, updated_at=T0 + timedelta(minutes=seq),
                                     email="rt@example.com")))
    rows = feed_after(deps.store, 0)
    assert [(r.type, r.subject, r.data["status"], r.data["previous_status"]) for r in rows] == [
        ("br.gd.technician.status_changed", "CREA-MG-123456", "PENDING_REVIEW", None),
        ("br.gd.technician.status_changed", "CREA-MG-123456", "APPROVED", "PENDING_REVIEW"),
    ]
    assert "rt@example.com" not in json.dumps([events.cloudevent(r) for r in rows])
    # Paging: a cursor past a filtered-out type still advances, and nothing is skipped.
    page, through = events.read_after(deps.store, 0, 1)
    assert [p.position for p in page] == [rows[0].position] and through == rows[0].position
    page, through = events.read_after(deps.store, through, 10, ["br.gd.request.decided"])
    assert page == [] and through == rows[1].position


def test_subscription_input_is_checked_and_secret_sealed(deps, monkeypatch):
    store = deps.store
    for url, code in (("ftp://x/y", "url_invalid"), ("https://u:p@h/x", "url_credentials"),
                      ("http://example.com/x", "url_not_https"), ("https://h/x y", "url_invalid"),
                      ("https://h/" + "a" * 2000, "url_too_long")):
        with pytest.raises(webhooks.SubscriptionRefused) as refused:
            webhooks.create_subscription(store, "crm", url, None, dev=False)
        assert refused.value.code == code and refused.value.field == "url"
    with pytest.raises(webhooks.SubscriptionRefused) as refused:
        webhooks.create_subscription(store, "crm", "https://h/x", ["br.gd.nope"], dev=True)
    assert refused.value.field == "types"
    with pytest.raises(webhooks.SecretsUnavailable):  # production without codec keys
        webhooks.create_subscription(store, "crm", "https://h/x", None, dev=False)
    assert webhooks.list_subscriptions(store, "crm") == []
    from codec import new_key_entry

    monkeypatch.setenv("GD_CODEC_KEYS", new_key_entry("kt"))
    row, secret = webhooks.create_subscription(store, "crm", "https://h/x", None, dev=False)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    with store.session(write=False) as s:
        stored = s.get(WebhookSubscription, row.id)
    assert secret not in stored.secret_sealed and secret[6:] not in stored.secret_sealed
    assert webhooks.signing_secrets(stored) == [secret]
    shown = json.dumps(webhooks.public_view(stored))
    assert secret[6:] not in shown and "whsec_" not in shown and "secret" not in webhooks.public_view(stored)


# --- delivery through failures (time-skipping) ---------------------------------------------


def _pdf(deps, kind: str, label: str | None = None) -> dict:
    return upload(deps.store, deps.blobs, make_pdf(label or kind), kind=kind,
                  filename=f"{kind}.pdf").model_dump(mode="json")


async def _approve_rt(client, task_queue) -> None:
    raw = {"name": "João Engenheiro", "cpf": "111.444.777-35", "email": "joao.rt@example.com",
           "phone": "31 98888-7777", "council": "CREA", "uf": "MG", "registration": "123456",
           "title": "Engenheiro Eletricista"}
    handle = await client.start_workflow(
        "TechnicianRegistration", raw, id=technician_id("CREA", "MG", "123456"),
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    for _ in range(200):
        if (await handle.query("status", result_type=TechnicianStatus)).status == "PENDING_REVIEW":
            break
        await asyncio.sleep(0.05)
    await handle.execute_update("approve", {"actor": ANALYST})
    await handle.result()



async def _request_under_analysis(client, task_queue, deps):
    """An approved RT's request with its APR registered (UNDER_ANALYSIS): (handle, status)."""
    await _approve_rt(client, task_queue)
    raw = request_input()
    raw["documents"] = [_pdf(deps, "commercial_id")]
    handle = await start(client, raw, task_queue)
    st = await status(handle)
    st = await update(handle, "register_apr", {
        "actor": TECH, "service_note": st.service_note, "protocol": st.protocol,
        "documents": [_pdf(deps, k) for k in APR_KINDS]})
    return handle, st

# On the time-skipping server an outstanding activity stops the clock: scan without
# waiting and idle on a (skippable) timer instead.
SKIPPABLE = {"poll_wait_s": 0.0, "idle_sleep_s": 1.0}


async def skip_while_retrying(env, sub, predicate, timeout: float, what: str) -> None:
    """Let virtual time pass in small steps while the workflow is in a backoff."""
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        progress = await sub.query("status", result_type=SubscriptionProgress)
        if progress.attempt > 0:
            await env.sleep(timedelta(minutes=2))
        else:
            await asyncio.sleep(0.1)


def _attempts(store, subscription_id: str) -> list[WebhookDelivery]:
    return webhooks.deliveries(store, subscription_id, 0, 10_000)


@pytest.mark.timeskip
async def test_receiver_failing_down_an_hour_and_slow_gets_every_event_in_order(
    client, env, real_worker, task_queue, deps, settings
):
    receiver = Receiver().up()
    receiver.fail_next = 3
    receiver.delay_s = 1.2  # slower than a heartbeat period: the activity heartbeats
    row, secret = webhooks.create_subscription(deps.store, "sys-crm", receiver.url, None, dev=True)
    try:
        async with real_worker():
            sub = await webhooks.start_delivery(client, row, task_queue, **SKIPPABLE)
            handle, _ = await _request_under_analysis(client, task_queue, deps)
            await wait_until(lambda: len(receiver.deduped_ids()) >= 3, 60, "first deliveries")
            receiver.delay_s = 0.0
            receiver.down()  # down: connection refused from here on
            await update(handle, "approve", {"actor": ANALYST, "parecer": _pdf(deps, "parecer", "p")})
            await quiet(handle)
            await wait_until(lambda: any(a.outcome == "failed" and a.error == "ConnectError"
                                         for a in _attempts(deps.store, row.id)), 60, "a refused attempt")
            failed_before = len(_attempts(deps.store, row.id))
            await env.sleep(timedelta(hours=1))  # the receiver stays down for an hour
            during = [a for a in _attempts(deps.store, row.id)][failed_before:]
            assert len(during) >= 5 and all(a.error == "ConnectError" for a in during), during
            receiver.up()
            expected = feed_after(deps.store, row.start_after)
            await skip_while_retrying(env, sub, lambda: receiver.deduped_ids() == [
                e.event_id for e in expected], 180, "every event after the outage")
            progress = await sub.query("status", result_type=SubscriptionProgress)
            assert progress.dead_lettered == 0
            await sub.signal("stop")
            await sub.result()
            await quiet(handle)
    finally:
        receiver.down()
    types = {e.type for e in expected}
    assert {"br.gd.technician.status_changed", "br.gd.request.status_changed",
            "br.gd.request.deadline_set", "br.gd.request.decided"} <= types, types
    check_delivered(receiver, secret, expected)
    codes = [r["code"] for r in receiver.received]
    assert codes[:3] == [500, 500, 500]
    attempts = _attempts(deps.store, row.id)
    assert {a.outcome for a in attempts} == {"delivered", "failed"}
    assert sum(a.outcome == "delivered" for a in attempts) >= len(expected)
    stored = webhooks.get_subscription(deps.store, row.id)
    assert stored.delivered_through == expected[-1].position


@pytest.mark.timeskip
async def test_dead_letter_after_three_days_then_410_unsubscribes(client, env, real_worker, task_queue, deps):
    receiver = Receiver().up()
    receiver.answer = 500
    records = RecordActivities(deps.store, deps.blobs)
    row, secret = webhooks.create_subscription(
        deps.store, "sys-billing", receiver.url, ["br.gd.request.status_changed"], dev=True)
    try:
        async with real_worker():
            sub = await webhooks.start_delivery(client, row, task_queue, **SKIPPABLE)
            records.record_transition(_t(1, "received", "AWAITING_APR", T0, request_id="REQ-DL-1"))
            await wait_until(lambda: len(receiver.received) >= 1, 30, "a first attempt")
            await env.sleep(timedelta(days=2, hours=23))  # still failing, not yet given up
            assert not any(a.outcome == "dead_letter" for a in _attempts(deps.store, row.id))
            await skip_while_retrying(env, sub, lambda: any(
                a.outcome == "dead_letter" for a in _attempts(deps.store, row.id)), 120, "the dead letter")
            attempts = _attempts(deps.store, row.id)
            failed = [a for a in attempts if a.outcome == "failed"]
            assert 60 <= len(failed) <= 120, len(failed)  # 5 s doubling to 1 h for 3 days
            receiver.answer = 410
            records.record_transition(_t(2, "approved", "APPROVED", T0 + timedelta(days=4),
                                         actor=ANALYST, request_id="REQ-DL-1"))
            result = SubscriptionProgress.model_validate(await sub.result())
    finally:
        receiver.down()
    assert result.dead_lettered == 1 and result.delivered == 0
    assert webhooks.get_subscription(deps.store, row.id).status == "gone"
    assert [json.loads(r["body"])["type"] for r in receiver.received] == [
        "br.gd.request.status_changed"] * len(receiver.received)
    assert receiver.received[-1]["code"] == 410
    for r in receiver.received:
        assert spec_verify(secret, r["headers"], r["body"])


# --- SLA breach and beneficiaries, from the real workflows ---------------------------------

PERSONAL = ("Maria", "Souza", "529.982.247-25", "52998224725", "@", "99876-5432", "98888-7777",
            "João", "111.444.777-35", "11144477735")


def _expected_id(workflow_id: str, event_key: str, type_: str) -> str:
    """Issue 19: the id is stable: a digest of workflow id, event key and type."""
    digest = hashlib.sha256(f"{workflow_id}\n{event_key}\n{type_}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


async def _recorded(client, handle, action: str) -> Transition:
    """The transition the workflow asked ``record_transition`` to store for ``action``,
    read back from its history (what a retried activity would be given again)."""
    found = []
    async for event in handle.fetch_history_events():
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name == "record_transition":
            [t] = await client.data_converter.decode(attrs.input.payloads, [Transition])
            if t.action == action:
                found.append(t)
    [transition] = found
    return transition


def _no_personal_data(rows: list[OutboundEvent]) -> None:
    body = json.dumps([events.cloudevent(r) for r in rows], ensure_ascii=False)
    assert not [p for p in PERSONAL if p in body], body


@pytest.mark.timeskip
async def test_an_sla_breach_of_a_request_becomes_one_sla_breached_event(
    client, env, real_worker, task_queue, deps
):
    async with real_worker():
        handle, st = await _request_under_analysis(client, task_queue, deps)
        assert st.status == "UNDER_ANALYSIS" and st.due_at is not None
        await quiet(handle)
        await env.sleep(st.due_at - await env.get_current_time() + timedelta(minutes=5))
        await quiet(handle)
        breached = await status(handle)
        assert [b.step for b in breached.sla_breaches] == ["parecer"]
        transition = await _recorded(client, handle, "sla_breach")
        # A retried activity records the same step again: still one event.
        RecordActivities(deps.store, deps.blobs).record_transition(transition)
        await handle.terminate(reason="test finished")
    rows = [r for r in feed_after(deps.store, 0) if r.workflow_id == handle.id]
    [breach] = [r for r in rows if r.type == "br.gd.request.sla_breached"]
    assert breach.event_id == _expected_id(handle.id, transition.event_key,
                                           "br.gd.request.sla_breached")
    ce = events.cloudevent(breach)
    assert (ce["type"], ce["subject"], ce["source"], ce["specversion"]) == (
        "br.gd.request.sla_breached", st.request_id, "/gd-orchestrator/requests", "1.0")
    assert ce["data"] == {
        "request_id": st.request_id, "service_note": st.service_note, "protocol": st.protocol,
        "status": "UNDER_ANALYSIS", "previous_status": "UNDER_ANALYSIS",
        "due_at": st.due_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "sequence": breached.sequence, "rule": "parecer"}
    # The breach changes no status: it is not a status change too.
    assert [r.type for r in rows if r.data["sequence"] == ce["data"]["sequence"]] == [
        "br.gd.request.sla_breached"]
    _no_personal_data(rows)


async def test_a_beneficiaries_registration_gives_status_changed_events(
    client, real_worker, task_queue, deps, smtp_sink
):
    from tests.registration_fixtures import Registration
    from tests.test_beneficiaries import _connect_request, beneficiary_input
    from models.beneficiaries import BeneficiaryStatus
    from models.ids import beneficiaries_id

    registration = Registration("BeneficiaryRegistration", BeneficiaryStatus,
                                lambda raw: beneficiaries_id(raw["request_id"]))
    raw = beneficiary_input()
    _connect_request(deps, raw["request_id"])
    async with real_worker():
        handle = await registration.start(client, raw, task_queue)
        await registration.settle(handle, lambda s: s.next_actor == "analyst" and s.notifications)
        await registration.update(handle, "confirm", {"actor": ANALYST})
        result = await handle.result()
        assert result.status == "REGISTERED"
        transition = await _recorded(client, handle, "registered")
    RecordActivities(deps.store, deps.blobs).record_transition(transition)  # a retry: once
    rows = [r for r in feed_after(deps.store, 0) if r.workflow_id == handle.id]
    assert [(r.type, r.subject, r.source, r.data["status"], r.data["previous_status"])
            for r in rows] == [
        ("br.gd.beneficiaries.status_changed", raw["request_id"], "/gd-orchestrator/beneficiaries",
         "PENDING_REVIEW", None),
        ("br.gd.beneficiaries.status_changed", raw["request_id"], "/gd-orchestrator/beneficiaries",
         "REGISTERED", "PENDING_REVIEW"),
    ]
    registered = rows[-1]
    assert registered.event_id == _expected_id(handle.id, transition.event_key,
                                               "br.gd.beneficiaries.status_changed")
    assert events.cloudevent(registered)["data"] == {
        "request_id": raw["request_id"], "service_note": None, "protocol": None,
        "status": "REGISTERED", "previous_status": "PENDING_REVIEW", "due_at": None,
        "sequence": result.sequence}
    _no_personal_data(rows)
