"""E-mail: templates, the outbox (once per key), SMTP failures and the RT's credentials.

Real aiosmtpd server (tests/smtp_sink.py), real SQLite file in tmp_path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.blobs import BlobStore, upload
from activities.mail import (
    COMMON_KEYS,
    TEMPLATE_DIR,
    TEMPLATES,
    MailActivities,
    TemplateContextError,
    data,
    datahora,
    message_id_for,
    render,
    sample_context,
    verify_secret,
)
from activities.store import Store
from activities.tables import Outbox, TechnicianSecret
from models.activities import CredentialsRequest, EmailRequest
from models.common import DocumentRef
from models.settings import GdSettings
from tests.store_fixtures import Database, database  # noqa: F401 - fixture
from tests.pdf_fixture import make_pdf
from tests.smtp_sink import SmtpSink, free_port

CUSTOMER = "maria.silva@example.com"
TECHNICIAN_EMAIL = "joao.souza@example.com"
PDF = make_pdf("parecer de acesso", 1800)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def sink():
    with SmtpSink() as running:
        yield running


@pytest.fixture
def store(database: Database) -> Store:
    """The outbox runs on both back-ends: a SQLite file and a PostgreSQL schema."""
    db = database.open()
    db.create_schema()
    return db


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def mail_settings(sink: SmtpSink) -> GdSettings:
    return GdSettings(smtp_host=sink.host, smtp_port=sink.port, smtp_timeout_s=5)


@pytest.fixture
def mail(store: Store, blobs: BlobStore, mail_settings: GdSettings) -> MailActivities:
    return MailActivities(store, blobs, mail_settings)


class FailOnSent:
    """A Store whose transaction fails once when it would commit an Outbox row as ``sent``:
    the message already left, the DB never learns it (a crash after the server's 250)."""

    def __init__(self, store: Store, key: str | None = None):
        self.store = store
        self.key = key
        self.armed = True

    def __getattr__(self, name):
        return getattr(self.store, name)

    @contextmanager
    def connection(self, **kwargs):
        with self.store.connection(**kwargs) as conn:
            before = self._sent(conn)
            yield conn
            if self.armed and self._sent(conn) - before:
                self.armed = False
                raise ConnectionError("database connection lost")  # rolled back by the store

    def _sent(self, conn) -> set[str]:
        table = Outbox.__table__
        query = sa.select(table.c.key).where(table.c.status == "sent")
        if self.key is not None:
            query = query.where(table.c.key == self.key)
        return set(conn.execute(query).scalars())


def outbox(store: Store, key: str) -> Outbox | None:
    with store.session(write=False) as session:
        return session.get(Outbox, key)


def parecer_ref(blobs: BlobStore, store: Store) -> DocumentRef:
    """The parecer uploaded as an analyst does (the e-mail resolves it from the store)."""
    return upload(store, blobs, PDF, kind="parecer", filename="parecer-1234567890.pdf")


def request(template: str = "request_received", key: str = "gd-request-SOL-1:intake:0",
            to: list[str] | None = None, **extra) -> EmailRequest:
    return EmailRequest(key=key, template=template, to=to or [CUSTOMER],
                        context=sample_context(template), **extra)


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


# --- templates ---------------------------------------------------------------------------


def test_every_template_has_its_three_files_and_a_sample():
    names = set(TEMPLATES)
    files = {p.name for p in TEMPLATE_DIR.glob("*.j2") if not p.name.startswith("_")}
    assert files == {f"{n}.{part}.j2" for n in names for part in ("subject", "txt", "html")}
    samples = json.loads((TEMPLATE_DIR / "samples.json").read_text("utf-8"))
    assert set(samples) == names
    for name, info in TEMPLATES.items():
        assert info.sender_setting in ("sender_agv", "sender_apr", "sender_partweb"), name
        allowed = {*info.required, *info.optional, *COMMON_KEYS}
        assert set(samples[name]) <= allowed, f"{name}: sample has undocumented keys"
        assert set(info.required) <= set(samples[name]), name


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_renders_text_and_html(name: str):
    rendered = render(name, sample_context(name))
    assert rendered.subject and "\n" not in rendered.subject
    for body in (rendered.text, rendered.html):
        assert "{{" not in body and "{%" not in body
        assert "None" not in body and "Undefined" not in body
        assert "Cemig" in body
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert f"<title>{rendered.subject}</title>" in rendered.html or "&" in rendered.subject
    assert re.search(r"\d{4}-\d{2}-\d{2}T", rendered.text) is None, "ISO date left in text"
    context = sample_context(name)
    for key in ("service_note", "request_id", "technician"):
        if key in context:
            assert str(context[key]) in rendered.text


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_required_keys_are_enough_and_each_is_needed(name: str):
    sample = sample_context(name)
    required = {k: sample[k] for k in TEMPLATES[name].required}
    render(name, required)  # optional keys may all be absent
    for key in TEMPLATES[name].required:
        partial = {k: v for k, v in required.items() if k != key}
        with pytest.raises(TemplateContextError, match=key):
            render(name, partial)


def test_strict_undefined_catches_what_a_template_uses_beyond_the_table():
    # A unit without "installation_number" is a key the table cannot list: StrictUndefined
    # still refuses to render it silently.
    context = sample_context("beneficiaries_registered")
    context["units"] = [{"percent": "100"}]
    with pytest.raises(TemplateContextError, match="installation_number"):
        render("beneficiaries_registered", context)
    with pytest.raises(TemplateContextError, match="unknown e-mail template"):
        render("no_such_template", {})
    with pytest.raises(TemplateContextError, match="withdrawn"):
        render("cancelled", {**sample_context("cancelled"), "cause": "whatever"})


def test_none_counts_as_absent_and_extra_keys_are_ignored():
    # The shape the AccessRequest workflow sends: one broad context, None where unknown.
    context = {**sample_context("reproved"), "due_at": None, "apr_due_at": None,
               "kind": "request", "status": "REPROVED", "service_notes": ["1234567890"]}
    text = render("reproved", context).text
    assert "Prazo para solicitar" not in text and "None" not in text
    with pytest.raises(TemplateContextError, match="due_at"):
        render("suspended", {**sample_context("suspended"), "due_at": None})
    cancelled = render("cancelled", {"request_id": "SOL-1", "service_note": None,
                                     "customer_name": "Ana", "reason": "desistência: mudou"})
    assert "Prezado(a) Ana," in cancelled.text
    assert "SOL-1 foi cancelada." in cancelled.text
    assert "Motivo: desistência: mudou" in cancelled.text


def test_date_filters_pt_br_in_brasilia_time():
    assert datahora("2026-04-23T02:59:00+00:00") == "22/04/2026 às 23:59 (horário de Brasília)"
    assert datahora("2026-04-22T23:59:59-03:00") == "22/04/2026 às 23:59 (horário de Brasília)"
    assert data("2026-04-23T02:59:00+00:00") == "22/04/2026"
    assert data("2026-09-01") == "01/09/2026"
    with pytest.raises(ValueError, match="offset"):
        datahora("2026-04-22T23:59:00")


def test_request_received_facts_and_html_escaping():
    context = {**sample_context("request_received"), "recipient_name": "Ana <b>&</b> Cia"}
    rendered = render("request_received", context)
    assert "NS 1234567890" in rendered.subject and "Protocolo 2026000123" in rendered.subject
    assert "Nota de Serviço (NS): 1234567890" in rendered.text
    assert "até 22/04/2026 às 23:59 (horário de Brasília)" in rendered.text
    assert "https://web.cemig.com.br/PARTAPR" in rendered.text
    assert "decurso de prazo" in rendered.text
    assert "Ana <b>&</b> Cia" in rendered.text
    assert "Ana &lt;b&gt;&amp;&lt;/b&gt; Cia" in rendered.html


def test_domain_texts():
    lapsed = render("apr_lapsed", sample_context("apr_lapsed")).text
    assert "reprovada por decurso de prazo" in lapsed
    assert '"Reanálise do projeto/processo elétrico"' in lapsed
    assert lapsed.index("Cadastre no APR Web") < lapsed.index("solicite a reanálise na Agência")
    suspended = render("suspended", sample_context("suspended")).text
    assert "[DOC-ART-AUSENTE] ART (CREA) ou RRT (CAU)" in suspended
    assert "[OTHER] Corrigir a potência do inversor no memorial." in suspended
    assert "30 dias, até 08/06/2026" in suspended
    parecer = render("parecer_issued", sample_context("parecer_issued")).text
    assert "vistoria" in parecer and "120 dias" in parecer and "03/09/2026" in parecer
    registered = render("beneficiaries_registered", sample_context("beneficiaries_registered"))
    assert "a partir de 01/09/2026" in registered.text
    assert re.search(r"3001234567\s+60,00 %", registered.text)
    priority = render("beneficiaries_registered", {
        **sample_context("beneficiaries_registered"), "mode": "priority",
        "units": [{"installation_number": "3000000002", "priority": 2},
                  {"installation_number": "3000000001", "priority": 1}]}).text
    assert priority.index("3000000001") < priority.index("3000000002")
    paused = render("clock_paused", sample_context("clock_paused")).text
    assert "art. 64" in paused and "Aguardando parecer do ONS." in paused
    resumed = render("clock_resumed", sample_context("clock_resumed")).text
    assert "Novo vencimento: 20/05/2026 às 23:59 (horário de Brasília)" in resumed
    lapsed_cancel = render("cancelled", {**sample_context("cancelled"), "cause": "lapsed"}).text
    assert "prazo" in lapsed_cancel and "desistência" not in lapsed_cancel
    reanalysis = render("reanalysis_started", sample_context("reanalysis_started")).text
    assert "1234567891" in reanalysis and "NS reprovada vinculada: 1234567890" in reanalysis


# --- send_email ----------------------------------------------------------------------------


async def test_parecer_sent_with_pdf_through_activity_environment(mail, sink, blobs, store):
    ref = parecer_ref(blobs, store)
    req = request("parecer_issued", key="gd-request-SOL-1:approve:1", to=[CUSTOMER],
                  cc=["rt@example.com"], attachments=[ref])
    result = await ActivityEnvironment().run(mail.send_email, req)

    assert result.status == "sent"
    assert result.message_id == message_id_for(req.key)
    [message] = await sink.wait_for_async(1)
    assert set(sink.envelopes[0].rcpt_tos) == {CUSTOMER, "rt@example.com"}
    assert sink.envelopes[0].mail_from == "part_apr@cemig.com.br"  # an analysis answer: APR Web
    assert message["From"] == "part_apr@cemig.com.br"
    assert message["To"] == CUSTOMER and message["Cc"] == "rt@example.com"
    assert message["Subject"] == "Parecer de acesso emitido — NS 1234567890"
    assert message["Message-ID"] == message_id_for(req.key)
    assert message["X-GD-Key"] == req.key
    text = text_of(message)
    assert "NS 1234567890" in text and "até 03/09/2026" in text and "120 dias" in text
    assert "parecer-1234567890.pdf" in text
    assert "<strong>1234567890</strong>" in html_of(message)
    # What README promises of every message: pt-BR, auto-generated, multipart text + HTML
    # in quoted-printable UTF-8, attachments in base64 — read on the parsed parts...
    assert message["Content-Language"] == "pt-BR"
    assert message["Auto-Submitted"] == "auto-generated"
    for kind in ("plain", "html"):
        body = message.get_body(preferencelist=(kind,))
        assert body["Content-Transfer-Encoding"] == "quoted-printable", kind
        assert body.get_content_charset() == "utf-8", kind
    [attachment] = list(message.iter_attachments())
    assert attachment["Content-Transfer-Encoding"] == "base64"
    # ...and on the bytes that crossed the wire: a pt-BR accent travels as =C3=A7-style
    # quoted-printable, the PDF's binary bytes as base64 lines, never raw.
    raw = sink.raw[0]
    assert b"=C3=A7" in raw or b"=C3=A3" in raw or b"=C3=A9" in raw
    assert PDF not in raw and base64.b64encode(PDF)[:60] in raw.replace(b"\r\n", b"")
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "parecer-1234567890.pdf"
    assert attachment.get_content() == blobs.get(ref.sha256) == PDF

    row = outbox(store, req.key)
    assert (row.status, row.attempts, row.recipients_count) == ("sent", 1, 2)
    assert row.message_id == result.message_id and row.sent_at is not None


async def test_analysis_answers_come_from_apr_web_and_commercial_steps_from_agv(mail, sink):
    """The seed: APR Web mails the answers of the analyses (part_apr@), AGV the requests'
    commercial steps (agv@)."""
    expected = {
        "parecer_issued": "part_apr@cemig.com.br", "suspended": "part_apr@cemig.com.br",
        "reproved": "part_apr@cemig.com.br", "inspection_reproved": "part_apr@cemig.com.br",
        "request_received": "agv@cemig.com.br", "connected": "agv@cemig.com.br",
    }
    for i, name in enumerate(expected):
        await mail.send_email(request(name, key=f"s:{i}"))
    received = await sink.wait_for_async(len(expected))
    assert {m["Subject"] and name: m["From"] for name, m in zip(expected, received)} == expected


async def test_sender_per_template_and_override(mail, sink):
    await mail.send_email(request("technician_received", key="t:received",
                                  to=[TECHNICIAN_EMAIL]))
    await mail.send_email(request("deadline_reminder", key="r:remind",
                                  to=["analise.gd@cemig.com.br"]))
    await mail.send_email(request("connected", key="c:1", sender="gd@cemig.com.br"))
    first, second, third = await sink.wait_for_async(3)
    assert first["From"] == "part_apr@cemig.com.br"
    assert second["From"] == "agv@cemig.com.br"
    assert "Equipe de análise" in text_of(second)
    assert third["From"] == "gd@cemig.com.br"


async def test_role_recipients_are_the_configured_addresses(mail, sink):
    await mail.send_email(request("deadline_reminder", key="r:1", to=["role:analysts"]))
    await mail.send_email(request("sla_escalation", key="r:2", to=["role:supervisor"]))
    await sink.wait_for_async(2)
    assert [e.rcpt_tos for e in sink.envelopes] == [("analise.gd@cemig.com.br",),
                                                     ("supervisao.gd@cemig.com.br",)]
    with pytest.raises(ApplicationError) as failure:
        await mail.send_email(request("sla_escalation", key="r:3", to=["role:nobody"]))
    assert failure.value.non_retryable


async def test_retried_send_with_same_key_delivers_once(mail, sink, store):
    req = request()
    first = await mail.send_email(req)
    second = await ActivityEnvironment().run(mail.send_email, req)

    assert first.status == "sent" and second.status == "duplicate"
    assert second.message_id == first.message_id
    await sink.wait_for_async(1)
    assert len(sink.messages) == 1 and sink.transactions == 1
    message = sink.messages[0]
    assert "até 22/04/2026 às 23:59 (horário de Brasília)" in text_of(message)
    assert outbox(store, req.key).attempts == 1


async def test_message_left_but_db_not_marked_is_resent_with_same_message_id(
        store, blobs, mail_settings, sink):
    """The documented window: the server said 250, the 'sent' commit failed. The retry
    finds 'sending' and sends again (at least once), with the same Message-ID."""
    flaky = MailActivities(FailOnSent(store), blobs, mail_settings)
    req = request()
    with pytest.raises(ConnectionError):
        await flaky.send_email(req)
    await sink.wait_for_async(1)
    assert outbox(store, req.key).status == "sending"

    retried = await flaky.send_email(req)
    assert retried.status == "sent"
    first, second = await sink.wait_for_async(2)
    assert first["Message-ID"] == second["Message-ID"] == message_id_for(req.key)
    assert first["X-GD-Key"] == second["X-GD-Key"] == req.key
    row = outbox(store, req.key)
    assert (row.status, row.attempts) == ("sent", 2)

    assert (await flaky.send_email(req)).status == "duplicate"
    assert len(sink.messages) == 2


async def test_transient_451_raises_then_retry_delivers_once(mail, sink, store):
    sink.fail_next = 1
    req = request()
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(mail.send_email, req)
    assert not failure.value.non_retryable
    assert "451" in str(failure.value) and CUSTOMER not in str(failure.value)
    row = outbox(store, req.key)
    assert (row.status, row.attempts) == ("sending", 1) and row.detail.startswith("451")
    assert sink.messages == []

    result = await mail.send_email(req)
    assert result.status == "sent"
    await sink.wait_for_async(1)
    assert len(sink.messages) == 1 and sink.transactions == 2
    assert outbox(store, req.key).attempts == 2


async def test_connection_refused_is_transient(store, blobs):
    closed = GdSettings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_s=2)
    req = request()
    with pytest.raises(ApplicationError) as failure:
        await MailActivities(store, blobs, closed).send_email(req)
    assert not failure.value.non_retryable
    assert outbox(store, req.key).status == "sending"


