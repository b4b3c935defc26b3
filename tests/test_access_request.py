"""AccessRequest workflow logic: every path, on a real Temporal server with fake activities
registered under the real names (the end-to-end versions use the real ones)."""

from __future__ import annotations

import re
import time
from datetime import time as clock_time
from datetime import datetime, timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from models.access import AccessStatus
from tests.access_fixtures import fakes, refused, worker  # noqa: F401 (fixtures)
from tests.access_helpers import (
    quiet,
    terminate_started,
    ANALYST,
    CUSTOMER,
    SAO_PAULO,
    INSPECTOR,
    TECH,
    describe_raw,
    doc,
    due_in_business_days,
    due_in_days,
    end_of_local_day,
    business_day,
    local_day,
    fake_worker,
    inquiry_input,
    parecer_doc,
    register_apr,
    request_input,
    server_now,
    settle,
    settled_history_length,
    skip_to_local,
    start,
    status,
    update,
)
from tests.servers import SERVER_STARTUP



@pytest.fixture
async def evening(env):
    """Deadline tests run at 23:30 in São Paulo on the time-skipping server (02:30 UTC of
    the next day), on a day whose 15th and 30th days after are business days: a date
    taken in UTC instead of local time is a day off there, with no roll-over to hide it."""
    return await skip_to_local(env, clock_time(23, 30), clear=(15, 30))


async def decided(env, action):
    """Run ``action()``; return its result and the server's clock just before and after:
    a deadline the action set must start inside that window."""
    before = await server_now(env)
    result = await action()
    return result, before, await server_now(env)


async def to_analysis(client, task_queue, env=None, **kw):
    handle = await start(client, request_input(**kw), task_queue)
    st = await status(handle)
    if env is None:
        return handle, await register_apr(handle, st)
    st, before, after = await decided(env, lambda: register_apr(handle, st))
    parecer = st.deadlines[-1]
    assert parecer.rule == "parecer" and before <= parecer.start <= after, (before, parecer, after)
    return handle, st


async def test_happy_path_micro(client, env, evening, worker, task_queue, fakes):
    began = time.monotonic()
    raw = request_input(power_kw=8.5)
    handle, before, after = await decided(env, lambda: start(client, raw, task_queue))
    st = await status(handle)
    assert st.status == "AWAITING_APR" and st.next_actor == "technician"
    assert st.generation_class == "micro"
    assert len(st.service_note) == 10 and st.service_note.isdigit()
    # The fake issues Protocolo 2026 + a 6-digit sequence; the workflow must pass it on.
    assert re.fullmatch(r"2026\d{6}", st.protocol), st.protocol
    apr = st.deadlines[0]
    assert apr.rule == "apr_window" and before <= apr.start <= after
    assert st.due_at == apr.due_at == apr.start + timedelta(hours=24)

    st, before, after = await decided(env, lambda: register_apr(handle, st))
    assert st.status == "UNDER_ANALYSIS" and st.cycle == 1 and st.next_actor == "analyst"
    parecer = st.deadlines[-1]
    assert parecer.rule == "parecer" and before <= parecer.start <= after
    assert st.due_at == parecer.due_at == due_in_days(parecer.start, 15)  # micro: 15 days

    st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    assert st.status == "APPROVED" and st.next_actor == "customer"
    window = st.deadlines[-1]
    assert window.rule == st.due_rule == "inspection_request_window"
    assert window.start == st.decisions[-1].at
    assert st.due_at == due_in_days(window.start, 120)
    st, before, after = await decided(env, lambda: update(handle, "request_inspection", {"actor": CUSTOMER}))
    assert st.status == "INSPECTION_REQUESTED"
    inspection = st.deadlines[-1]
    assert inspection.rule == "inspection" and before <= inspection.start <= after
    assert st.due_at == due_in_business_days(inspection.start, 5)  # < 2.3 kV: 5 business days
    st = await update(
        handle, "record_inspection", {"actor": INSPECTOR, "result": "approved", "findings": []}
    )
    assert st.status == "CONNECTED" and st.next_actor is None
    final = await handle.result()
    assert final.status == "CONNECTED"
    assert [d.action for d in final.decisions] == ["approve", "inspection_approved"]
    assert fakes.templates(handle.id) == [
        "request_received",
        "analysis_started",
        "parecer_issued",
        "inspection_requested",
        "connected",
    ]
    parecer_mail = next(e for e in fakes.emails if e.template == "parecer_issued")
    assert parecer_mail.attachments[0].kind == "parecer"
    assert parecer_mail.to[0] == "maria.souza@example.com.br"
    assert parecer_mail.to[1] == "technician:CREA-MG-123456"
    statuses = [t.status for t in fakes.transitions if t.workflow_id == handle.id]
    assert statuses == [
        "AWAITING_APR", "UNDER_ANALYSIS", "APPROVED", "INSPECTION_REQUESTED", "CONNECTED"
    ]
    print(f"TIMING happy path micro: {time.monotonic() - began:.2f} s")


