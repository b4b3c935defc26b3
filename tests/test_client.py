"""gd_client.GdClient: local refusals (nothing reaches the server), the validator's own
message for a refused update, idempotent starts, normalised RT ids, documents, and the
visibility query it builds. The journeys run the real workflows and activities (SQLite
store, blob store, SMTP sink) on the suite's Temporal server."""

from __future__ import annotations

from tests.pdf_fixture import make_pdf
import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import gd_client
from gd_client import (
    Documents,
    GdClient,
    GdNotFound,
    GdRefused,
    GdUnavailable,
    RequestSummary,
    build_list_query,
    parse_actor,
    parse_reason,
    parse_technician_key,
    request_workflow_id,
    sort_by_due,
    technician_workflow_id,
)
from activities.blobs import UploadRefused
from models.common import Actor
from tests.access_helpers import request_input

ANALYST = "analyst:ana.analista"
TECH = {"id": "rt.joao", "role": "technician"}
CUSTOMER = Actor(id="cliente.maria", role="customer", document="52998224725")  # request_input's
APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")


class NoServer:
    """A Temporal client stand-in that fails the test if anything reaches it."""

    namespace = "default"

    def __getattr__(self, name: str):
        raise AssertionError(f"chegou ao servidor: {name}")


def pdf(label: str) -> bytes:
    return make_pdf(f"{label} {uuid.uuid4().hex}")


def technician_input(registration: str) -> dict:
    return {
        "name": "João Pereira da Silva",
        "cpf": "529.982.247-25",
        "email": "joao.pereira@example.com.br",
        "phone": "(31) 98765-4321",
        "council": "CREA",
        "uf": "mg",
        "registration": registration,
    }


# --- parsing and local refusals (no server) ------------------------------------------------


def test_actor_reason_and_ids_parse_the_way_people_type_them():
    assert parse_actor("analyst:ana.silva") == Actor(id="ana.silva", role="analyst")
    assert parse_actor({"id": "x", "role": "inspector"}).role == "inspector"
    with pytest.raises(GdRefused, match="papel:id"):
        parse_actor("ana.silva")
    with pytest.raises(GdRefused, match="papel desconhecido; aceitos: customer"):
        parse_actor("chefe:ana")
    assert parse_reason("DOC-ART-AUSENTE").model_dump() == {"code": "DOC-ART-AUSENTE", "text": None}
    assert parse_reason("OTHER: falta o selo: ART").text == "falta o selo: ART"
    tech = parse_technician_key("crea-mg-12.345-d")
    assert tech.key == "CREA-MG-12345D"
    assert technician_workflow_id("CREA-MG-12.345-d") == "gd-technician-CREA-MG-12345D"
    assert technician_workflow_id("gd-technician-CREA-MG-12345D") == "gd-technician-CREA-MG-12345D"
    with pytest.raises(GdRefused, match="CONSELHO-UF-REGISTRO"):
        parse_technician_key("12345")
    with pytest.raises(GdRefused, match="UF desconhecida"):
        parse_technician_key("CREA-XX-12345")
    assert request_workflow_id("req-1") == "gd-request-req-1"
    assert request_workflow_id("gd-request-req-1") == "gd-request-req-1"
    with pytest.raises(GdRefused, match="request_id inválido"):
        request_workflow_id("req 1; drop")


async def test_a_bad_start_is_refused_with_every_problem_before_the_server(settings):
    gd = GdClient(NoServer(), settings)  # type: ignore[arg-type]
    raw = request_input(customer={"name": "", "document": "111.111.111-11", "email": "maria@"})
    raw["generation"]["installed_power_kw"] = -1
    with pytest.raises(GdRefused) as caught:
        await gd.start_request(raw)
    fields = {p.field for p in caught.value.problems}
    assert {"customer.name", "customer.document", "customer.email",
            "generation.installed_power_kw"} <= fields  # fmt: skip
    message = caught.value.message
    assert message.startswith("entrada recusada: ") and "\n" not in message
    assert "CPF inválido: dígitos verificadores não conferem" in message

    with pytest.raises(GdRefused, match="registration: registro no conselho deve ter"):
        await gd.start_technician(technician_input("x"))


async def test_bad_update_arguments_are_refused_before_the_server(settings):
    gd = GdClient(NoServer(), settings)  # type: ignore[arg-type]
    with pytest.raises(GdRefused, match=r"service_note: formato inválido"):
        await gd.register_apr("req-1", TECH, "123", "2026000001")
    with pytest.raises(GdRefused, match="suspend: pendencies: deve ter ao menos 1 item"):
        await gd.suspend("req-1", ANALYST, [])
    with pytest.raises(GdRefused, match="result: valor não aceito"):
        await gd.record_inspection("req-1", "inspector:v", "maybe")  # type: ignore[arg-type]
    with pytest.raises(GdRefused, match="papel desconhecido"):
        await gd.withdraw("req-1", {"id": "x", "role": "boss"}, "desisti")


# --- visibility query --------------------------------------------------------------------


