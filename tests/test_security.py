"""What a hostile caller can do (issue 14, part 2): each test is one hole, closed.

Real parts: the Temporal test server with the real activities (SQLite file, blob store,
the aiosmtpd sink), and ``python -m worker`` as a process for the start-up refusals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.blobs import upload
from activities.mail import MailActivities, SecretRefused, redeem_secret
from activities.records import RecordActivities
from activities.tables import EventRecord, OutboundEvent, Outbox, RequestRecord
from codec import CodecConfigError, parse_keys
from domain.limits import (
    MAX_DECISIONS_PER_REQUEST,
    MAX_DOCUMENTS_PER_REQUEST,
    MAX_PAUSES_PER_REQUEST,
    check_growth,
)
from models.access import AccessRequestInput, AccessStatus
from models.access_state import AccessState, ActiveDeadline
from models.activities import (
    MAIL_MAX_ATTEMPTS,
    CredentialsRequest,
    EmailRequest,
    IntakeCheck,
    Transition,
)
from models.common import Actor, Decision, DocumentRef, LimitRefused, valid_workflow_id
from models.ids import access_request_id
from models.settings import GdSettings, startup_problems
from tests.access_helpers import (
    ANALYST,
    inquiry_input,
    quiet,
    request_input,
    settle,
    start,
    status,
    update,
)
from tests.access_helpers import CUSTOMER as CUSTOMER_ACTOR
from tests.pdf_fixture import make_pdf
from workflows.common import MAIL_OPTIONS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = "maria.souza@example.com.br"


def _ref(ref: DocumentRef, **changes) -> dict:
    return {**ref.model_dump(mode="json"), **changes}


def _attachments(sink) -> list[tuple[str | None, str, bytes]]:
    return [(part.get_filename(), part.get_content_type(), part.get_content())
            for message in sink.messages for part in message.iter_attachments()]


async def _inquiry(client, task_queue) -> tuple[str, object]:
    raw = inquiry_input(f"cons-{uuid.uuid4().hex[:10]}")
    handle = await start(client, raw, task_queue)
    await settle(handle, lambda s: s.status == "AWAITING_ANSWER" and s.pending_effects == 0)
    return raw["request_id"], handle


# --- 1. another customer's file, cited by hash --------------------------------------------


async def test_an_answer_citing_another_requests_document_never_mails_it(
    client, task_queue, real_worker, deps, smtp_sink
):
    victim_bytes = make_pdf("RG de outra cliente")
    victim = upload(deps.store, deps.blobs, victim_bytes, kind="commercial_id",
                    filename="rg.pdf", for_workflow=access_request_id("vitima-1"))
    async with real_worker():
        _, handle = await _inquiry(client, task_queue)
        await update(handle, "answer_inquiry", {
            "actor": ANALYST, "answer": "Segue o documento.",
            "documents": [_ref(victim, kind="other", filename="resposta.pdf")]})
        final = await quiet(handle)

        assert final.status == "ANSWERED"
        [note] = [n for n in final.notifications if n.template == "inquiry_answered"]
        assert note.status == "refused"
        assert "pertence a outro processo" in (note.detail or "")
        assert all(content != victim_bytes for _, _, content in _attachments(smtp_sink))

        # The same bytes uploaded for this inquiry are its own: then they go, named and
        # typed by their content (the caller said PNG), whatever the caller claimed.
        request_id, own = await _inquiry(client, task_queue)
        mine = upload(deps.store, deps.blobs, victim_bytes, kind="other", filename="copia.pdf",
                      for_workflow=access_request_id(request_id))
        await update(own, "answer_inquiry", {
            "actor": ANALYST, "answer": "Segue.",
            "documents": [_ref(mine, filename="resposta.png", content_type="image/png")]})
        answered = await quiet(own)
        [note] = [n for n in answered.notifications if n.template == "inquiry_answered"]
        assert note.status == "sent"
        [attachment] = _attachments(smtp_sink)
        assert attachment == ("resposta.pdf", "application/pdf", victim_bytes)


def test_intake_claims_only_documents_nobody_holds(deps):
    """A request may cite a file another request holds (a customer's second request),
    but only a file nobody holds becomes its own."""
    from activities.documents import holders

    held = upload(deps.store, deps.blobs, make_pdf("projeto alheio"), kind="electrical_project",
                  filename="projeto.pdf", for_workflow=access_request_id("dono-1"))
    free = upload(deps.store, deps.blobs, make_pdf("rg novo"), kind="commercial_id",
                  filename="rg.pdf")
    records = RecordActivities(deps.store, deps.blobs)
    raw = inquiry_input("outro-1")
    raw["documents"] = [held.model_dump(mode="json"), free.model_dump(mode="json")]
    result = records.validate_intake(
        IntakeCheck(process="access", workflow_id=access_request_id("outro-1"), raw=raw))
    assert result.problems == []
    assert holders(deps.store, held.sha256) == [access_request_id("dono-1")]
    assert holders(deps.store, free.sha256) == [access_request_id("outro-1")]


# --- 2. a request frozen by a file name or an unreadable blob ------------------------------


async def test_a_file_name_with_a_line_break_is_refused_at_the_update(
    client, task_queue, real_worker, deps
):
    async with real_worker():
        request_id, handle = await _inquiry(client, task_queue)
        mine = upload(deps.store, deps.blobs, make_pdf("resposta"), kind="other",
                      filename="resposta.pdf", for_workflow=access_request_id(request_id))
        before = await status(handle)
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await update(handle, "answer_inquiry", {
                "actor": ANALYST, "answer": "Segue.",
                "documents": [_ref(mine, filename="resposta.pdf\r\nBcc: todos@example.com")]})
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.message == ("documents.0.filename: nome de arquivo não pode conter quebras "
                                 "de linha nem caracteres de controle")
        after = await status(handle)
        assert (after.status, len(after.decisions)) == (before.status, len(before.decisions))


async def test_an_unreadable_blob_does_not_block_the_request(
    client, task_queue, real_worker, deps, smtp_sink
):
    async with real_worker():
        request_id, handle = await _inquiry(client, task_queue)
        mine = upload(deps.store, deps.blobs, make_pdf("ilegível"), kind="other",
                      filename="anexo.pdf", for_workflow=access_request_id(request_id))
        # The blob's path becomes a directory: reading it raises an OSError that is not
        # "file not found" (IsADirectoryError, as PermissionError would for another user).
        path = deps.blobs.path(mine.sha256)
        path.unlink()
        path.mkdir()
        await update(handle, "answer_inquiry", {"actor": ANALYST, "answer": "Segue.",
                                                "documents": [_ref(mine)]})
        result = await asyncio.wait_for(handle.result(), timeout=20)
        assert result.status == "ANSWERED" and result.pending_effects == 0
        [note] = [n for n in result.notifications if n.template == "inquiry_answered"]
        assert note.status == "refused" and "IsADirectoryError" in (note.detail or "")
        actions = [e.action for e in deps.store.events(access_request_id(request_id))]
        assert actions[-1] == "answered"


async def test_the_last_mail_attempt_records_a_refusal_like_a_5xx(deps, smtp_sink):
    assert MAIL_OPTIONS["retry_policy"].maximum_attempts == MAIL_MAX_ATTEMPTS
    mail = MailActivities(deps.store, deps.blobs, deps.settings)
    smtp_sink.fail_next = 1  # 451: transient
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, attempt=MAIL_MAX_ATTEMPTS,
        retry_policy=RetryPolicy(maximum_attempts=MAIL_MAX_ATTEMPTS))
    req = EmailRequest(key="gd-request-x:inquiry_answered:1", template="inquiry_answered",
                       to=[CUSTOMER], context={"request_id": "x", "answer": "ok"})
    result = await env.run(mail.send_email, req)
    assert result.status == "refused"
    assert result.detail.startswith(f"desistência após {MAIL_MAX_ATTEMPTS} tentativa(s); "
                                    "última falha: 451")
    with deps.store.session(write=False) as s:
        row = s.get(Outbox, req.key)
        assert (row.status, row.detail) == ("refused", result.detail)


async def test_a_key_with_a_line_break_never_reaches_a_header(deps, smtp_sink):
    mail = MailActivities(deps.store, deps.blobs, deps.settings)
    req = EmailRequest(key="gd-request-x\r\nBcc: todos@example.com:k", template="inquiry_answered",
                       to=[CUSTOMER], context={"request_id": "x", "answer": "ok"})
    with pytest.raises(ApplicationError) as failure:
        await mail.send_email(req)
    assert failure.value.non_retryable and failure.value.type == "InvalidKey"
    assert smtp_sink.transactions == 0


# --- 3. caps -----------------------------------------------------------------------------


def test_caps_refuse_documents_and_pauses_with_the_field_and_the_limit():
    doc = DocumentRef(sha256="ab" * 32, kind="correction", filename="c.pdf", size=10,
                      content_type="application/pdf")
    state = SimpleNamespace(documents=[doc] * 290, decisions=[])
    check_growth(state, "attach_corrections", SimpleNamespace(documents=[doc] * 10))
    with pytest.raises(LimitRefused) as refused:
        check_growth(state, "attach_corrections", SimpleNamespace(documents=[doc] * 11))
    assert str(refused.value) == (
        "documents: a solicitação já tem 290 documento(s); com mais 11 passaria do limite "
        "de 300 por solicitação")
    assert MAX_DOCUMENTS_PER_REQUEST == 300


async def test_the_twenty_first_pause_is_refused(client, task_queue, real_worker):
    async with real_worker():
        _, handle = await _inquiry(client, task_queue)
        for n in range(MAX_PAUSES_PER_REQUEST):
            await update(handle, "pause_clock", {"actor": ANALYST, "reason": f"pausa {n}"})
            await update(handle, "resume_clock", {"actor": ANALYST})
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await update(handle, "pause_clock", {"actor": ANALYST, "reason": "mais uma"})
        cause = failure.value.cause
        assert cause.type == "LimitRefused"
        assert cause.message == ("pause_clock: o prazo já foi suspenso 20 vezes; o limite é "
                                 "20 suspensões por solicitação")
        await quiet(handle)


def test_the_two_hundredth_decision_is_accepted_and_the_two_hundred_first_refused():
    # The rule (issue 14, part 2 item 3; domain/limits.py): at most 200 decisions per
    # request; withdrawal and resuming a paused clock are never capped.
    assert MAX_DECISIONS_PER_REQUEST == 200
    one = Decision(at=datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc),
                   actor=Actor(**ANALYST), action="suspend")
    state = SimpleNamespace(documents=[], decisions=[one] * 199)
    check_growth(state, "suspend", SimpleNamespace())  # the 200th: accepted
    state.decisions.append(one)
    for action in ("approve", "suspend", "reprove", "declare_works", "pause_clock",
                   "answer_inquiry", "record_inspection"):
        with pytest.raises(LimitRefused) as refused:  # the 201st: refused, whichever
            check_growth(state, action, SimpleNamespace())
        assert str(refused.value) == (
            f"{action}: a solicitação atingiu o limite de 200 decisões; só a desistência "
            "(withdraw) ainda é possível")
    for action in ("withdraw", "resume_clock"):
        check_growth(state, action, SimpleNamespace())


async def test_a_request_at_its_decision_cap_refuses_the_next_decision_and_stays_as_it_was(
    client, task_queue, real_worker, deps, smtp_sink
):
    """On the workflow, as a long-lived request reaches it: a run that continued as new
    after 199 decisions (a long suspend/reanalysis loop; 200 real updates with their
    e-mails would take minutes) takes the 200th, refuses the 201st naming the update and
    the limit, and nothing changes; withdrawal still goes."""
    request_id = f"cap-{uuid.uuid4().hex[:10]}"
    raw = request_input(request_id)
    now = datetime.now(timezone.utc)
    carried = AccessState(
        input=AccessRequestInput.model_validate(raw), status="UNDER_ANALYSIS", policy="seed",
        created_at=now - timedelta(days=400), updated_at=now, seq=600, cycle=199,
        service_note="7000000199", protocol="2026000199", service_notes=["7000000199"],
        decisions=[Decision(at=now - timedelta(days=400 - n), actor=Actor(**ANALYST),
                            action="suspend") for n in range(199)],
        deadline=ActiveDeadline(rule="parecer", start=now, due_at=now + timedelta(days=30),
                                on_lapse="escalate"))
    async with real_worker():
        handle = await client.start_workflow(
            "AccessRequest", args=[raw, carried], id=access_request_id(request_id),
            task_queue=task_queue, result_type=AccessStatus)
        at_cap = await update(handle, "declare_works", {"actor": ANALYST, "reason": "a 200ª"})
        assert len(at_cap.decisions) == 200 and at_cap.decisions[-1].action == "declare_works"
        before = await quiet(handle)
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await update(handle, "suspend", {"actor": ANALYST,
                                             "pendencies": [{"code": "DOC-ILEGIVEL"}]})
        cause = failure.value.cause
        assert cause.type == "LimitRefused"
        assert cause.message == ("suspend: a solicitação atingiu o limite de 200 decisões; só "
                                 "a desistência (withdraw) ainda é possível")
        after = await status(handle)
        assert (after.status, after.sequence, len(after.decisions)) == (
            "UNDER_ANALYSIS", before.sequence, 200)
        done = await update(handle, "withdraw", {"actor": CUSTOMER_ACTOR, "reason": "desisto"})
        assert done.status == "CANCELLED"
        await quiet(handle)


# The rule (models/common.py ``valid_workflow_id``): 1 to 200 characters, printable ASCII
# other than the space (33..126): no CR/LF, tab, NUL, DEL, space nor non-ASCII letters.
REFUSED_IDS = ("gd-request-maria\r\nBcc: todos@example.com", "gd-request-a\nb", "gd-request-a\rb",
               "gd-request-a\tb", "gd-request-a\x00b", "gd-request-a\x7fb", "gd-request-a b",
               "gd-request-joão", "")


def test_a_workflow_id_with_a_line_break_or_a_control_character_is_not_valid():
    for value in REFUSED_IDS:
        assert not valid_workflow_id(value), repr(value)
    for value in ("gd-request-a!b~c", "gd-request-" + "a" * 189, "gd-request-REQ_1.2:3"):
        assert valid_workflow_id(value), repr(value)


async def test_a_workflow_id_with_a_line_break_never_reaches_the_store(
    client, task_queue, real_worker, deps, smtp_sink
):
    bad_id = "gd-request-maria\r\nBcc: todos@example.com"
    async with real_worker():
        handle = await client.start_workflow(
            "AccessRequest", inquiry_input("maria"), id=bad_id, task_queue=task_queue,
            result_type=AccessStatus)
        result = await asyncio.wait_for(handle.result(), timeout=20)
    assert result.status == "REFUSED"
    assert [p.code for p in result.refusal_reasons] == ["workflow_id_invalid"]
    # A transition that names such an id (whoever queued it) is dropped, not written.
    records = RecordActivities(deps.store, deps.blobs)
    for value in REFUSED_IDS:
        ActivityEnvironment().run(records.record_transition, Transition(
            workflow_id=value, event_key="0001-received", process="access", action="received",
            status="AWAITING_ANSWER", at=datetime.now(timezone.utc)))
    with deps.store.session(write=False) as s:
        for table in (RequestRecord, EventRecord, OutboundEvent):
            assert s.exec(sa.select(sa.func.count()).select_from(table)).one()[0] == 0
    assert smtp_sink.transactions == 0


# --- 4. someone else's id ------------------------------------------------------------------


async def test_a_request_started_under_another_id_is_refused_and_shadows_nothing(
    client, task_queue, real_worker, deps
):
    async with real_worker():
        request_id, _ = await _inquiry(client, task_queue)
        shadow = await client.start_workflow(
            "AccessRequest", inquiry_input(request_id), id=f"gd-request-{request_id}-sombra",
            task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=AccessStatus)
        refused = await settle(shadow, lambda s: s.status == "REFUSED")
        assert [(p.field, p.code) for p in refused.refusal_reasons] == [
            ("request_id", "workflow_id_mismatch")]
        row = deps.store.request_by_request_id(request_id, kind="inquiry")
        assert row.workflow_id == access_request_id(request_id)
        assert row.status == "AWAITING_ANSWER"


async def test_a_workflow_id_the_store_cannot_hold_never_reaches_it(
    client, task_queue, real_worker, deps, smtp_sink
):
    long_id = "gd-request-" + "a" * 250
    async with real_worker():
        handle = await client.start_workflow(
            "AccessRequest", inquiry_input("a" * 60), id=long_id, task_queue=task_queue,
            result_type=AccessStatus)
        result = await asyncio.wait_for(handle.result(), timeout=20)
    assert result.status == "REFUSED"
    assert [p.code for p in result.refusal_reasons] == ["workflow_id_invalid"]
    with deps.store.session(write=False) as s:
        for table in (RequestRecord, EventRecord):
            assert s.exec(sa.select(sa.func.count()).select_from(table)).one()[0] == 0
    assert smtp_sink.transactions == 0


# --- 5. settings that fail open ----------------------------------------------------------


def test_smtp_tls_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("GD_SMTP_STARTTLS", "true")
    monkeypatch.setenv("GD_SMTP_USERNAME", "gd")
    monkeypatch.setenv("GD_SMTP_PASSWORD", "s3nha-do-relay")
    settings = GdSettings()
    assert settings.smtp_starttls is True and settings.smtp_username == "gd"
    assert settings.smtp_password.get_secret_value() == "s3nha-do-relay"
    assert "s3nha" not in repr(settings)


def _worker(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GD_")}
    clean.update(env, PYTHONPATH=str(PROJECT_ROOT), GD_TEMPORAL_ADDRESS="127.0.0.1:1")
    return subprocess.run([sys.executable, "-m", "worker"], cwd=PROJECT_ROOT, env=clean,
                          capture_output=True, text=True, timeout=60)


def test_outside_dev_the_worker_refuses_a_remote_relay_in_clear_and_clear_payloads():
    run = _worker({"GD_SMTP_HOST": "smtp.cemig.com.br", "GD_SMTP_PORT": "587"})
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines[-1] == (
        "worker não iniciado: GD_SMTP_HOST=smtp.cemig.com.br não é local e o envio seria "
        "sem TLS: defina GD_SMTP_STARTTLS=true (porta 587) ou GD_SMTP_SSL=true (porta 465), "
        "ou GD_ENV=dev; GD_CODEC_KEYS não definida: fora de GD_ENV=dev os payloads devem "
        "ser cifrados (gere uma chave com `python -m codec new-key`); GD_DOCUMENT_KEY não "
        "definida: fora de GD_ENV=dev o resumo do CPF/CNPJ do cliente usa uma chave secreta, "
        "a mesma em workers, API e `gd db upgrade`")
    assert startup_problems(GdSettings(env="dev", smtp_host="smtp.cemig.com.br"), {}) == []
    assert startup_problems(GdSettings(smtp_host="smtp.cemig.com.br", smtp_starttls=True,
                                       document_key="k" * 32), {"GD_CODEC_KEYS": "k1:x"}) == []


# --- 7. smaller ------------------------------------------------------------------------------


async def test_one_document_cited_fifty_times_is_attached_once_and_size_is_capped(deps, smtp_sink):
    mail = MailActivities(deps.store, deps.blobs, deps.settings)
    key = "gd-request-anexos"
    one = upload(deps.store, deps.blobs, make_pdf("um", 3 * 1024 * 1024), kind="other",
                 filename="um.pdf", for_workflow=key)
    await mail.send_email(EmailRequest(
        key=f"{key}:inquiry_answered:1", template="inquiry_answered", to=[CUSTOMER],
        context={"request_id": "anexos", "answer": "ok"}, attachments=[one] * 50))
    assert len(_attachments(smtp_sink)) == 1
    many = [upload(deps.store, deps.blobs, make_pdf(f"doc {n}", 3 * 1024 * 1024), kind="other",
                   filename=f"d{n}.pdf", for_workflow=key) for n in range(6)]
    with pytest.raises(ApplicationError) as failure:
        await mail.send_email(EmailRequest(
            key=f"{key}:inquiry_answered:2", template="inquiry_answered", to=[CUSTOMER],
            context={"request_id": "anexos", "answer": "ok"}, attachments=many))
    assert failure.value.type == "AttachmentsTooLarge" and failure.value.non_retryable
    assert smtp_sink.transactions == 1


def test_intake_problem_list_is_capped(deps):
    records = RecordActivities(deps.store, deps.blobs)
    raw = inquiry_input("muitos-docs")
    raw["documents"] = [{"sha256": f"{n:064x}", "kind": "other", "filename": f"{n}.pdf",
                         "size": 10, "content_type": "application/pdf"} for n in range(5000)]
    result = records.validate_intake(
        IntakeCheck(process="access", workflow_id=access_request_id("muitos-docs"), raw=raw))
    assert len(result.problems) == 51
    assert result.problems[-1].code == "too_many_problems"
    assert len(result.model_dump_json()) < 64 * 1024


def test_a_bare_key_is_not_printed_in_the_error():
    secret = "c2VncmVkby1kZS0zMi1ieXRlcy1wYXJhLWFlcy0yNTY="
    with pytest.raises(CodecConfigError) as failure:
        parse_keys(secret)
    message = str(failure.value)
    assert not any(secret[i:i + 4] in message for i in range(len(secret) - 3))
    assert "item 1 sem id" in message


async def test_set_password_token_is_single_use_and_expires_after_72_hours(deps, smtp_sink):
    from datetime import datetime, timezone

    mail = MailActivities(deps.store, deps.blobs, deps.settings)
    req = CredentialsRequest(key="gd-technician-CREA-MG-123456:credentials:r1",
                             technician="CREA-MG-123456", name="João Souza",
                             email="joao@example.com", cpf="52998224725")
    issued = datetime.now(timezone.utc)
    await mail.send_technician_credentials(req)
    [message] = smtp_sink.find("X-GD-Template", "technician_apr_set_password")
    token = re.search(r"token=([A-Za-z0-9_-]+)", message.get_body(("plain",)).get_content())[1]
    with pytest.raises(SecretRefused, match="expirado"):
        redeem_secret(deps.store, "CREA-MG-123456", "apr_password_token", token,
                      now=issued + timedelta(hours=72, minutes=1))
    redeem_secret(deps.store, "CREA-MG-123456", "apr_password_token", token,
                  now=issued + timedelta(hours=71))
    with pytest.raises(SecretRefused, match="já utilizado"):
        redeem_secret(deps.store, "CREA-MG-123456", "apr_password_token", token,
                      now=issued + timedelta(hours=71, minutes=1))
    with pytest.raises(SecretRefused, match="inválido"):
        redeem_secret(deps.store, "CREA-MG-123456", "apr_password_token", ("y" if token[0] == "x" else "x") + token[1:])