async def test_happy_path_mini_uses_mini_deadlines(client, env, evening, worker, task_queue):
    handle, st = await to_analysis(client, task_queue, env, power_kw=450.0, voltage_kv=13.8)
    assert st.generation_class == "mini"
    start_at = st.deadlines[-1].start
    assert st.due_at == due_in_days(start_at, 30)  # mini: 30 days
    assert local_day(st.due_at) >= local_day(start_at) + timedelta(days=30)
    st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    st, before, after = await decided(env, lambda: update(handle, "request_inspection", {"actor": CUSTOMER}))
    assert before <= st.deadlines[-1].start <= after
    assert st.due_at == due_in_business_days(st.deadlines[-1].start, 10)  # 2.3–69 kV: 10
    st = await update(handle, "record_inspection", {"actor": INSPECTOR, "result": "approved"})
    assert st.status == "CONNECTED"


async def test_inquiry_is_answered(client, env, evening, worker, task_queue, fakes, refused):
    handle, before, after = await decided(env, lambda: start(client, inquiry_input(), task_queue))
    st = await status(handle)
    assert st.kind == "inquiry" and st.status == "AWAITING_ANSWER"
    assert st.service_note is None and st.due_rule == "inquiry_answer"
    assert before <= st.deadlines[0].start <= after
    assert st.due_at == due_in_days(st.deadlines[0].start, 30)
    msg = await refused(handle, "register_apr", {
        "actor": TECH, "service_note": "7000000001", "protocol": "2026000001"})
    assert "AWAITING_ANSWER" in msg
    st = await update(handle, "answer_inquiry", {
        "actor": ANALYST, "answer": "Há capacidade no alimentador para 8,5 kW."})
    assert st.status == "ANSWERED"
    assert (await handle.result()).status == "ANSWERED"
    assert fakes.templates(handle.id) == ["inquiry_received", "inquiry_answered"]


async def test_intake_refused_lists_every_reason(client, worker, task_queue, fakes):
    raw = request_input(power_kw=4000)
    raw["customer"]["document"] = "123.456.789-00"
    raw["customer"]["email"] = "not-an-email"
    raw["documents"] = []
    handle = await start(client, raw, task_queue)
    final = await handle.result()
    assert final.status == "REFUSED"
    fields = {p.field for p in final.refusal_reasons}
    assert {"customer.document", "customer.email", "generation"} <= fields
    assert not fakes.numbers, "a refused request must not get an NS"
    assert any("CPF inválido" in p.message for p in final.refusal_reasons)


async def test_same_request_id_gives_same_run(client, worker, task_queue):
    from models.access import AccessRequestInput, input_digest

    raw = request_input()
    first = await start(client, raw, task_queue)
    second = await start(client, raw, task_queue)
    assert first.result_run_id == second.result_run_id
    st = await status(second)
    assert (await status(first)).service_note == st.service_note
    # A caller can tell the same body from another body sent under the same id.
    assert st.input_digest == input_digest(AccessRequestInput.model_validate(raw))
    other = {**raw, "generation": {**raw["generation"], "installed_power_kw": 9.0}}
    assert st.input_digest != input_digest(AccessRequestInput.model_validate(other))