async def test_one_smtp_connection_serves_several_emails_and_a_dropped_one_is_replaced(
        mail, sink, store):
    """The server sees one connection for three e-mails; when it closes that connection
    (a relay's idle timeout), the next e-mails go through a new one: none fails, none is
    sent twice, every key is ``sent`` once."""
    keys = [f"gd-request-SOL-{n}:intake:0" for n in range(1, 6)]
    for key in keys[:3]:
        assert (await mail.send_email(request(key=key))).status == "sent"
    await sink.wait_for_async(3)
    assert len({envelope.peer for envelope in sink.envelopes}) == 1

    assert await asyncio.to_thread(sink.drop_connections) == 1
    for key in keys[3:]:
        assert (await mail.send_email(request(key=key))).status == "sent"
    await sink.wait_for_async(5)
    peers = [envelope.peer for envelope in sink.envelopes]
    assert peers[3] == peers[4] != peers[0]
    assert sorted(m["X-GD-Key"] for m in sink.messages) == keys
    assert sink.transactions == 5
    assert [(outbox(store, key).status, outbox(store, key).attempts) for key in keys] == [
        ("sent", 1)] * 5

    # A session idle longer than the check interval answers NOOP first, then is reused.
    mail.smtp.check_after_s = 0.0
    assert (await mail.send_email(request(key="gd-request-SOL-6:intake:0"))).status == "sent"
    await sink.wait_for_async(6)
    assert sink.envelopes[5].peer == peers[4] and sink.transactions == 6


