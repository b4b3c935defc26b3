"""Issue 17: the rules a CEMIG analyst or RT would trip on (seed fidelity).

Workflow logic on a real Temporal server with fake activities registered under the real
names (tests/access_helpers.py); expected values come from the guide and DOMAIN.md.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.access_fixtures import fakes, refused, worker  # noqa: F401 (fixtures)
from tests.access_helpers import (
    APR_KINDS,
    CUSTOMER,
    TECH,
    doc,
    quiet,
    register_apr,
    request_input,
    settle,
    start,
    status,
    update,
)


# --- item 1: a lapsed NS needs the technical documents too ------------------------------


@pytest.mark.timeskip
async def test_lapsed_ns_registration_requires_the_technical_documents(
    client, env, worker, task_queue, fakes, refused
):
    """Seed: "Cadastre a NS reprovada por decurso de prazo ... no APR WEB"; the APR step
    takes the technical documents (projeto, ART/RRT, unifilar, memorial). An empty
    registration of the lapsed NS would open a parecer clock on an empty dossier."""
    handle = await start(client, request_input(), task_queue)
    st = await status(handle)
    await env.sleep(timedelta(hours=24, minutes=1))
    st = await settle(handle, lambda s: s.status == "LAPSED")
    base = {"actor": TECH, "service_note": st.service_note, "protocol": st.protocol}
    message = await refused(handle, "register_apr", {**base, "documents": []})
    assert message.startswith("documents: para cadastrar a NS reprovada por decurso de prazo")
    for kind in APR_KINDS:
        assert kind in message
    # Three of four is still incomplete: the diagrama unifilar is missing.
    partial = [doc(k) for k in APR_KINDS if k != "single_line_diagram"]
    message = await refused(handle, "register_apr", {**base, "documents": partial})
    assert message.endswith("obrigatórios: single_line_diagram")
    # Complete: accepted, the NS is registered, the reanalysis can follow.
    st = await register_apr(handle, st)
    assert st.status == "LAPSED"
    st = await update(handle, "request_reanalysis", {
        "actor": CUSTOMER, "reproved_service_note": base["service_note"]})
    assert st.status == "UNDER_ANALYSIS"
    await quiet(handle)


# --- item 5: the council check on approval ------------------------------------------------


async def test_approval_records_the_council_registration_check(client, task_queue):
    from tests import test_technician as tt

    fakes = tt.Fakes()
    from temporalio.worker import Worker
    from concurrent.futures import ThreadPoolExecutor
    from workflows.technician import TechnicianRegistrationWorkflow

    async with Worker(client, task_queue=task_queue, workflows=[TechnicianRegistrationWorkflow],
                      activities=fakes.all(), activity_executor=ThreadPoolExecutor(2)):
        raw = tt.technician_input()
        handle = await tt.start(client, raw, task_queue)
        await tt.in_review(handle)
        irregular = {"source": "CREA-MG, consulta pública", "situation": "irregular",
                     "checked_at": "2026-12-01T10:00:00-03:00"}
        message = await tt.refused(handle, "approve", {"actor": tt.ANALYST, "registration_check": irregular})
        assert "registro regularizado no CREA ou no CAU (verificado: irregular)" in message
        naive = {**irregular, "situation": "regular", "checked_at": "2026-12-01T10:00:00"}
        message = await tt.refused(handle, "approve", {"actor": tt.ANALYST, "registration_check": naive})
        assert "checked_at" in message
        check = {**irregular, "situation": "regular", "checked_at": "2026-12-01T13:30:00+00:00"}
        st = await tt.update(handle, "approve", {"actor": tt.ANALYST, "registration_check": check})
        assert st.status == "APPROVED"
        # 13:30 UTC is 10:30 in Brasília (UTC-3).
        expected = (f"registro CREA-MG-{raw['registration']} verificado em CREA-MG, consulta "
                    "pública em 01/12/2026 10:30: regular")
        assert st.decisions[-1].text == expected
        await handle.result()
    transitions, _ = fakes.of(handle.id)
    approved = transitions[-1]
    assert approved.action == "approved"
    assert approved.data["registration_check"] == {
        "source": "CREA-MG, consulta pública", "situation": "regular",
        "checked_at": "2026-12-01T13:30:00Z"}
    assert approved.data["notes"] == expected


# --- item 6: both motives ------------------------------------------------------------------


async def test_reanalysis_accepts_both_motives_of_the_seed(client, worker, task_queue, fakes, refused):
    handle = await start(client, request_input(), task_queue)
    st = await register_apr(handle, await status(handle))
    st = await update(handle, "reprove", {"actor": {"id": "ana", "role": "analyst"},
                                          "reasons": [{"code": "DOC-ART-AUSENTE"}]})
    st = await update(handle, "attach_corrections", {"actor": TECH, "documents": [doc("correction")]})
    wrong = {"actor": CUSTOMER, "reproved_service_note": st.service_note, "motive": "Outro motivo"}
    message = await refused(handle, "request_reanalysis", wrong)
    assert message == (
        'motive: o motivo da solicitação deve ser "Reanálise do projeto/processo elétrico" '
        'ou "Reanálise de carga na rede"')
    st = await update(handle, "request_reanalysis", {**wrong, "motive": "Reanálise de carga na rede"})
    assert st.status == "UNDER_ANALYSIS" and st.cycle == 2
    await quiet(handle)
    [requested] = [t for t in fakes.transitions if t.action == "reanalysis_requested"]
    assert requested.data["motive"] == "Reanálise de carga na rede"


async def test_intake_records_the_request_motive(client, worker, task_queue, fakes):
    handle = await start(client, request_input(motive="power_increase"), task_queue)
    st = await quiet(handle)
    assert st.motive == "power_increase"
    [received] = [t for t in fakes.transitions if t.workflow_id == handle.id and t.action == "received"]
    assert received.data["motive"] == "power_increase"
    [mail] = [e for e in fakes.emails if e.template == "request_received" and e.key.startswith(handle.id)]
    assert mail.context["motive_label"] == "Aumento de potência instalada"
    # Without one: a new connection (the AGV's first option).
    plain = await start(client, request_input(), task_queue)
    assert (await quiet(plain)).motive == "new_connection"


def test_a_motive_is_refused_on_an_inquiry_and_must_be_known():
    from models.access import AccessRequestInput
    from models.common import parse_or_problems
    from tests.access_helpers import inquiry_input

    _, problems = parse_or_problems(AccessRequestInput, {**inquiry_input(), "motive": "power_increase"})
    assert [(p.field, p.message) for p in problems] == [
        ("motive", "o motivo da solicitação não se aplica a uma consulta")]
    _, problems = parse_or_problems(AccessRequestInput, request_input(motive="mudanca"))
    assert [p.field for p in problems] == ["motive"]


# --- item 9: e-mail content ------------------------------------------------------------------


@pytest.mark.timeskip
async def test_lapse_email_names_the_ns_and_when_the_24_hours_ended(client, env, worker, task_queue, fakes):
    handle = await start(client, request_input(), task_queue)
    st = await status(handle)
    apr_due = st.due_at
    await env.sleep(timedelta(hours=24, minutes=1))
    await settle(handle, lambda s: s.status == "LAPSED")
    await quiet(handle)
    [lapsed] = [e for e in fakes.emails if e.template == "apr_lapsed" and e.key.startswith(handle.id)]
    assert lapsed.context["service_note"] == st.service_note
    assert lapsed.context["apr_due_at"] == apr_due.isoformat()
    from activities.mail import render

    text = render("apr_lapsed", lapsed.context).text
    local = apr_due.astimezone(__import__("zoneinfo").ZoneInfo("America/Sao_Paulo"))
    assert f"o prazo terminou em {local:%d/%m/%Y} às {local:%H:%M}" in text
    assert f"NS) {st.service_note}" in text


async def test_request_received_lists_required_and_recommended_documents(client, worker, task_queue, fakes):
    handle = await start(client, request_input(), task_queue)
    await quiet(handle)
    [mail] = [e for e in fakes.emails if e.template == "request_received" and e.key.startswith(handle.id)]
    assert mail.context["apr_required"] == [
        "projeto elétrico", "ART (CREA) ou RRT (CAU) do responsável técnico",
        "diagrama unifilar", "memorial descritivo"]
    assert mail.context["apr_recommended"] == [
        "folha de dados dos inversores", "folha de dados dos módulos",
        "certificado do inversor (INMETRO)", "procuração, quando alguém age pelo cliente"]
    from activities.mail import render

    text = render("request_received", mail.context).text
    required = text.index("Obrigatórios")
    recommended = text.index("Recomendados")
    assert required < text.index("- diagrama unifilar") < recommended
    assert recommended < text.index("- folha de dados dos módulos")


async def test_inquiry_answer_also_reaches_the_integrator(client, worker, task_queue, fakes):
    from tests.access_helpers import inquiry_input

    raw = inquiry_input()
    raw["integrator"] = {"name": "Sol Integradora Ltda", "document": "11.222.333/0001-81",
                         "email": "projetos@sol-integradora.example.com"}
    handle = await start(client, raw, task_queue)
    await update(handle, "answer_inquiry", {"actor": {"id": "ana", "role": "analyst"},
                                            "answer": "Há capacidade no alimentador."})
    await quiet(handle)
    [mail] = [e for e in fakes.emails if e.template == "inquiry_answered" and e.key.startswith(handle.id)]
    assert mail.to == ["maria.souza@example.com.br", "projetos@sol-integradora.example.com"]


def test_a_reanalysis_keeps_the_protocol_and_burns_no_protocol_number(tmp_path):
    """A reanalysis gets a new NS and keeps the request's Protocolo: the next request's
    Protocolo follows the first one's (no number of the yearly sequence is spent)."""
    from datetime import datetime, timezone

    from activities.blobs import BlobStore
    from activities.records import RecordActivities
    from activities.store import Store
    from models.activities import NumberRequest

    store = Store(f"sqlite:///{tmp_path / 'gd.db'}")
    store.create_schema()
    clock = lambda: datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    records = RecordActivities(store, BlobStore(tmp_path / "blobs"), clock=clock)
    first = records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="intake"))
    again = records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="reanalysis-2"))
    third = records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="reanalysis-3"))
    other = records.issue_numbers(NumberRequest(workflow_id="gd-request-b", step="intake"))
    assert (first.protocol, again.protocol, third.protocol) == ("2026000001",) * 3
    assert [first.service_note, again.service_note, third.service_note, other.service_note] == [
        "7000000001", "7000000002", "7000000003", "7000000004"]
    assert other.protocol == "2026000002"
    # Retried: the same numbers.
    assert records.issue_numbers(NumberRequest(workflow_id="gd-request-a", step="reanalysis-2")) == again