@pytest.mark.timeskip
async def test_lapse_then_late_apr_then_reanalysis(client, env, worker, task_queue, fakes, refused):
    handle = await start(client, request_input(), task_queue)
    st = await status(handle)
    first_ns = st.service_note
    await env.sleep(timedelta(hours=24, minutes=1))
    st = await settle(handle, lambda s: s.status == "LAPSED")
    assert st.decisions[-1].action == "lapse"
    assert st.decisions[-1].reasons[0].code == "NS-PRAZO-APR-EXPIRADO"
    assert st.due_rule == "pendencies_answer"
    msg = await refused(handle, "request_reanalysis", {
        "actor": CUSTOMER, "reproved_service_note": first_ns})
    assert "cadastre antes a NS reprovada" in msg
    st = await register_apr(handle, st)
    assert st.status == "LAPSED"
    st = await update(handle, "request_reanalysis", {
        "actor": CUSTOMER, "reproved_service_note": first_ns})
    assert st.status == "UNDER_ANALYSIS" and st.cycle == 1
    assert st.service_notes == [first_ns, st.service_note] and st.service_note != first_ns
    await quiet(handle)
    assert "apr_lapsed" in fakes.templates(handle.id)
    assert fakes.templates(handle.id)[-1] == "reanalysis_started"


@pytest.mark.timeskip
async def test_deadline_falls_due_on_time_while_email_is_down(client, env, worker, task_queue, fakes):
    """The APR window lapses at its due date although the first e-mail is still failing:
    the deadline does not wait for the side effects queued before it."""
    fakes.mail_down = True
    handle = await start(client, request_input(), task_queue)
    st = await status(handle)
    assert st.status == "AWAITING_APR" and st.pending_effects >= 2
    due = st.due_at
    await env.sleep(timedelta(hours=24, minutes=1))
    st = await settle(handle, lambda s: s.status == "LAPSED")
    lapse = st.decisions[-1]
    assert lapse.action == "lapse"
    assert due <= lapse.at <= due + timedelta(minutes=1), (due, lapse.at)
    assert fakes.templates(handle.id) == [], "the outage was over before the deadline"
    assert st.pending_effects >= 4  # request e-mail + transition, lapse e-mail + transition
    fakes.mail_down = False
    await env.sleep(timedelta(hours=7))  # the e-mail's next retry (smtp_outage_error: 6 h)
    st = await quiet(handle)
    # Each side effect once, in the order the decisions queued them.
    assert fakes.templates(handle.id) == ["request_received", "apr_lapsed"]
    assert [t.action for t in fakes.transitions if t.workflow_id == handle.id] == [
        "received", "apr_window_lapsed"]


async def test_suspend_corrections_reanalysis_approve(client, worker, task_queue, fakes, refused):
    handle, st = await to_analysis(client, task_queue)
    reproved_ns = st.service_note
    st = await update(handle, "suspend", {
        "actor": ANALYST,
        "pendencies": [{"code": "DOC-ART-AUSENTE"}, {"code": "OTHER", "text": "Falta foto do QGBT"}],
    })
    assert st.status == "SUSPENDED" and st.due_rule == "pendencies_answer"
    assert [r.code for r in st.decisions[-1].reasons] == ["DOC-ART-AUSENTE", "OTHER"]
    msg = await refused(handle, "request_reanalysis", {
        "actor": TECH, "reproved_service_note": reproved_ns})
    assert "anexe antes os documentos corrigidos" in msg
    st = await update(handle, "attach_corrections", {"actor": TECH, "documents": [doc("art_rrt")]})
    assert st.status == "SUSPENDED"
    st = await update(handle, "request_reanalysis", {
        "actor": TECH, "reproved_service_note": reproved_ns,
        "motive": "Reanálise do projeto/processo elétrico"})
    assert st.status == "UNDER_ANALYSIS" and st.cycle == 2
    assert st.service_notes == [reproved_ns, st.service_note]
    assert len([d for d in st.deadlines if d.rule == "parecer"]) == 2
    st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    assert st.status == "APPROVED"
    assert [d.action for d in st.decisions] == ["suspend", "approve"]
    await quiet(handle)
    suspended_mail = next(e for e in fakes.emails if e.template == "suspended")
    assert suspended_mail.context["pendencies"][1]["text"] == "Falta foto do QGBT"


async def test_reprove_then_reanalysis_needs_right_ns(client, worker, task_queue, refused):
    handle, st = await to_analysis(client, task_queue)
    ns = st.service_note
    st = await update(handle, "reprove", {"actor": ANALYST, "reasons": [{"code": "DOC-UNIFILAR-DIVERGENTE"}]})
    assert st.status == "REPROVED"
    await update(handle, "attach_corrections", {"actor": TECH, "documents": [doc("single_line_diagram")]})
    msg = await refused(handle, "request_reanalysis", {"actor": TECH, "reproved_service_note": "7999999999"})
    assert "reproved_service_note" in msg and ns in msg
    st = await update(handle, "request_reanalysis", {"actor": TECH, "reproved_service_note": ns})
    assert st.status == "UNDER_ANALYSIS"