async def test_a_session_carries_at_most_its_message_limit_then_says_goodbye(mail, sink):
    mail.smtp.messages_per_connection = 2  # relays cap messages per connection
    for n in range(1, 6):
        assert (await mail.send_email(request(key=f"gd-request-SOL-{n}:intake:0"))).status == "sent"
    await sink.wait_for_async(5)
    peers = [envelope.peer for envelope in sink.envelopes]
    assert peers[0] == peers[1] != peers[2] == peers[3] != peers[4]
    assert len(set(peers)) == 3


async def test_permanent_550_is_recorded_returned_and_never_retried(mail, sink, store):
    sink.refuse_recipients = {CUSTOMER.upper()}
    req = request()
    result = await mail.send_email(req)

    assert result.status == "refused"
    assert result.detail.startswith("550") and "Mailbox unavailable" in result.detail
    assert CUSTOMER not in result.detail
    row = outbox(store, req.key)
    assert (row.status, row.attempts) == ("refused", 1) and row.detail == result.detail

    sink.refuse_recipients = set()
    again = await mail.send_email(req)
    assert again.status == "refused" and again.detail == result.detail
    assert sink.messages == [] and outbox(store, req.key).attempts == 1


async def test_refused_email_of_a_request_becomes_one_email_failed_event(mail, sink, store):
    """Other systems learn that a request's e-mail was refused: one br.gd.request.email_failed
    event, with the template and the request id and no address, however often it is asked."""
    from sqlmodel import select

    from activities.tables import OutboundEvent

    sink.refuse_recipients = {CUSTOMER.upper()}
    req = request()
    assert (await mail.send_email(req)).status == "refused"
    assert (await mail.send_email(req)).status == "refused"  # the recorded refusal, again

    with store.session(write=False) as s:
        rows = s.exec(select(OutboundEvent)).all()
    assert [(r.type, r.subject, r.workflow_id) for r in rows] == [
        ("br.gd.request.email_failed", "SOL-1", "gd-request-SOL-1")
    ]
    assert rows[0].data["template"] == "request_received"
    assert CUSTOMER not in str(rows[0].data) and "@" not in str(rows[0].data)


