"""AccessRequest end to end with the real activities: SQLite store and blob store in a
temporary folder, e-mails delivered to a real SMTP server (aiosmtpd) and parsed there."""

from __future__ import annotations

from tests.pdf_fixture import make_pdf
import asyncio
import re
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from activities.blobs import upload
from activities.tables import EventRecord, IssuedNumber
from models.ids import technician_id
from models.technician import TechnicianStatus
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
    terminate_started,
    update,
)

RT_EMAIL = "joao.rt@engenharia.example.com"
CUSTOMER_EMAIL = "maria.souza@example.com.br"


def pdf(label: str) -> bytes:
    return make_pdf(label)


@pytest.fixture
def upload_doc(deps):
    def run(kind: str, label: str | None = None) -> dict:
        ref = upload(deps.store, deps.blobs, pdf(label or kind), kind=kind, filename=f"{kind}.pdf")
        return ref.model_dump(mode="json")

    return run


@pytest.fixture
async def approved_rt(client, real_worker, task_queue, smtp_sink):
    """A registered and approved RT (the store must say APPROVED before any request)."""
    raw = {
        "name": "João Engenheiro", "cpf": "111.444.777-35", "email": RT_EMAIL,
        "phone": "31 98888-7777", "council": "CREA", "uf": "MG", "registration": "123456",
        "title": "Engenheiro Eletricista",
    }
    async with real_worker():
        handle = await client.start_workflow(
            "TechnicianRegistration", raw, id=technician_id("CREA", "MG", "123456"),
            task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        for _ in range(200):
            st = await handle.query("status", result_type=TechnicianStatus)
            if st.status == "PENDING_REVIEW":
                break
            await asyncio.sleep(0.05)
        await handle.execute_update("approve", {"actor": ANALYST})
        await handle.result()
        smtp_sink.wait_for(4, timeout=20)
    smtp_sink.messages.clear()
    return handle


def mails_for(sink, template_subject: str) -> list:
    return [m for m in sink.messages if template_subject.lower() in str(m["Subject"]).lower()]


def body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_request_to_connection_with_real_activities(
    client, real_worker, task_queue, smtp_sink, deps, approved_rt, upload_doc
):
    raw = request_input()
    raw["documents"] = [upload_doc("commercial_id")]
    async with real_worker():
        handle = await start(client, raw, task_queue)
        st = await status(handle)
        assert st.status == "AWAITING_APR", st.refusal_reasons
        await quiet(handle)
        received = smtp_sink.messages[-1]
        assert received["From"] == "agv@cemig.com.br"
        assert {CUSTOMER_EMAIL, RT_EMAIL} <= set(smtp_sink.envelopes[-1].rcpt_tos)
        text = body(received)
        assert st.service_note in text and st.protocol in text
        assert "24" in text  # the APR Web window

        docs = [upload_doc(kind) for kind in APR_KINDS]
        st = await update(handle, "register_apr", {
            "actor": TECH, "service_note": st.service_note, "protocol": st.protocol, "documents": docs})
        assert st.status == "UNDER_ANALYSIS"
        due_text = st.due_at.strftime("%d/%m/%Y")
        parecer = upload_doc("parecer", "parecer de acesso assinado")
        st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer})
        assert st.status == "APPROVED"
        st = await update(handle, "request_inspection", {"actor": CUSTOMER})
        st = await update(handle, "record_inspection", {"actor": INSPECTOR, "result": "approved"})
        final = await handle.result()
        assert final.status == "CONNECTED"

    analysis_mail = [m for m in smtp_sink.messages if due_text in body(m)]
    assert analysis_mail, "the analysis e-mail must state the parecer due date"
    with_attachment = [m for m in smtp_sink.messages if any(m.iter_attachments())]
    assert len(with_attachment) == 1
    attachment = next(with_attachment[0].iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == deps.blobs.get(parecer["sha256"])
    # Every e-mail once: five steps, five messages, distinct keys.
    keys = [m["X-GD-Key"] for m in smtp_sink.messages]
    assert len(keys) == len(set(keys)) == 5
    row = deps.store.request_row(handle.id)
    assert row.status == "CONNECTED" and row.service_note == final.service_note
    events = deps.store.events(handle.id)
    assert [e.status for e in events] == [
        "AWAITING_APR", "UNDER_ANALYSIS", "APPROVED", "INSPECTION_REQUESTED", "CONNECTED"]
    with deps.store.session(write=False) as s:
        from sqlmodel import select

        numbers = s.exec(select(IssuedNumber).where(IssuedNumber.workflow_id == handle.id)).all()
    assert [n.service_note for n in numbers] == [final.service_note]


async def test_intake_refused_by_store_checks(client, real_worker, task_queue, deps, upload_doc):
    raw = request_input()
    raw["technician"] = {"council": "CAU", "uf": "SP", "registration": "99999"}
    raw["documents"] = [upload_doc("commercial_id"), {
        "sha256": "ab" * 32, "kind": "art_rrt", "filename": "art.pdf", "size": 100,
        "content_type": "application/pdf"}]
    async with real_worker():
        handle = await start(client, raw, task_queue)
        final = await handle.result()
    assert final.status == "REFUSED"
    codes = {p.code for p in final.refusal_reasons}
    assert {"technician_not_approved", "document_missing"} <= codes
    assert deps.store.request_row(handle.id).status == "REFUSED"
    with deps.store.session(write=False) as s:
        from sqlmodel import select

        assert not s.exec(select(IssuedNumber).where(IssuedNumber.workflow_id == handle.id)).all()


@pytest.mark.timeskip
async def test_lapse_and_breach_e_mails_with_real_activities(
    client, env, real_worker, task_queue, smtp_sink, deps, approved_rt, upload_doc, settings
):
    raw = request_input()
    raw["documents"] = [upload_doc("commercial_id")]
    async with real_worker():
        handle = await start(client, raw, task_queue)
        first = await status(handle)
        await env.sleep(timedelta(hours=24, minutes=5))
        await quiet(handle)
        st = await status(handle)
        assert st.status == "LAPSED"
        lapsed = [m for m in smtp_sink.messages if "decurso de prazo" in body(m).lower()]
        assert lapsed and first.service_note in body(lapsed[0])
        st = await update(handle, "register_apr", {
            "actor": TECH, "service_note": first.service_note, "protocol": first.protocol,
            "documents": [upload_doc(k) for k in APR_KINDS]})
        st = await update(handle, "request_reanalysis", {
            "actor": CUSTOMER, "reproved_service_note": first.service_note})
        assert st.status == "UNDER_ANALYSIS" and st.service_note != first.service_note
        await quiet(handle)
        assert any(st.service_note in body(m) and first.service_note in body(m)
                   for m in smtp_sink.messages), "reanalysis e-mail links new and reproved NS"
        await env.sleep(st.due_at - st.deadlines[-1].start + timedelta(minutes=5))
        await quiet(handle)
        st = await status(handle)
        assert st.status == "UNDER_ANALYSIS" and len(st.sla_breaches) == 1
        to_supervisor = [e for e in smtp_sink.envelopes if settings.supervisor_email in e.rcpt_tos]
        to_analysts = [e for e in smtp_sink.envelopes if settings.analysts_email in e.rcpt_tos]
        assert len(to_supervisor) == 1 and len(to_analysts) == 1
        row = deps.store.request_row(handle.id)
        assert row.sla_breaches == 1 and row.status == "UNDER_ANALYSIS"
        with pytest.raises(WorkflowUpdateFailedError):
            await update(handle, "approve", {"actor": ANALYST, "parecer": upload_doc("art_rrt")})
        st = await update(handle, "approve", {"actor": ANALYST, "parecer": upload_doc("parecer")})
        assert st.status == "APPROVED"
        await quiet(handle)
        await terminate_started(client)
    keys = [m["X-GD-Key"] for m in smtp_sink.messages]
    assert len(keys) == len(set(keys))
    with deps.store.session(write=False) as s:
        from sqlmodel import select

        actions = [e.action for e in s.exec(
            select(EventRecord).where(EventRecord.workflow_id == handle.id).order_by(EventRecord.id))]
    assert actions[:2] == ["received", "apr_window_lapsed"]
    assert "sla_breach" in actions and actions[-1] == "approved"
    assert re.fullmatch(r"\d{10}", st.service_note)