@pytest.mark.timeskip
async def test_parecer_breach_escalates_and_decision_still_possible(client, env, worker, task_queue, fakes):
    handle, st = await to_analysis(client, task_queue)
    due = st.due_at
    await env.sleep(due - st.deadlines[-1].start + timedelta(minutes=1))
    st = await settle(handle, lambda s: s.sla_breaches)
    await quiet(handle)
    assert st.status == "UNDER_ANALYSIS", "a breach never decides by itself"
    assert st.sla_breaches[0].step == "parecer" and st.sla_breaches[0].due_at == due
    assert st.sla_breaches[0].breached_at >= due
    templates = fakes.templates(handle.id)
    assert "deadline_reminder" in templates and "sla_escalation" in templates
    escalation = next(e for e in fakes.emails if e.template == "sla_escalation" and e.key.startswith(handle.id))
    assert escalation.to == ["role:supervisor"]
    breach_rows = [t for t in fakes.transitions if t.workflow_id == handle.id and t.action == "sla_breach"]
    assert breach_rows and breach_rows[0].request.sla_breaches == 1
    st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    assert st.status == "APPROVED" and len(st.sla_breaches) == 1


async def test_declare_works_recomputes_from_same_start(client, env, evening, worker, task_queue, refused):
    handle, st = await to_analysis(client, task_queue, env)
    start_at = st.deadlines[-1].start
    assert st.due_at == due_in_days(start_at, 15)
    st = await update(handle, "declare_works", {"actor": ANALYST, "reason": "reforço de rede"})
    assert st.works_declared
    assert st.deadlines[-1].start == start_at
    assert st.due_at == due_in_days(start_at, 30)  # micro with works: 30 days
    assert local_day(st.due_at) >= local_day(start_at) + timedelta(days=30)
    msg = await refused(handle, "declare_works", {"actor": ANALYST, "reason": "de novo"})
    assert "já declaradas" in msg


@pytest.mark.timeskip
async def test_pause_and_resume_move_due_at_exactly(client, env, evening, worker, task_queue, refused):
    handle, st = await to_analysis(client, task_queue, env)
    due_before = st.due_at
    st = await update(handle, "pause_clock", {"actor": ANALYST, "reason": "aguardando ONS"})
    assert st.clock_paused
    paused_at = st.decisions[-1].at
    await env.sleep(timedelta(days=3, hours=5))
    msg = await refused(handle, "pause_clock", {"actor": ANALYST, "reason": "de novo"})
    assert "já está suspenso" in msg
    st = await update(handle, "resume_clock", {"actor": ANALYST})
    resumed_at = st.decisions[-1].at
    assert not st.clock_paused
    assert st.decisions[-2].action == "pause_clock" and st.decisions[-1].action == "resume_clock"
    paused = resumed_at - paused_at
    assert timedelta(days=3, hours=5) <= paused < timedelta(days=3, hours=6)
    # REN art. 64: later by the paused time; on a non-business day, the end of the next one.
    shifted = due_before + paused
    if business_day(local_day(shifted)):
        assert st.due_at == shifted
    else:
        day = local_day(shifted) + timedelta(days=1)
        while not business_day(day):
            day += timedelta(days=1)
        assert st.due_at == end_of_local_day(day)
    assert st.due_at > due_before
    assert st.deadlines[-1].reason.startswith("prazo retomado")


async def test_inspection_reproved_then_requested_again(client, worker, task_queue, fakes, refused):
    handle, st = await to_analysis(client, task_queue)
    await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    await update(handle, "request_inspection", {"actor": CUSTOMER})
    msg = await refused(handle, "record_inspection", {"actor": INSPECTOR, "result": "reproved"})
    assert "findings" in msg
    st = await update(handle, "record_inspection", {
        "actor": INSPECTOR, "result": "reproved",
        "findings": ["Aterramento fora do padrão"], "report": doc("inspection_report")})
    assert st.status == "INSPECTION_REPROVED" and st.due_rule == "inspection_request_window"
    assert st.inspection_findings == ["Aterramento fora do padrão"]
    st = await update(handle, "request_inspection", {"actor": CUSTOMER})
    assert st.status == "INSPECTION_REQUESTED"
    st = await update(handle, "record_inspection", {"actor": INSPECTOR, "result": "approved"})
    assert st.status == "CONNECTED"
    await quiet(handle)
    assert fakes.templates(handle.id).count("inspection_requested") == 2