async def test_one_recipient_refused_the_other_served(mail, sink):
    sink.refuse_recipients = {"bad@example.com"}
    result = await mail.send_email(request(to=[CUSTOMER, "bad@example.com"]))
    assert result.status == "sent"
    assert result.detail.startswith("1 de 2 destinatário(s) recusado(s): 550")
    assert "bad@example.com" not in result.detail
    await sink.wait_for_async(1)
    assert sink.envelopes[0].rcpt_tos == (CUSTOMER,)


async def test_bad_context_or_missing_blob_is_not_retryable(mail, sink, store):
    req = EmailRequest(key="k:bad", template="request_received", to=[CUSTOMER],
                       context={"request_id": "SOL-1"})
    with pytest.raises(ApplicationError, match="service_note") as failure:
        await ActivityEnvironment().run(mail.send_email, req)
    assert failure.value.non_retryable
    unknown = EmailRequest(key="k:unknown", template="nope", to=[CUSTOMER])
    with pytest.raises(ApplicationError) as failure:
        await mail.send_email(unknown)
    assert failure.value.non_retryable
    ghost = DocumentRef(sha256="ab" * 32, kind="parecer", filename="x.pdf", size=10,
                        content_type="application/pdf")
    with pytest.raises(ApplicationError) as failure:
        await mail.send_email(request("parecer_issued", key="k:ghost", attachments=[ghost]))
    assert failure.value.non_retryable
    assert sink.transactions == 0
    assert outbox(store, "k:bad") is None and outbox(store, "k:ghost") is None


