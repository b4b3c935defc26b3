"""TechnicianRegistration workflow logic on a real Temporal server, with fake activities
registered under the real names (the deadline activities are the real ones; the fakes, the
worker and the calls on a registration are tests/registration_fixtures.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from models import search_attributes as sa
from models.activities import CredentialsRequest, EmailResult, IntakeCheck, IntakeResult
from models.common import parse_or_problems
from models.ids import technician_id
from models.technician import TechnicianInput, TechnicianStatus
from tests.access_helpers import due_in_business_days, server_now, skip_to_local
from tests.registration_fixtures import RecordingFakes, Registration, worker  # noqa: F401 (fixture)

ANALYST = {"id": "ana.analista", "role": "analyst"}
SUPERVISOR = {"id": "sofia.supervisora", "role": "supervisor"}
TECH = {"id": "rt.joao", "role": "technician"}
CREDENTIAL_TEMPLATES = (
    "technician_agv_credentials",
    "technician_apr_approved",
    "technician_apr_set_password",
)


def technician_input(**overrides: Any) -> dict[str, Any]:
    raw = {
        "name": "João Pereira da Silva",
        "cpf": "529.982.247-25",
        "email": "Joao.Pereira@Example.com.br",
        "phone": "(31) 98765-4321",
        "council": "CREA",
        "uf": "MG",
        "registration": str(100000 + uuid.uuid4().int % 900000),
        "title": "Engenheiro Eletricista",
    }
    raw.update(overrides)
    return raw


def workflow_id_of(raw: dict[str, Any]) -> str:
    return technician_id(raw["council"], raw["uf"], raw["registration"])


class Fakes(RecordingFakes):
    """The shared fakes, with the technician's intake and credentials e-mails."""

    def __init__(self) -> None:
        super().__init__()
        self.credentials: list[CredentialsRequest] = []

    @activity.defn(name="validate_intake")
    def validate_intake(self, check: IntakeCheck) -> IntakeResult:
        assert check.process == "technician"
        parsed, problems = parse_or_problems(TechnicianInput, check.raw)
        if problems:
            return IntakeResult(problems=problems)
        return IntakeResult(normalized=parsed.model_dump(mode="json"))

    @activity.defn(name="send_technician_credentials")
    def send_technician_credentials(self, req: CredentialsRequest) -> list[EmailResult]:
        with self._lock:
            self.credentials.append(req)
        return [
            EmailResult(key=f"{req.key}:{template}", template=template, status="sent")
            for template in CREDENTIAL_TEMPLATES
        ]

    def extra(self) -> list:
        return [self.send_technician_credentials]


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


TECHNICIAN = Registration("TechnicianRegistration", TechnicianStatus, workflow_id_of)
start, status, update, settle, refused = (
    TECHNICIAN.start, TECHNICIAN.status, TECHNICIAN.update, TECHNICIAN.settle, TECHNICIAN.refused,
)  # fmt: skip


async def in_review(handle: WorkflowHandle) -> TechnicianStatus:
    return await settle(handle, lambda s: s.status == "PENDING_REVIEW" and s.notifications)