# --- item 8: the set-password link works (gd technician set-password) -----------------------


async def test_cli_sets_the_apr_password_once_with_the_emailed_token(
    client, task_queue, real_worker, smtp_sink, settings
):
    import re

    from typer.testing import CliRunner

    from cli.app import app
    from tests import test_technician as tt

    raw = tt.technician_input()
    key = f"CREA-MG-{raw['registration']}"
    async with real_worker():
        handle = await tt.start(client, raw, task_queue)
        await tt.in_review(handle)
        await tt.update(handle, "approve", {"actor": tt.ANALYST})
        await handle.result()
    messages = await smtp_sink.wait_for_async(4)
    [mail] = [m for m in messages if m["X-GD-Template"] == "technician_apr_set_password"]
    assert str(mail["From"]) == "Partweb@cemig.com.br"
    token = re.search(r"informe o código: (\S+)", mail.get_body(("plain",)).get_content()).group(1)
    runner = CliRunner()
    env = {"GD_DATABASE_URL": settings.database_url}
    args = ["technician", "set-password", key, "--token", token, "--password-stdin"]
    weak = runner.invoke(app, args, input="12345678901\n", env=env)
    assert weak.exit_code == 2 and "password: use letras e números" in weak.output
    done = runner.invoke(app, args, input="Solar2026Forte\n", env=env)
    assert done.exit_code == 0, done.output
    assert f"entre com o login {key}" in done.output
    again = runner.invoke(app, args, input="Outra2026Senha\n", env=env)
    assert again.exit_code == 2 and "código já utilizado" in again.output
    # Only a hash is stored: the password appears nowhere in the database file.
    from pathlib import Path

    database = Path(settings.database_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert b"Solar2026Forte" not in stored and token.encode() not in stored
    from activities.passwords import check_apr_login
    from activities.store import Store

    assert check_apr_login(Store(settings.database_url), key, "Solar2026Forte")


def test_an_expired_token_is_refused(tmp_path):
    from datetime import datetime, timedelta, timezone

    from activities.mail import hash_secret
    from activities.passwords import SecretRefused, set_apr_password
    from activities.store import Store
    from activities.tables import TechnicianSecret

    store = Store(f"sqlite:///{tmp_path / 'gd.db'}")
    store.create_schema()
    issued = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    with store.session() as s:
        s.add(TechnicianSecret(technician="CREA-MG-123456", kind="apr_password_token",
                               secret_hash=hash_secret("tok-123"), created_at=issued,
                               expires_at=issued + timedelta(hours=72)))
    with pytest.raises(SecretRefused, match="código expirado"):
        set_apr_password(store, "CREA-MG-123456", "tok-123", "Solar2026Forte",
                         now=issued + timedelta(hours=72))
    # One minute before the 72 hours end it still works.
    set_apr_password(store, "CREA-MG-123456", "tok-123", "Solar2026Forte",
                     now=issued + timedelta(hours=71, minutes=59))