async def test_logs_carry_key_template_status_only(mail, sink, caplog):
    caplog.set_level(logging.DEBUG)
    sink.fail_next = 1
    req = request()
    with pytest.raises(ApplicationError):
        await mail.send_email(req)
    await mail.send_email(req)
    await mail.send_email(req)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "status=sent" in logged and "status=duplicate" in logged
    assert CUSTOMER not in logged and "Maria" not in logged


# --- technician credentials ------------------------------------------------------------------


def credentials() -> CredentialsRequest:
    return CredentialsRequest(key="gd-technician-CREA-MG-123456:approve", name="João Souza",
                              technician="CREA-MG-123456", email=TECHNICIAN_EMAIL,
                              cpf="12345678909")


def secret_from(message, pattern: str) -> str:
    found = re.search(pattern, text_of(message))
    assert found, text_of(message)
    return found.group(1)


def database_bytes(database: Database, store: Store) -> bytes:
    """Everything the store holds: every row of every table (both back-ends) and, on
    SQLite, the database file itself with its WAL (where a just-written row may still be)."""
    with store.session(write=False) as session:
        rows = [repr(tuple(row)).encode()
                for table in SQLModel.metadata.sorted_tables
                for row in session.connection().execute(sa.select(table))]
    if database.kind == "sqlite":
        path = Path(database.url.removeprefix("sqlite:///"))
        files = sorted(path.parent.glob(path.name + "*"))
        assert path in files, f"no database file at {path}"
        rows += [p.read_bytes() for p in files]
    return b"\n".join(rows)