async def test_withdraw(client, worker, task_queue, fakes, refused):
    handle, st = await to_analysis(client, task_queue)
    msg = await refused(handle, "withdraw", {"actor": ANALYST, "reason": "x"})
    assert "papel 'analyst'" in msg
    st = await update(handle, "withdraw", {"actor": CUSTOMER, "reason": "desisti do projeto"})
    assert st.status == "CANCELLED"
    assert (await handle.result()).status == "CANCELLED"
    assert fakes.templates(handle.id)[-1] == "cancelled"


@pytest.mark.timeskip
async def test_pendencies_lapse_cancels(client, env, evening, worker, task_queue, fakes):
    handle, st = await to_analysis(client, task_queue, env)
    st = await update(handle, "suspend", {"actor": ANALYST, "pendencies": [{"code": "DOC-ILEGIVEL"}]})
    due = st.due_at
    assert st.deadlines[-1].start == st.decisions[-1].at and st.decisions[-1].action == "suspend"
    assert due == due_in_days(st.deadlines[-1].start, 30)
    await env.sleep(due - st.deadlines[-1].start + timedelta(minutes=1))
    final = await handle.result()
    assert final.status == "CANCELLED"
    assert final.decisions[-1].action == "cancel_lapse"
    assert fakes.templates(handle.id)[-1] == "cancelled"


@pytest.mark.timeskip
async def test_inspection_request_window_lapse_cancels(client, env, worker, task_queue):
    handle, st = await to_analysis(client, task_queue)
    st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    await env.sleep(st.due_at - st.deadlines[-1].start + timedelta(minutes=1))
    assert (await handle.result()).status == "CANCELLED"


@pytest.mark.parametrize(
    "name, args, fragment",
    [
        ("approve", {"actor": TECH, "parecer": parecer_doc()}, "papel 'technician'"),
        ("approve", {"actor": ANALYST, "parecer": doc("art_rrt")}, "parecer"),
        ("approve", {"actor": ANALYST, "parecer": {**parecer_doc(), "size": 4 * 1024 * 1024}}, "parecer.size"),
        ("approve", {"actor": ANALYST, "parecer": {**parecer_doc(), "sha256": "zz"}}, "parecer.sha256"),
        ("suspend", {"actor": ANALYST, "pendencies": []}, "pendencies"),
        ("suspend", {"actor": ANALYST, "pendencies": [{"code": "INVENTADO"}]}, "INVENTADO"),
        ("suspend", {"actor": ANALYST, "pendencies": [{"code": "OTHER"}]}, "exige um texto"),
        ("reprove", {"actor": ANALYST, "reasons": [{"code": "VISTORIA-ATERRAMENTO"}]}, "VISTORIA-ATERRAMENTO"),
        ("register_apr", {"actor": TECH, "service_note": "7000000001", "protocol": "1"}, "UNDER_ANALYSIS"),
        ("request_inspection", {"actor": CUSTOMER}, "UNDER_ANALYSIS"),
        ("answer_inquiry", {"actor": ANALYST, "answer": "x"}, "UNDER_ANALYSIS"),
        ("resume_clock", {"actor": ANALYST}, "não está suspenso"),
        ("approve", {"parecer": parecer_doc()}, "actor"),
        ("approve", {"actor": {"id": "x", "role": "hacker"}, "parecer": parecer_doc()}, "actor.role"),
        ("approve", {"actor": ANALYST, "parecer": parecer_doc(), "surprise": 1}, "surprise"),
        ("withdraw", {"actor": CUSTOMER, "reason": "x" * 10001}, "reason"),
    ],
)
async def test_refused_updates_write_nothing(client, worker, task_queue, name, args, fragment, refused):
    handle, st = await to_analysis(client, task_queue)
    msg = await refused(handle, name, args)
    assert fragment in msg
    after = await status(handle)
    assert after.status == "UNDER_ANALYSIS" and after.decisions == []