def test_the_list_query_uses_the_search_attributes_and_checks_values():
    now = datetime(2026, 4, 17, 15, 0, tzinfo=timezone.utc)  # a Friday, 12:00 in Brasília
    query = build_list_query(
        status=["under_analysis", "SUSPENDED"], generation_class="MINI",
        technician="crea-mg-12.345-d", due_within_days=3, now=now,
    )  # fmt: skip
    assert query == (
        "GdKind IN ('request', 'inquiry') AND GdStatus IN ('UNDER_ANALYSIS', 'SUSPENDED') "
        "AND GdClass = 'mini' AND GdTechnician = 'CREA-MG-12345D' "
        "AND ExecutionStatus = 'Running' AND GdDueAt >= '2026-04-17T15:00:00Z' "
        "AND GdDueAt <= '2026-04-21T02:59:59Z'"  # end of Monday 20/04, local time
    )
    overdue = build_list_query(overdue=True, kind="technician", next_actor="analyst", now=now)
    assert overdue == (
        "GdKind = 'technician' AND GdNextActor = 'analyst' AND ExecutionStatus = 'Running' "
        "AND GdDueAt < '2026-04-17T15:00:00Z'"
    )
    with pytest.raises(GdRefused, match="status desconhecido: DONE"):
        build_list_query(status="DONE")
    with pytest.raises(GdRefused, match="classe desconhecido"):
        build_list_query(generation_class="giga")
    with pytest.raises(GdRefused, match="tipo desconhecido: x' OR 'a'='a"):
        build_list_query(kind="x' OR 'a'='a")


def test_rows_sort_by_due_date_with_undated_ones_last():
    def row(name: str, due: datetime | None, started: datetime) -> RequestSummary:
        return RequestSummary(workflow_id=f"gd-request-{name}", workflow_type="AccessRequest",
                              request_id=name, due_at=due, started_at=started)  # fmt: skip

    t0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
    rows = [
        row("sem-prazo-antigo", None, t0),
        row("depois", t0 + timedelta(days=9), t0),
        row("sem-prazo-novo", None, t0 + timedelta(days=1)),
        row("antes", t0 + timedelta(days=2), t0),
    ]
    assert [r.request_id for r in sort_by_due(rows)] == [
        "antes", "depois", "sem-prazo-novo", "sem-prazo-antigo",
    ]  # fmt: skip


# --- documents --------------------------------------------------------------------------


def test_documents_upload_once_and_resolve_by_path_or_sha256(settings, tmp_path: Path):
    docs = Documents(settings)
    art = tmp_path / "art.pdf"
    art.write_bytes(pdf("art"))
    ref = docs.resolve(f"art_rrt={art}")
    assert (ref.kind, ref.filename, ref.content_type) == ("art_rrt", "art.pdf", "application/pdf")
    assert docs.resolve(ref.sha256) == ref
    assert docs.resolve(f"correction={ref.sha256.upper()}").kind == "correction"
    assert docs.resolve(str(art), default_kind="correction").sha256 == ref.sha256
    with pytest.raises(GdRefused, match="informe o tipo"):
        docs.resolve(str(art))
    with pytest.raises(GdRefused, match="não encontrado no repositório de arquivos"):
        docs.resolve("ab" * 32)
    empty = tmp_path / "vazio.pdf"
    empty.write_bytes(b"")
    with pytest.raises(UploadRefused, match="^vazio.pdf: arquivo vazio$"):
        docs.resolve(f"other={empty}")
    with pytest.raises(UploadRefused, match="tipo de documento 'nada' desconhecido"):
        docs.upload(art, "nada")


# --- connection failures -------------------------------------------------------------------


async def test_no_server_is_one_clear_message(settings):
    from tests.smtp_sink import free_port

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(GdUnavailable) as caught:
        await GdClient.connect(settings.model_copy(update={"temporal_address": address}))
    assert caught.value.message == (
        f"não foi possível conectar ao Temporal em {address} (rode `make run`)"
    )


async def test_no_worker_is_reported_not_waited_for_forever(client, settings, monkeypatch):
    monkeypatch.setattr(gd_client, "START_TIMEOUT_S", 0.5)
    monkeypatch.setattr(gd_client, "QUERY_TIMEOUT", timedelta(seconds=1))
    lonely = settings.model_copy(update={"task_queue": f"ninguem-{uuid.uuid4().hex[:8]}"})
    gd = GdClient(client, lonely)
    raw = request_input(documents=[])
    raw["kind"] = "inquiry"
    with pytest.raises(GdUnavailable, match="rode `make run` ou `gd worker`"):
        await gd.start_request(raw)
    await client.get_workflow_handle(request_workflow_id(raw["request_id"])).terminate("teste")


# --- journeys on the real workflows ----------------------------------------------------------


async def approved_technician(gd: GdClient, registration: str) -> str:
    st = await gd.start_technician(technician_input(registration))
    assert st.status == "PENDING_REVIEW" and st.next_actor == "analyst"
    approved = await gd.approve_technician(st.technician, ANALYST)
    assert approved.status == "APPROVED"
    settled = await gd.settle(f"gd-technician-{st.technician}", timeout=10)
    assert settled.status == "APPROVED"
    return st.technician