def secret_rows(store: Store) -> dict[str, TechnicianSecret]:
    with store.session(write=False) as session:
        return {row.kind: row for row in session.exec(select(TechnicianSecret)).all()}


async def test_credentials_three_emails_three_senders_secrets_only_hashed(
        mail, sink, store, database, caplog):
    caplog.set_level(logging.DEBUG)
    req = credentials()
    results = await ActivityEnvironment().run(mail.send_technician_credentials, req)

    assert [r.status for r in results] == ["sent", "sent", "sent"]
    assert [r.key for r in results] == [f"{req.key}:agv", f"{req.key}:apr",
                                        f"{req.key}:apr-password"]
    agv, apr, partweb = await sink.wait_for_async(3)
    assert [m["From"] for m in (agv, apr, partweb)] == [
        "agv@cemig.com.br", "part_apr@cemig.com.br", "Partweb@cemig.com.br"]
    assert all(env.rcpt_tos == (TECHNICIAN_EMAIL,) for env in sink.envelopes)
    assert "Login: 12345678909" in text_of(agv)
    assert "Login de acesso ao APR Web: CREA-MG-123456" in text_of(apr)
    password = secret_from(agv, r"Senha inicial: (\S+)")
    token = secret_from(partweb, r"informe o código: (\S+)")
    assert f"DefinirSenha.aspx?token={token}" in text_of(partweb)
    assert len(password) >= 16 and len(token) >= 40 and password != token

    stored = database_bytes(database, store)
    for secret in (password, token):
        assert secret.encode() not in stored
        assert secret not in json.dumps([r.model_dump() for r in results])
        assert secret not in "\n".join(r.getMessage() for r in caplog.records)
    rows = secret_rows(store)
    assert set(rows) == {"agv_password", "apr_password_token"}
    assert rows["agv_password"].secret_hash.startswith("scrypt$")
    for row in rows.values():  # the scan above read where the secrets' rows are
        assert row.secret_hash.encode() in stored
    assert verify_secret(password, rows["agv_password"].secret_hash)
    assert verify_secret(token, rows["apr_password_token"].secret_hash)
    assert not verify_secret(token, rows["agv_password"].secret_hash)
    assert rows["agv_password"].technician == "CREA-MG-123456"
    assert rows["apr_password_token"].expires_at is not None

    again = await mail.send_technician_credentials(req)
    assert [r.status for r in again] == ["duplicate"] * 3
    assert len(sink.messages) == 3
    assert secret_rows(store)["agv_password"].secret_hash == rows["agv_password"].secret_hash