async def search_attributes(handle: WorkflowHandle) -> dict[str, Any]:
    """The set search attributes. Read raw: the time-skipping server keeps an unset
    Datetime as a null payload, which ``describe()`` fails to decode."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
    from temporalio.converter import PayloadConverter

    raw = await handle._client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=handle._client.namespace,
            execution=WorkflowExecution(workflow_id=handle.id),
        )
    )
    fields = raw.workflow_execution_info.search_attributes.indexed_fields
    converter = PayloadConverter.default
    found: dict[str, Any] = {}
    for key in sa.ALL_KEYS:
        if key.name in fields:
            value = converter.from_payloads([fields[key.name]])[0]
            if isinstance(value, list):
                value = value[0] if value else None
            if value is not None:
                found[key.name] = datetime.fromisoformat(value) if key is sa.GD_DUE_AT else value
    return found


# --- intake -----------------------------------------------------------------------------


async def test_bad_input_is_refused_with_every_reason(client, worker, task_queue, fakes):
    raw = technician_input(cpf="111.111.111-11", email="joao@", phone="123")
    handle = await start(client, raw, task_queue)
    result = await handle.result()
    assert result.status == "REFUSED" and result.next_actor is None
    by_field = {p.field: p.message for p in result.refusal_reasons}
    assert by_field["cpf"] == "CPF inválido: dígitos verificadores não conferem"
    assert by_field["email"].startswith("e-mail inválido")
    assert by_field["phone"].startswith("telefone deve ter DDD")
    transitions, emails = fakes.of(handle.id)
    assert [(t.action, t.status) for t in transitions] == [("refused", "REFUSED")]
    assert transitions[0].technician is None  # a refused input writes no RT projection
    assert {p["field"] for p in transitions[0].data["problems"]} == {"cpf", "email", "phone"}
    assert emails == [] and fakes.credentials == []
    attrs = await search_attributes(handle)
    assert attrs["GdStatus"] == "REFUSED" and attrs["GdKind"] == "technician"


async def test_a_payload_that_is_not_an_object_is_refused(client, worker, task_queue):
    handle = await start(client, ["não", "é", "objeto"], task_queue, "gd-technician-CREA-MG-999")
    result = await handle.result()
    assert result.status == "REFUSED" and result.technician == "CREA-MG-999"
    assert [p.message for p in result.refusal_reasons] == ["deve ser um objeto"]


async def test_id_must_match_the_registration(client, worker, task_queue):
    raw = technician_input()
    handle = await start(client, raw, task_queue, workflow_id="gd-technician-CREA-MG-000")
    result = await handle.result()
    assert result.status == "REFUSED"
    assert result.refusal_reasons[0].code == "workflow_id_mismatch"
    assert workflow_id_of(raw) in result.refusal_reasons[0].message


# --- review and decisions -----------------------------------------------------------------


async def test_submission_opens_review_with_deadline_and_receipt(client, env, worker, task_queue, fakes):
    from datetime import time

    await skip_to_local(env, time(23, 30))  # time-skipping: where local and UTC dates differ
    raw = technician_input(registration="12.345-d")  # normalised to 12345D
    raw_id = "gd-technician-CREA-MG-12345D"
    before = await server_now(env)
    handle = await start(client, raw, task_queue, workflow_id=raw_id)
    st = await in_review(handle)
    after = await server_now(env)
    assert st.technician == "CREA-MG-12345D" and st.next_actor == "analyst"
    [deadline] = st.deadlines
    assert deadline.rule == "technician_review"
    assert before <= deadline.start <= after
    assert deadline.due_at == due_in_business_days(deadline.start, 3)  # 3 business days
    assert st.due_at == deadline.due_at and deadline.remind_at is not None
    transitions, emails = fakes.of(raw_id)
    [submitted] = transitions
    assert (submitted.action, submitted.status) == ("submitted", "PENDING_REVIEW")
    assert submitted.technician.key == "CREA-MG-12345D"
    assert submitted.technician.status == "PENDING_REVIEW"
    [received] = emails
    assert received.template == "technician_received"
    assert received.to == ["joao.pereira@example.com.br"]
    assert received.context["technician"] == "CREA-MG-12345D"
    assert received.context["due_at"] == deadline.due_at.isoformat()
    attrs = await search_attributes(handle)
    assert attrs == {
        "GdStatus": "PENDING_REVIEW",
        "GdKind": "technician",
        "GdTechnician": "CREA-MG-12345D",
        "GdNextActor": "analyst",
        "GdDueAt": deadline.due_at,
        "GdSlaBreached": False,
    }
    await handle.terminate()


async def test_approve_sends_the_three_credentials_once(client, worker, task_queue, fakes):
    raw = technician_input()
    handle = await start(client, raw, task_queue)
    await in_review(handle)
    st = await update(handle, "approve", {"actor": ANALYST})
    assert st.status == "APPROVED" and st.next_actor is None and st.due_at is None
    assert [(d.action, d.actor.id) for d in st.decisions] == [("approve", "ana.analista")]
    result = await handle.result()
    assert result.status == "APPROVED"
    [credentials] = fakes.credentials
    assert credentials.technician == f"CREA-MG-{raw['registration']}"
    assert credentials.cpf == "52998224725" and credentials.email == "joao.pereira@example.com.br"
    assert credentials.key.startswith(handle.id + ":credentials:")
    templates = [n.template for n in result.notifications]
    assert templates == ["technician_received", *CREDENTIAL_TEMPLATES]
    transitions, _ = fakes.of(handle.id)
    assert [(t.action, t.status, t.technician.status) for t in transitions] == [
        ("submitted", "PENDING_REVIEW", "PENDING_REVIEW"),
        ("approved", "APPROVED", "APPROVED"),
    ]
    assert transitions[1].actor.role == "analyst"
    assert [t.event_key for t in transitions] == ["0001-submitted", "0002-approved"]
    attrs = await search_attributes(handle)
    assert attrs["GdStatus"] == "APPROVED" and "GdNextActor" not in attrs
    assert "GdDueAt" not in attrs
    # Never personal data in search attributes.
    flat = " ".join(str(v) for v in attrs.values())
    for secret in ("52998224725", "Pereira", "example.com", "98765"):
        assert secret not in flat


async def test_reject_validates_reasons_and_roles(client, worker, task_queue, fakes):
    handle = await start(client, technician_input(), task_queue)
    await in_review(handle)

    message = await refused(handle, "reject", {"actor": ANALYST, "reasons": [{"code": "NAO-EXISTE"}]})
    assert "fora do catálogo" in message and "NAO-EXISTE" in message
    # A catalogue code meant for another use is refused the same way.
    message = await refused(handle, "reject", {"actor": ANALYST, "reasons": [{"code": "DOC-ART-AUSENTE"}]})
    assert "DOC-ART-AUSENTE" in message
    message = await refused(handle, "reject", {"actor": ANALYST, "reasons": [{"code": "OTHER"}]})
    assert "exige um texto" in message
    message = await refused(handle, "reject", {"actor": ANALYST, "reasons": []})
    assert "reasons: deve ter ao menos 1" in message
    message = await refused(handle, "approve", {"actor": TECH})
    assert "papel 'technician' não pode" in message
    message = await refused(handle, "approve", {})
    assert message.endswith("actor: campo obrigatório")
    message = await refused(handle, "approve", "aprovado")
    assert "deve ser um objeto" in message

    st = await update(
        handle, "reject", {"actor": SUPERVISOR, "reasons": [{"code": "RT-REGISTRO-IRREGULAR"}]}
    )
    assert st.status == "REJECTED"
    result = await handle.result()
    assert result.status == "REJECTED" and fakes.credentials == []
    transitions, emails = fakes.of(handle.id)
    assert [t.action for t in transitions] == ["submitted", "rejected"]
    assert transitions[1].reasons[0].code == "RT-REGISTRO-IRREGULAR"
    rejected = emails[-1]
    assert rejected.template == "technician_rejected"
    [reason] = rejected.context["reasons"]
    assert reason["code"] == "RT-REGISTRO-IRREGULAR" and reason["text"]  # catalogue text
    # Terminal: nothing more is accepted (the query still answers after completion).
    assert (await status(handle)).status == "REJECTED"


async def test_concurrent_decisions_only_one_wins(client, worker, task_queue, fakes):
    handle = await start(client, technician_input(), task_queue)
    await in_review(handle)
    outcomes = await asyncio.gather(
        update(handle, "approve", {"actor": ANALYST}),
        update(handle, "reject", {"actor": ANALYST, "reasons": [{"code": "RT-DADOS-INCOMPLETOS"}]}),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, TechnicianStatus)]
    # The loser is refused by its handler, or finds the workflow already completed.
    lost = [o for o in outcomes if isinstance(o, (WorkflowUpdateFailedError, RPCError))]
    assert len(won) == 1 and len(lost) == 1, outcomes
    if isinstance(lost[0], WorkflowUpdateFailedError):
        assert "não permitido no status" in str(lost[0].cause)
    result = await handle.result()
    assert len(result.decisions) == 1 and result.status == won[0].status


async def test_second_registration_returns_the_running_process(client, worker, task_queue, fakes):
    raw = technician_input()
    first = await start(client, raw, task_queue)
    await in_review(first)
    second = await start(client, {**raw, "name": "Outro Nome"}, task_queue)
    assert second.result_run_id == first.result_run_id
    _, emails = fakes.of(first.id)
    assert [e.template for e in emails] == ["technician_received"]
    await first.terminate()


@pytest.mark.timeskip
async def test_late_review_is_escalated_and_approval_still_works(client, env, worker, task_queue, fakes):
    handle = await start(client, technician_input(), task_queue)
    st = await in_review(handle)
    due_at = st.due_at
    # Three business days are at most 9 calendar days, even around Carnival/Easter.
    await env.sleep(timedelta(days=10))
    st = await settle(handle, lambda s: s.sla_breaches and len(s.notifications) >= 3)
    assert st.status == "PENDING_REVIEW" and st.next_actor == "analyst"
    [breach] = st.sla_breaches
    assert breach.step == "technician_review" and breach.due_at == due_at
    assert breach.breached_at >= due_at
    transitions, emails = fakes.of(handle.id)
    assert [t.action for t in transitions] == ["submitted", "reminder", "sla_breach"]
    assert transitions[2].status == "PENDING_REVIEW"
    by_template = {e.template: e for e in emails}
    assert by_template["deadline_reminder"].to == ["role:analysts"]
    escalation = by_template["sla_escalation"]
    assert escalation.to == ["role:supervisor"]
    assert escalation.context["step"] == "technician_review"
    assert escalation.context["due_at"] == due_at.isoformat()
    assert "breached_at" in escalation.context
    attrs = await search_attributes(handle)
    assert attrs["GdSlaBreached"] is True and attrs["GdStatus"] == "PENDING_REVIEW"

    st = await update(handle, "approve", {"actor": ANALYST})
    assert st.status == "APPROVED"
    result = await handle.result()
    assert result.status == "APPROVED" and len(fakes.credentials) == 1
    assert len(result.sla_breaches) == 1


@pytest.mark.timeskip
async def test_review_deadline_is_on_time_while_email_is_down(client, env, worker, task_queue, fakes):
    """Reminder and breach happen at their instants although the receipt e-mail is still
    failing; the e-mails then go once each, in order (patch technician-deadline-watch-v1)."""
    fakes.mail_down = True
    handle = await start(client, technician_input(), task_queue)
    st = await settle(handle, lambda s: s.status == "PENDING_REVIEW")
    due_at = st.due_at
    await env.sleep(timedelta(days=10))
    st = await settle(handle, lambda s: s.sla_breaches)
    [breach] = st.sla_breaches
    assert due_at <= breach.breached_at <= due_at + timedelta(minutes=1), (due_at, breach)
    assert fakes.of(handle.id)[1] == [], "the outage was over before the deadline"
    fakes.mail_down = False
    await env.sleep(timedelta(hours=7))  # the e-mail's next retry (smtp_outage_error: 6 h)
    st = await settle(handle, lambda s: len(s.notifications) == 3)
    transitions, emails = fakes.of(handle.id)
    assert [t.action for t in transitions] == ["submitted", "reminder", "sla_breach"]
    assert [e.template for e in emails] == ["technician_received", "deadline_reminder", "sla_escalation"]
    assert st.status == "PENDING_REVIEW"
    await handle.terminate()


# --- with the real activities (SQLite store, templates, SMTP sink) ---------------------------


@pytest.mark.timeskip
async def test_end_to_end_with_real_activities(client, env, real_worker, task_queue, deps, smtp_sink, settings):
    raw = technician_input()
    key = f"CREA-MG-{raw['registration']}"
    async with real_worker():
        handle = await start(client, raw, task_queue)
        await in_review(handle)
        assert deps.store.technician_status(key) == "PENDING_REVIEW"
        await env.sleep(timedelta(days=10))
        st = await settle(handle, lambda s: len(s.notifications) >= 3, timeout=20)
        assert [n.status for n in st.notifications] == ["sent"] * 3, st.notifications
        await update(handle, "approve", {"actor": ANALYST})
        result = await handle.result()
    assert result.status == "APPROVED"
    assert [n.status for n in result.notifications] == ["sent"] * 6, result.notifications
    assert deps.store.technician_status(key) == "APPROVED"
    messages = await smtp_sink.wait_for_async(6)
    recipients = [list(e.rcpt_tos) for e in smtp_sink.envelopes]
    assert recipients[1] == [settings.analysts_email] and recipients[2] == [settings.supervisor_email]
    assert all(r == ["joao.pereira@example.com.br"] for i, r in enumerate(recipients) if i not in (1, 2))
    assert key in str(messages[0]["Subject"])
    assert [e.action for e in deps.store.events(handle.id)] == [
        "submitted", "reminder", "sla_breach", "approved",
    ]