async def test_register_apr_refusals(client, worker, task_queue, refused):
    handle = await start(client, request_input(), task_queue)
    st = await status(handle)
    good = {"actor": TECH, "service_note": st.service_note, "protocol": st.protocol,
            "documents": [doc(k) for k in ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")]}
    assert "NS 7" in await refused(handle, "register_apr", {**good, "service_note": "7999999999"})
    assert "Protocolo" in await refused(handle, "register_apr", {**good, "protocol": "2026999999"})
    assert "faltam documentos" in await refused(handle, "register_apr", {**good, "documents": []})
    assert "papel 'customer'" in await refused(handle, "register_apr", {**good, "actor": CUSTOMER})
    assert "service_note" in await refused(handle, "register_apr", {**good, "service_note": "７０００００００01"})
    st = await update(handle, "register_apr", good)
    assert st.status == "UNDER_ANALYSIS"


async def test_continue_as_new_mid_reanalysis_keeps_every_field(client, worker, task_queue):
    from workflows.access_request import CYCLES_PER_RUN

    handle, st = await to_analysis(client, task_queue)
    first_run = (await handle.describe()).run_id
    for _ in range(CYCLES_PER_RUN):
        st = await update(handle, "suspend", {"actor": ANALYST, "pendencies": [{"code": "DOC-ART-AUSENTE"}]})
        await update(handle, "attach_corrections", {"actor": TECH, "documents": [doc("art_rrt")]})
        st = await update(handle, "request_reanalysis", {"actor": TECH, "reproved_service_note": st.service_note})
    before = st
    described = None
    for _ in range(100):
        described = await client.get_workflow_handle(handle.id).describe()
        if described.run_id != first_run:
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert described.run_id != first_run, "no continue-as-new happened"
    after = await status(client.get_workflow_handle(handle.id))
    assert after.cycle == CYCLES_PER_RUN + 1
    fields = set(AccessStatus.model_fields) - {"notifications", "updated_at", "pending_effects"}
    for field in fields:
        assert getattr(after, field) == getattr(before, field), field
    st = await update(client.get_workflow_handle(handle.id), "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    assert st.status == "APPROVED" and st.service_notes == before.service_notes


async def test_connection_starts_beneficiary_registration(client, worker, task_queue):
    allocation = {"mode": "percent", "units": [
        {"installation_number": "3001234567", "holder_document": "529.982.247-25", "percent": 60},
        {"installation_number": "3009876543", "holder_document": "529.982.247-25", "percent": 40},
    ]}
    handle, st = await to_analysis(client, task_queue, beneficiaries=allocation)
    await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    await update(handle, "request_inspection", {"actor": CUSTOMER})
    await update(handle, "record_inspection", {"actor": INSPECTOR, "result": "approved"})
    final = await handle.result()
    assert final.beneficiaries_workflow_id == f"gd-beneficiaries-{final.request_id}"
    child = client.get_workflow_handle(final.beneficiaries_workflow_id)
    described = await child.describe()
    assert described.workflow_type == "BeneficiaryRegistration"
    assert described.parent_id == handle.id
    assert described.status == WorkflowExecutionStatus.RUNNING  # waiting for the confirmation
    # Its first side effects done, then ended: an activity task left behind with no worker
    # would stop the time-skipping server's clock for the next test.
    await settled_history_length(child)
    await child.terminate(reason="test finished")


@pytest.mark.timeskip
async def test_reminder_goes_to_analysts_two_business_days_before_the_parecer(
        client, env, evening, worker, task_queue, fakes):
    """DOMAIN.md: a reminder 2 business days before a distributor-side deadline, 08:00
    local (worked by hand from the due date), sent then and not before."""
    handle, st = await to_analysis(client, task_queue, env)
    parecer = st.deadlines[-1]
    day = local_day(parecer.due_at)
    for _ in range(2):
        day -= timedelta(days=1)
        while not business_day(day):
            day -= timedelta(days=1)
    remind_at = datetime.combine(day, clock_time(8, 0), tzinfo=SAO_PAULO)
    assert parecer.remind_at == remind_at, (parecer.due_at, parecer.remind_at)

    await env.sleep(remind_at - await server_now(env) - timedelta(minutes=1))
    await quiet(handle)
    assert "deadline_reminder" not in fakes.templates(handle.id), "reminder sent early"
    await env.sleep(timedelta(minutes=2))
    st = await quiet(handle)
    reminders = [e for e in fakes.emails
                 if e.template == "deadline_reminder" and e.key.startswith(handle.id + ":")]
    assert len(reminders) == 1 and reminders[0].to == ["role:analysts"]
    reminder_rows = [t for t in fakes.transitions if t.workflow_id == handle.id and t.action == "reminder"]
    assert len(reminder_rows) == 1
    assert st.status == "UNDER_ANALYSIS" and st.sla_breaches == []


async def test_continues_as_new_when_the_server_suggests_it(task_queue, fakes):
    """The SDK's is_continue_as_new_suggested(), not the cycle count: a dev server of its
    own told to suggest it past 40 events; pause/resume pairs grow the history without
    starting a cycle, and the run continues as new before CYCLES_PER_RUN cycles."""
    from temporalio.testing import WorkflowEnvironment

    from models import search_attributes as sa
    from tests.conftest import _binary
    from worker import data_converter
    from workflows.access_request import CYCLES_PER_RUN

    async with await WorkflowEnvironment.start_local(
        dev_server_startup_timeout=SERVER_STARTUP,
        data_converter=data_converter(),
        dev_server_existing_path=_binary("temporal"),
        search_attributes=list(sa.ALL_KEYS),
        dev_server_log_level="error",
        ui=False,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    ) as own:
        async with fake_worker(own.client, task_queue, fakes):
            handle, st = await to_analysis(own.client, task_queue)
            first_run = (await describe_raw(handle)).workflow_execution_info.execution.run_id
            assert st.cycle == 1 < CYCLES_PER_RUN
            runs = {first_run}
            for _ in range(15):
                await update(handle, "pause_clock", {"actor": ANALYST, "reason": "aguardando ONS"})
                st = await update(handle, "resume_clock", {"actor": ANALYST})
                await quiet(handle)
                runs.add((await describe_raw(handle)).workflow_execution_info.execution.run_id)
                if len(runs) > 1:
                    break
            assert len(runs) > 1, "the server's suggestion never led to a continue-as-new"
            after = await status(handle)
            assert after.cycle == 1 and after.status == "UNDER_ANALYSIS"
            assert after.service_notes == st.service_notes and after.due_at == st.due_at
            first = own.client.get_workflow_handle(handle.id, run_id=first_run)
            events = (await first.fetch_history()).events
            assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            st = await update(handle, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
            assert st.status == "APPROVED"
            await terminate_started(own.client)


def test_the_status_a_step_carries_to_the_store_is_bounded():
    """with_status: a step carries the status its query answers once recorded (this step
    no longer pending); a status over MAX_STORED_STATUS_CHARS carries only a mark."""
    import json
    from datetime import timezone
    from unittest import mock

    from models.access import AccessRequestInput
    from models.access_state import AccessState
    from models.activities import Transition
    from models.common import Actor, Decision, Reason
    from workflows import access_view as view

    now = datetime(2026, 12, 2, 13, 0, tzinfo=timezone.utc)
    inp = AccessRequestInput.model_validate(request_input("req-bounded-1"))
    step = Transition(workflow_id="gd-request-req-bounded-1", event_key="0003-suspend", process="access",
                      action="suspend", status="SUSPENDED", at=now)
    state = AccessState(input=inp, status="SUSPENDED", policy="seed", created_at=now, updated_at=now, seq=3,
                        pending=[step])
    with mock.patch.object(view.workflow, "info"):
        carried = view.with_status(state, step).status_snapshot
        assert carried["status"] == "SUSPENDED" and carried["sequence"] == 3
        assert carried["pending_effects"] == 0  # this step, once recorded, is not pending
        assert len(json.dumps(carried)) < 5_000
        # 60 decisions with 1,500-character reasons: ~100 KB of status, over the bound.
        long = Reason(code="DOC-ART-AUSENTE", text="x" * 1500)
        state.decisions = [Decision(at=now, actor=Actor(id="ana.analista", role="analyst"), action="suspend",
                                    reasons=[long]) for _ in range(60)]
        assert view.with_status(state, step).status_snapshot == {"sequence": 3, "omitted": "too_large"}