async def test_email_change_code_reaches_the_new_address_and_only_its_hash_is_kept(
        mail, sink, store, database, caplog):
    """issue 17 item 4: the code confirming an RT's new e-mail, from Partweb@."""
    from datetime import datetime, timezone

    from activities.email_change import EmailChangeActivities
    from models.activities import EmailCodeCheck, EmailCodeRequest

    caplog.set_level(logging.DEBUG)
    expires = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)  # 09:00 in Brasília
    req = EmailCodeRequest(key="gd-rt-email-CREA-MG-123456:email-code-1:run", technician="CREA-MG-123456",
                           email="novo.rt@example.org", expires_at=expires)
    result = await ActivityEnvironment().run(mail.send_email_change_code, req)
    assert result.status == "sent"
    [message] = await sink.wait_for_async(1)
    assert sink.envelopes[0].rcpt_tos == ("novo.rt@example.org",)
    assert message["From"] == "Partweb@cemig.com.br"
    assert "vale até 05/12/2026 às 09:00" in text_of(message)
    code = secret_from(message, r"Código de confirmação: (\d{6})")
    assert code.encode() not in database_bytes(database, store)
    assert code not in "\n".join(r.getMessage() for r in caplog.records)
    assert "novo.rt@example.org" not in "\n".join(r.getMessage() for r in caplog.records)
    row = secret_rows(store)["email_change_code"]
    assert verify_secret(code, row.secret_hash)
    assert row.expires_at.replace(tzinfo=timezone.utc) == expires
    # Sent once per key: a retry neither sends nor replaces the code.
    assert (await mail.send_email_change_code(req)).status == "duplicate"
    assert secret_rows(store)["email_change_code"].secret_hash == row.secret_hash

    # Redeemed once, before expiry, by the confirm activity (the RT record is absent here:
    # nothing to switch, the code is still used up).
    changes = EmailChangeActivities(store)
    check = EmailCodeCheck(technician="CREA-MG-123456", code=code, email="novo.rt@example.org",
                           at=datetime(2026, 12, 5, 11, 59, tzinfo=timezone.utc))
    late = check.model_copy(update={"at": expires})
    assert changes.confirm_email_change(late) is False  # at the expiry instant: expired
    assert changes.confirm_email_change(check.model_copy(update={"code": "000000" if code != "000000" else "111111"})) is False
    assert changes.confirm_email_change(check) is True
    assert secret_rows(store)["email_change_code"].used_at is not None