async def test_request_journey_refusals_carry_the_validators_message(client, settings, real_worker):
    gd = GdClient(client, settings)
    async with real_worker():
        digits = f"{uuid.uuid4().int % 10**6:06d}"
        key = await approved_technician(gd, f"{digits[:2]}.{digits[2:]}-d")
        assert key == f"CREA-MG-{digits}D"  # the id is built from the normalised registration
        assert await gd.exists(f"gd-technician-{key}")
        TECH = {"id": "rt.joao", "role": "technician", "council_key": key}  # the request's RT

        commercial = gd.upload(pdf("rg"), "commercial_id", filename="rg.pdf")
        raw = request_input(technician={"council": "CREA", "uf": "MG", "registration": digits + "D"},
                            documents=[commercial.model_dump()])  # fmt: skip
        st = await gd.start_request(raw)
        assert st.status == "AWAITING_APR" and st.service_note and st.protocol
        again = await gd.start_request(raw)  # same idempotency key: the same process
        assert (again.service_note, again.protocol) == (st.service_note, st.protocol)

        wrong_ns = "7" + "9" * 9
        with pytest.raises(GdRefused) as caught:
            await gd.register_apr(raw["request_id"], TECH, wrong_ns, st.protocol)
        assert caught.value.message == f"service_note: NS {wrong_ns} não é a NS desta solicitação"
        with pytest.raises(GdRefused, match=r"^suspend: não permitido no status AWAITING_APR"):
            await gd.suspend(raw["request_id"], ANALYST, ["DOC-ART-AUSENTE"])

        docs = [gd.upload(pdf(k), k) for k in APR_KINDS]
        st = await gd.register_apr(request_workflow_id(raw["request_id"]), TECH, st.service_note,
                                   st.protocol, docs)  # fmt: skip
        assert st.status == "UNDER_ANALYSIS" and st.cycle == 1
        with pytest.raises(GdRefused) as caught:
            await gd.suspend(raw["request_id"], ANALYST, ["DOC-INEXISTENTE"])
        assert caught.value.message == (
            "pendencies: código(s) fora do catálogo de motivos para esta ação: DOC-INEXISTENTE"
        )
        with pytest.raises(GdRefused, match="papel 'customer' não pode executar"):
            await gd.suspend(raw["request_id"], CUSTOMER, ["DOC-ART-AUSENTE"])
        st = await gd.suspend(raw["request_id"], ANALYST, ["DOC-ART-AUSENTE:sem comprovante"])
        assert st.status == "SUSPENDED" and st.decisions[-1].reasons[0].text == "sem comprovante"

        st = await gd.withdraw(raw["request_id"], CUSTOMER, "desisti do projeto")
        assert st.status == "CANCELLED"
        await gd.settle(raw["request_id"])
        with pytest.raises(GdRefused) as caught:
            await gd.attach_corrections(raw["request_id"], TECH, [docs[0]])
        assert "processo já encerrado (CANCELLED); nenhuma ação é possível" in caught.value.message
        closed = await gd.start_request(raw)  # a finished process answers with its status
        assert closed.status == "CANCELLED" and closed.service_note == st.service_note

        with pytest.raises(GdNotFound, match="processo não encontrado"):
            await gd.request_status("nao-existe-" + uuid.uuid4().hex[:6])


async def test_refused_intake_comes_back_as_a_status_not_an_error(client, settings, real_worker):
    gd = GdClient(client, settings)
    async with real_worker():
        # Well-formed, but the RT is not approved and the file was never uploaded.
        raw = request_input()
        st = await gd.start_request(raw)
        assert st.status == "REFUSED"
        codes = {p.code for p in st.refusal_reasons}
        assert {"technician_not_approved", "document_missing"} <= codes
        benef = await gd.start_beneficiaries({
            "request_id": raw["request_id"], "generator_installation": "3001234567",
            "holder_document": "529.982.247-25", "modality": "local", "actor": TECH,
            "allocation": {"mode": "priority", "units": [
                {"installation_number": "3001234568", "holder_document": "529.982.247-25",
                 "priority": 1}]},
        })  # fmt: skip
        assert benef.status == "REFUSED"
        assert [p.code for p in benef.refusal_reasons] == ["generator_not_connected"]
        for workflow_id in (request_workflow_id(raw["request_id"]), f"gd-beneficiaries-{raw['request_id']}"):
            for _ in range(100):  # a refused process closes once its refusal is recorded
                if await gd._closed(workflow_id):
                    break
                await asyncio.sleep(0.05)
            assert await gd._closed(workflow_id)


def test_status_polling_backs_off_to_a_quarter_second():
    """Each status query is a workflow task on the worker: the client waits longer each
    time (50 ms, then ×1.5) and never more than 250 ms between two queries."""
    from itertools import islice

    from gd_client import poll_pauses

    pauses = list(islice(poll_pauses(), 8))
    assert pauses[:3] == pytest.approx([0.05, 0.075, 0.1125])
    assert all(b >= a for a, b in zip(pauses, pauses[1:]))
    assert pauses[-1] == 0.25 and max(pauses) == 0.25
    assert sum(pauses[:4]) < 0.45  # five queries in the first 0.41 s: intake still feels instant