async def test_credentials_retry_after_agv_left_unmarked_sends_a_new_valid_password(
        store, blobs, mail_settings, sink):
    req = credentials()
    flaky = MailActivities(FailOnSent(store, key=f"{req.key}:agv"), blobs, mail_settings)
    with pytest.raises(ConnectionError):
        await flaky.send_technician_credentials(req)
    [first] = await sink.wait_for_async(1)
    old_password = secret_from(first, r"Senha inicial: (\S+)")

    results = await flaky.send_technician_credentials(req)
    assert [r.status for r in results] == ["sent", "sent", "sent"]
    messages = await sink.wait_for_async(4)
    agv_messages = [m for m in messages if m["From"] == "agv@cemig.com.br"]
    assert len(agv_messages) == 2 and len(messages) == 4
    new_password = secret_from(agv_messages[1], r"Senha inicial: (\S+)")
    assert new_password != old_password
    stored_hash = secret_rows(store)["agv_password"].secret_hash
    assert verify_secret(new_password, stored_hash)  # the latest password is the valid one
    assert not verify_secret(old_password, stored_hash)
    assert outbox(store, f"{req.key}:agv").attempts == 2


async def test_credentials_refused_address_keeps_no_secret(mail, sink, store):
    sink.refuse_recipients = {TECHNICIAN_EMAIL}
    results = await mail.send_technician_credentials(credentials())
    assert [r.status for r in results] == ["refused"] * 3
    assert secret_rows(store) == {}
    assert sink.messages == []


# --- the sink itself -------------------------------------------------------------------------


def test_sink_saves_numbered_eml_files(tmp_path: Path):
    import smtplib

    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "7.eml").write_bytes(b"old")
    with SmtpSink(save_dir=tmp_path / "mail") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"],
                            b"Subject: oi\r\nMessage-ID: <x@y>\r\n\r\ncorpo\r\n")
        [message] = sink.wait_for(1)
    assert message["Subject"] == "oi"
    saved = (tmp_path / "mail" / "8.eml").read_bytes()
    assert b"corpo" in saved
    assert hashlib.sha256(saved).hexdigest() == hashlib.sha256(sink.raw[0]).hexdigest()
    with pytest.raises(TimeoutError):
        sink.wait_for(2, timeout=0.1)
