"""Bad input, ≥ 50 cases: starts, updates, uploads and the `gd` CLI.

Each case must get ONE clear pt-BR refusal that names the field and the rule, and change
nothing:

- **updates** (refused by the workflow's validator): the history is exactly as before
  (on the time-skipping server, without its workflow-task bookkeeping — see
  tests/access_helpers.history_facts) and the store (every table), the blob store and
  the SMTP sink are exactly as before;
- **starts** (the workflow refuses at intake): status ``REFUSED`` with a problem naming
  the field and the rule; nothing of the process begins — no NS, no e-mail, no document,
  the store holds only the refusal itself (one ``REFUSED`` row and its ``refused`` event);
- **uploads**: ``UploadRefused`` naming the rule; no blob, no DocumentRecord;
- **CLI** (``gd`` as a subprocess, exit code 2): one pt-BR line on stderr naming the field
  or rule; no workflow started, store unchanged.

All of it runs against one module-wide world: a real worker (real activities, SQLite
store, SMTP sink) and requests parked in each status the update cases need. A refused
update must leave the parked request exactly as it was, which is what every case checks.
"""

from __future__ import annotations

from models.acks import UpdateAck

from tests.pdf_fixture import make_pdf
import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import pytest_asyncio
from sqlalchemy import func
from sqlmodel import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.blobs import BlobStore, UploadRefused, upload
from activities.store import Store
from activities.tables import TABLES, EventRecord, RequestRecord, TechnicianRecord
from models.access import AccessStatus
from models.common import MAX_DOCUMENT_BYTES
from models.ids import access_request_id, technician_id
from models.settings import GdSettings
from models.technician import TechnicianStatus
from tests.access_helpers import APR_KINDS, history_facts, quiet, request_input, settle
from tests.reliability_helpers import format_cpf, make_cpf
from tests.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[1]
ANALYST = {"id": "ana.analista", "role": "analyst"}
# The approved RT of the world below (registration 700000) and the customer of
# request_input: the parties of every parked request.
TECH = {"id": "rt.joao", "role": "technician", "council_key": "CREA-MG-700000"}
CUSTOMER = {"id": "cliente.maria", "role": "customer", "document": "52998224725"}
INSPECTOR = {"id": "vistoriador.carlos", "role": "inspector"}
LONG = "x" * 10_000  # the 10 000-character string
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


# --- the world ---------------------------------------------------------------------------


@dataclass
class World:
    client: Client
    settings: GdSettings
    store: Store
    blobs: BlobStore
    sink: SmtpSink
    exact: bool  # compare histories event by event (dev server) or without WFT events
    tmp: Path
    docs: dict[str, dict] = field(default_factory=dict)
    technician: dict[str, str] = field(default_factory=dict)
    pending_technician: str = ""
    parked: dict[str, str] = field(default_factory=dict)  # status → workflow id
    numbers: dict[str, tuple[str, str]] = field(default_factory=dict)  # workflow id → (NS, protocol)

    def good_input(self, **overrides: Any) -> dict[str, Any]:
        raw = request_input(f"bad-{uuid.uuid4().hex[:10]}", documents=[self.docs["commercial_id"]])
        raw["technician"] = dict(self.technician)
        raw.update(overrides)
        return raw

    def snapshot(self) -> dict[str, Any]:
        """Everything a refusal must not touch."""
        with self.store.session(write=False) as s:
            counts = {
                t.__tablename__: s.exec(select(func.count()).select_from(t)).one()  # type: ignore[attr-defined]
                for t in TABLES
            }
            requests = sorted(
                (r.workflow_id, r.status, r.updated_at, r.service_note, r.cycle)
                for r in s.exec(select(RequestRecord)).all())
            events = sorted((e.workflow_id, e.event_key) for e in s.exec(select(EventRecord)).all())
            technicians = sorted((t.key, t.status, t.updated_at) for t in s.exec(select(TechnicianRecord)).all())
        blobs = sorted(str(p) for p in Path(self.settings.blob_dir).rglob("*") if p.is_file())
        return {"counts": counts, "requests": requests, "events": events,
                "technicians": technicians, "blobs": blobs, "mails": len(self.sink.messages)}


async def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _update(client: Client, workflow_id: str, name: str, args: Any, result_type=AccessStatus):
    """Run the update (it answers an ack), then return the status."""
    handle = client.get_workflow_handle(workflow_id)
    await handle.execute_update(name, args, result_type=UpdateAck)
    return await handle.query("status", result_type=result_type)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(env, tmp_path_factory):
    from worker import build_dependencies, build_worker

    tmp = tmp_path_factory.mktemp("bad-input")
    sink = SmtpSink().start()
    settings = GdSettings(
        database_url=f"sqlite:///{tmp / 'gd.db'}", blob_dir=tmp / "blobs", mail_dir=tmp / "mail",
        smtp_host="127.0.0.1", smtp_port=sink.port, task_queue=f"gd-bad-{uuid.uuid4().hex[:8]}",
    )
    deps = build_dependencies(settings)
    from activities.installations import load_demo

    load_demo(deps.store)  # the customer base the requests name (GD_INSTALLATIONS_CHECK)
    w = World(client=env.client, settings=settings, store=deps.store, blobs=deps.blobs, sink=sink,
              exact=not env.supports_time_skipping, tmp=tmp)
    client = env.client
    try:
        async with build_worker(client, settings, deps=deps):
            # Documents, uploaded the way the CLI does.
            for kind in ("commercial_id", "parecer", "correction", *APR_KINDS):
                content = make_pdf(kind)
                w.docs[kind] = upload(w.store, w.blobs, content, kind=kind,
                                      filename=f"{kind}.pdf").model_dump(mode="json")
            # One approved RT, one waiting for review.
            techs = []
            for n in range(2):
                raw = {"name": f"Responsável {n}", "cpf": format_cpf(make_cpf(123456780 + n)),
                       "email": f"rt{n}@engenharia.example.com.br", "phone": "(31) 98765-4321",
                       "council": "CREA", "uf": "MG", "registration": str(700000 + n)}
                wf = technician_id("CREA", "MG", raw["registration"])
                await client.start_workflow("TechnicianRegistration", raw, id=wf,
                                            task_queue=settings.task_queue)
                await _settle_technician(client, wf)
                techs.append((raw, wf))
            raw, wf = techs[0]
            await _update(client, wf, "approve", {"actor": ANALYST}, TechnicianStatus)
            key = f"CREA-MG-{raw['registration']}"
            await _wait(lambda: w.store.technician_status(key) == "APPROVED", "RT approved")
            w.technician = {"council": "CREA", "uf": "MG", "registration": raw["registration"]}
            w.pending_technician = techs[1][1]

            async def park(steps: list[str]) -> str:
                raw = w.good_input()
                wf = access_request_id(raw["request_id"])
                handle = await client.start_workflow("AccessRequest", raw, id=wf,
                                                     task_queue=settings.task_queue,
                                                     result_type=AccessStatus)
                st = await settle(handle, lambda s: s.status != "RECEIVED")
                w.numbers[wf] = (st.service_note, st.protocol)
                for step in steps:
                    args = {
                        "register_apr": {"actor": TECH, "service_note": st.service_note,
                                         "protocol": st.protocol,
                                         "documents": [w.docs[k] for k in APR_KINDS]},
                        "suspend": {"actor": ANALYST, "pendencies": [{"code": "DOC-ART-AUSENTE"}]},
                        "approve": {"actor": ANALYST, "parecer": w.docs["parecer"]},
                        "request_inspection": {"actor": CUSTOMER},
                    }[step]
                    st = await _update(client, wf, step, args)
                await quiet(handle)
                return wf

            w.parked = {
                "AWAITING_APR": await park([]),
                "UNDER_ANALYSIS": await park(["register_apr"]),
                "SUSPENDED": await park(["register_apr", "suspend"]),
                "APPROVED": await park(["register_apr", "approve"]),
                "INSPECTION_REQUESTED": await park(["register_apr", "approve", "request_inspection"]),
            }
            refused = w.good_input(customer={**w.good_input()["customer"], "document": "123"})
            wf = access_request_id(refused["request_id"])
            handle = await client.start_workflow("AccessRequest", refused, id=wf,
                                                 task_queue=settings.task_queue,
                                                 result_type=AccessStatus)
            st = await settle(handle, lambda s: s.status != "RECEIVED")
            assert st.status == "REFUSED"
            await _wait_closed(client, wf)
            w.parked["REFUSED"] = wf
            yield w
            # Leave nothing running on the (module's) server.
            for wf in [*w.parked.values(), w.pending_technician]:
                try:
                    await client.get_workflow_handle(wf).terminate(reason="test module finished")
                except Exception:  # noqa: BLE001 - closed already
                    pass
    finally:
        sink.stop()
        deps.store.dispose()


async def _settle_technician(client: Client, workflow_id: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    handle = client.get_workflow_handle(workflow_id)
    while (await handle.query("status", result_type=TechnicianStatus)).next_actor != "analyst":
        if loop.time() > deadline:
            raise AssertionError(f"{workflow_id}: intake never answered")
        await asyncio.sleep(0.05)


async def _wait_closed(client: Client, workflow_id: str, timeout: float = 20.0) -> None:
    """Poll describe (waiting on the result would let the time-skipping server jump the
    clock past the parked requests' deadlines)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        description = await client.get_workflow_handle(workflow_id).describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{workflow_id} still running")
        await asyncio.sleep(0.05)


# --- starts ----------------------------------------------------------------------------------


def _set(raw: dict, path: str, value: Any) -> dict:
    node = raw
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


def _drop(raw: dict, path: str) -> dict:
    node = raw
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    del node[last]
    return raw


def _doc(w: World, kind: str = "commercial_id", **changes: Any) -> dict:
    return {**w.docs[kind], **changes}


# id, how to spoil a good input, (field, code) expected among the problems, pt-BR fragment
START_CASES: list[tuple[str, Callable[[World, dict], Any], str, str, str]] = [
    ("not_an_object_list", lambda w, r: [r], "", "model_type", "deve ser um objeto"),
    ("not_an_object_text", lambda w, r: '{"request_id": "r1", "kind": ', "", "model_type", "deve ser um objeto"),
    ("not_an_object_number", lambda w, r: 42, "", "model_type", "deve ser um objeto"),
    ("request_id_missing", lambda w, r: _drop(r, "request_id"), "request_id", "missing", "obrigatório"),
    ("request_id_wrong_type", lambda w, r: _set(r, "request_id", 12345), "request_id", "string_type", "deve ser texto"),
    ("request_id_10000_chars", lambda w, r: _set(r, "request_id", LONG), "request_id", "string_too_long", "no máximo 64"),
    ("request_id_unicode_hyphen", lambda w, r: _set(r, "request_id", "req\u20101"), "request_id", "string_pattern_mismatch", "formato inválido"),
    ("kind_unknown", lambda w, r: _set(r, "kind", "pedido"), "kind", "literal_error", "valor não aceito"),
    ("cpf_check_digits", lambda w, r: _set(r, "customer.document", "529.982.247-26"), "customer.document", "cpf_check_digits", "dígitos verificadores"),
    ("cpf_all_same_digits", lambda w, r: _set(r, "customer.document", "111.111.111-11"), "customer.document", "cpf_check_digits", "CPF inválido"),
    ("cpf_fullwidth_digits", lambda w, r: _set(r, "customer.document", "52998224725".translate(FULLWIDTH)), "customer.document", "non_ascii", "ASCII"),
    ("cpf_arabic_indic_digits", lambda w, r: _set(r, "customer.document", "52998224725".translate(ARABIC_INDIC)), "customer.document", "non_ascii", "ASCII"),
    ("cnpj_check_digits", lambda w, r: _set(r, "customer.document", "11.222.333/0001-82"), "customer.document", "cnpj_check_digits", "CNPJ inválido"),
    ("tax_id_wrong_length", lambda w, r: _set(r, "customer.document", "1234567"), "customer.document", "tax_id_format", "CPF (11 dígitos) ou CNPJ"),
    ("cpf_wrong_type", lambda w, r: _set(r, "customer.document", 52998224725), "customer.document", "string_type", "deve ser texto"),
    ("email_format", lambda w, r: _set(r, "customer.email", "maria@"), "customer.email", "email_format", "e-mail inválido"),
    ("email_cyrillic_lookalike", lambda w, r: _set(r, "customer.email", "m\u0430ria@example.com"), "customer.email", "non_ascii", "ASCII"),
    ("email_10000_chars", lambda w, r: _set(r, "customer.email", LONG + "@example.com"), "customer.email", "string_too_long", "no máximo 254"),
    ("name_10000_chars", lambda w, r: _set(r, "customer.name", LONG), "customer.name", "string_too_long", "no máximo 200"),
    ("name_control_chars", lambda w, r: _set(r, "customer.name", "Maria\x00Souza"), "customer.name", "name_format", "caracteres de controle"),
    ("phone_format", lambda w, r: _set(r, "customer.phone", "99"), "customer.phone", "phone_format", "DDD"),
    ("installation_9_digits", lambda w, r: _set(r, "installation_number", "300123456"), "installation_number", "installation_format", "10 dígitos"),
    ("installation_fullwidth", lambda w, r: _set(r, "installation_number", "3001234567".translate(FULLWIDTH)), "installation_number", "non_ascii", "ASCII"),
    ("power_not_a_number", lambda w, r: _set(r, "generation.installed_power_kw", "muito"), "generation.installed_power_kw", "float_parsing", "deve ser um número"),
    ("power_negative", lambda w, r: _set(r, "generation.installed_power_kw", -5), "generation.installed_power_kw", "greater_than", "deve ser >"),
    ("power_above_minigeneration", lambda w, r: _set(r, "generation.installed_power_kw", 6000), "generation", "value_error", "não é GD"),
    ("voltage_above_limit", lambda w, r: _set(r, "generation.voltage_kv", 900), "generation.voltage_kv", "less_than_equal", "≤ 800"),
    ("source_unknown", lambda w, r: _set(r, "generation.source", "nuclear"), "generation.source", "literal_error", "valor não aceito"),
    ("unknown_field", lambda w, r: _set(r, "coupon", "GRATIS"), "coupon", "extra_forbidden", "campo não reconhecido"),
    ("technician_missing", lambda w, r: _set(r, "technician", None), "technician", "value_error", "obrigatório"),
    ("technician_uf_unknown", lambda w, r: _set(r, "technician.uf", "XX"), "technician.uf", "uf_unknown", "UF desconhecida"),
    ("technician_registration_format", lambda w, r: _set(r, "technician.registration", "12"), "technician.registration", "registration_format", "3 a 12 dígitos"),
    ("technician_not_approved", lambda w, r: _set(r, "technician.registration", "999991"), "technician", "technician_not_approved", "não está aprovado"),
    ("commercial_id_missing", lambda w, r: _set(r, "documents", [_doc(w, "art_rrt")]), "documents", "value_error", "commercial_id"),
    ("document_sha256_not_hex", lambda w, r: _set(r, "documents", [_doc(w, sha256="z" * 64)]), "documents.0.sha256", "sha256_format", "64 caracteres hexadecimais"),
    ("document_not_uploaded", lambda w, r: _set(r, "documents", [_doc(w, sha256="ab" * 32)]), "documents[0]", "document_missing", "não encontrado no repositório"),
    ("document_size_mismatch", lambda w, r: _set(r, "documents", [_doc(w, size=999)]), "documents[0]", "document_size_mismatch", "difere do arquivo armazenado"),
    ("document_4mb_declared", lambda w, r: _set(r, "documents", [_doc(w, size=4 * 1024 * 1024)]), "documents.0.size", "less_than_equal", "≤ 3145728"),
    ("document_disguised_type", lambda w, r: _set(r, "documents", [_doc(w, content_type="image/png")]), "documents[0]", "document_type_mismatch", "difere do conteúdo armazenado"),
    ("document_executable_type", lambda w, r: _set(r, "documents", [_doc(w, content_type="application/x-msdownload")]), "documents.0.content_type", "tipo de conteúdo_unknown", "tipo de conteúdo desconhecido"),
    ("documents_over_50", lambda w, r: _set(r, "documents", [_doc(w)] * 51), "documents", "too_long", "no máximo 50"),
    ("policy_unknown", lambda w, r: _set(r, "policy", "rapida"), "policy", "literal_error", "valor não aceito"),
]


@pytest.mark.parametrize("case,spoil,field_name,code,fragment", START_CASES, ids=[c[0] for c in START_CASES])
async def test_start_refused(world: World, case, spoil, field_name, code, fragment):
    w = world
    raw = spoil(w, w.good_input())
    workflow_id = f"gd-request-badstart-{case}-{uuid.uuid4().hex[:6]}"
    before = w.snapshot()
    handle = await w.client.start_workflow("AccessRequest", raw, id=workflow_id,
                                           task_queue=w.settings.task_queue, result_type=AccessStatus)
    st = await settle(handle, lambda s: s.status != "RECEIVED", timeout=20)
    await _wait_closed(w.client, workflow_id)
    assert st.status == "REFUSED"
    matching = [p for p in st.refusal_reasons if p.field == field_name and p.code == code]
    assert matching, f"expected {field_name}/{code}, got {[(p.field, p.code, p.message) for p in st.refusal_reasons]}"
    assert fragment in matching[0].message, matching[0].message
    # Nothing of the process began: only the refusal is on record.
    after = w.snapshot()
    assert [(e.action, e.status) for e in w.store.events(workflow_id)] == [("refused", "REFUSED")]
    record = w.store.request_row(workflow_id)
    assert record is not None and record.status == "REFUSED" and record.service_note is None
    # ... and its one event for other systems (br.gd.request.status_changed to REFUSED).
    expected = dict(before["counts"], request_record=before["counts"]["request_record"] + 1,
                    event_record=before["counts"]["event_record"] + 1,
                    outbound_event=before["counts"]["outbound_event"] + 1)
    assert after["counts"] == expected
    assert [r for r in after["requests"] if r[0] != workflow_id] == before["requests"]
    assert after["blobs"] == before["blobs"] and after["mails"] == before["mails"]


# --- updates -------------------------------------------------------------------------------


def _apr(w: World, status: str, **changes: Any) -> dict:
    ns, protocol = w.numbers[w.parked[status]]
    args = {"actor": TECH, "service_note": ns, "protocol": protocol,
            "documents": [w.docs[k] for k in APR_KINDS]}
    args.update(changes)
    return args


def _fullwidth_ns(w: World) -> str:
    return w.numbers[w.parked["AWAITING_APR"]][0].translate(FULLWIDTH)


# id, parked status, update name, args (from the world), fragments the message must hold
UPDATE_CASES: list[tuple[str, str, str, Callable[[World], Any], tuple[str, ...]]] = [
    ("register_apr_wrong_role", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", actor=CUSTOMER), ("register_apr", "papel 'customer'")),
    ("register_apr_wrong_ns", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", service_note="7999999999"), ("service_note", "não é a NS desta solicitação")),
    ("register_apr_ns_fullwidth", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", service_note=_fullwidth_ns(w)), ("service_note", "não é a NS desta solicitação")),
    ("register_apr_ns_wrong_type", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", service_note=7000000001), ("service_note", "deve ser texto")),
    ("register_apr_wrong_protocol", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", protocol="2026999999"), ("protocol", "não é o desta solicitação")),
    ("register_apr_missing_documents", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", documents=[]), ("documents", "faltam documentos técnicos")),
    ("register_apr_actor_id_spaces", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", actor={"id": "rt joão", "role": "technician"}), ("actor.id", "formato inválido")),
    ("register_apr_role_unknown", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", actor={"id": "x", "role": "admin"}), ("actor.role", "valor não aceito")),
    ("register_apr_unknown_field", "AWAITING_APR", "register_apr", lambda w: _apr(w, "AWAITING_APR", priority="alta"), ("priority", "campo não reconhecido")),
    ("register_apr_args_not_object", "AWAITING_APR", "register_apr", lambda w: ["register"], ("objeto",)),
    ("register_apr_args_text", "AWAITING_APR", "register_apr", lambda w: '{"actor": ', ("objeto",)),
    ("register_apr_wrong_status", "UNDER_ANALYSIS", "register_apr", lambda w: _apr(w, "UNDER_ANALYSIS"), ("register_apr", "não permitido no status UNDER_ANALYSIS")),
    ("approve_wrong_status", "AWAITING_APR", "approve", lambda w: {"actor": ANALYST, "parecer": w.docs["parecer"]}, ("approve", "não permitido no status AWAITING_APR")),
    ("approve_wrong_role", "UNDER_ANALYSIS", "approve", lambda w: {"actor": TECH, "parecer": w.docs["parecer"]}, ("approve", "papel 'technician'")),
    ("approve_parecer_not_pdf", "UNDER_ANALYSIS", "approve", lambda w: {"actor": ANALYST, "parecer": {**w.docs["parecer"], "content_type": "image/png"}}, ("parecer", "PDF")),
    ("approve_parecer_wrong_kind", "UNDER_ANALYSIS", "approve", lambda w: {"actor": ANALYST, "parecer": w.docs["art_rrt"]}, ("parecer", "do tipo 'parecer'")),
    ("approve_parecer_4mb", "UNDER_ANALYSIS", "approve", lambda w: {"actor": ANALYST, "parecer": {**w.docs["parecer"], "size": 4 * 1024 * 1024}}, ("parecer.size", "≤ 3145728")),
    ("approve_notes_10001_chars", "UNDER_ANALYSIS", "approve", lambda w: {"actor": ANALYST, "parecer": w.docs["parecer"], "notes": LONG + "y"}, ("notes", "no máximo 10000")),
    ("approve_requires_works_wrong_type", "UNDER_ANALYSIS", "approve", lambda w: {"actor": ANALYST, "parecer": w.docs["parecer"], "requires_works": "talvez"}, ("requires_works", "verdadeiro ou falso")),
    ("suspend_no_pendencies", "UNDER_ANALYSIS", "suspend", lambda w: {"actor": ANALYST, "pendencies": []}, ("pendencies", "ao menos 1")),
    ("suspend_unknown_code", "UNDER_ANALYSIS", "suspend", lambda w: {"actor": ANALYST, "pendencies": [{"code": "INVENTADO"}]}, ("pendencies", "fora do catálogo")),
    ("suspend_other_without_text", "UNDER_ANALYSIS", "suspend", lambda w: {"actor": ANALYST, "pendencies": [{"code": "OTHER"}]}, ("pendencies", "exige um texto")),
    ("reprove_text_10000_chars", "UNDER_ANALYSIS", "reprove", lambda w: {"actor": ANALYST, "reasons": [{"code": "OTHER", "text": LONG}]}, ("reasons.0.text", "no máximo 2000")),
    ("declare_works_reason_10000_chars", "UNDER_ANALYSIS", "declare_works", lambda w: {"actor": ANALYST, "reason": LONG}, ("reason", "no máximo 2000")),
    ("pause_clock_wrong_status", "AWAITING_APR", "pause_clock", lambda w: {"actor": ANALYST, "reason": "aguardando"}, ("pause_clock", "não permitido no status AWAITING_APR")),
    ("resume_clock_not_paused", "UNDER_ANALYSIS", "resume_clock", lambda w: {"actor": ANALYST}, ("resume_clock", "não está suspenso")),
    ("reanalysis_wrong_status", "UNDER_ANALYSIS", "request_reanalysis", lambda w: {"actor": TECH, "reproved_service_note": w.numbers[w.parked["UNDER_ANALYSIS"]][0]}, ("request_reanalysis", "não permitido no status UNDER_ANALYSIS")),
    ("reanalysis_wrong_ns", "SUSPENDED", "request_reanalysis", lambda w: {"actor": TECH, "reproved_service_note": "7999999999"}, ("reproved_service_note", "NS reprovada desta solicitação")),
    ("reanalysis_without_corrections", "SUSPENDED", "request_reanalysis", lambda w: {"actor": TECH, "reproved_service_note": w.numbers[w.parked["SUSPENDED"]][0]}, ("request_reanalysis", "anexe antes os documentos corrigidos")),
    ("reanalysis_wrong_motive", "SUSPENDED", "request_reanalysis", lambda w: {"actor": TECH, "reproved_service_note": w.numbers[w.parked["SUSPENDED"]][0], "motive": "porque sim"}, ("motive", "Reanálise do projeto/processo elétrico")),
    ("corrections_wrong_role", "SUSPENDED", "attach_corrections", lambda w: {"actor": ANALYST, "documents": [w.docs["correction"]]}, ("attach_corrections", "papel 'analyst'")),
    ("corrections_empty", "SUSPENDED", "attach_corrections", lambda w: {"actor": TECH, "documents": []}, ("documents", "ao menos 1")),
    ("inspection_wrong_status", "UNDER_ANALYSIS", "request_inspection", lambda w: {"actor": CUSTOMER}, ("request_inspection", "não permitido no status UNDER_ANALYSIS")),
    ("inspection_document_kind_unknown", "APPROVED", "request_inspection", lambda w: {"actor": CUSTOMER, "documents": [{**w.docs["correction"], "kind": "selfie"}]}, ("documents.0.kind", "tipo de documento desconhecido")),
    ("record_inspection_wrong_status", "APPROVED", "record_inspection", lambda w: {"actor": INSPECTOR, "result": "approved"}, ("record_inspection", "não permitido no status APPROVED")),
    ("record_inspection_wrong_role", "INSPECTION_REQUESTED", "record_inspection", lambda w: {"actor": CUSTOMER, "result": "approved"}, ("record_inspection", "papel 'customer'")),
    ("record_inspection_reproved_no_findings", "INSPECTION_REQUESTED", "record_inspection", lambda w: {"actor": INSPECTOR, "result": "reproved"}, ("findings", "ao menos uma constatação")),
    ("record_inspection_result_unknown", "INSPECTION_REQUESTED", "record_inspection", lambda w: {"actor": INSPECTOR, "result": "ok"}, ("result", "valor não aceito")),
    ("withdraw_wrong_role", "UNDER_ANALYSIS", "withdraw", lambda w: {"actor": ANALYST, "reason": "desisti"}, ("withdraw", "papel 'analyst'")),
    ("withdraw_empty_reason", "UNDER_ANALYSIS", "withdraw", lambda w: {"actor": CUSTOMER, "reason": ""}, ("reason", "ao menos 1")),
]


async def _refused_update(w: World, workflow_id: str, name: str, args: Any, result_type=AccessStatus) -> str:
    handle = w.client.get_workflow_handle(workflow_id)
    before_history = await history_facts(handle, exact=w.exact)
    before = w.snapshot()
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(name, args, result_type=UpdateAck)
    assert await history_facts(handle, exact=w.exact) == before_history, f"{name} refusal wrote history"
    assert w.snapshot() == before, f"{name} refusal changed the store"
    cause = caught.value.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


@pytest.mark.parametrize("case,status,name,make_args,fragments", UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES])
async def test_update_refused(world: World, case, status, name, make_args, fragments):
    message = await _refused_update(world, world.parked[status], name, make_args(world))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


async def test_update_on_a_refused_request(world: World):
    """The request was refused at intake (its run is over): the client says so."""
    from gd_client import GdClient, GdRefused

    w = world
    workflow_id = w.parked["REFUSED"]
    handle = w.client.get_workflow_handle(workflow_id)
    before_history = await history_facts(handle, exact=w.exact)
    before = w.snapshot()
    with pytest.raises(GdRefused) as caught:
        await GdClient(w.client, w.settings).withdraw(workflow_id, CUSTOMER, "teste")
    assert "encerrado" in caught.value.message and "REFUSED" in caught.value.message, caught.value.message
    assert await history_facts(handle, exact=w.exact) == before_history
    assert w.snapshot() == before


TECHNICIAN_CASES = [
    ("technician_approve_wrong_role", "approve", {"actor": CUSTOMER}, ("approve", "papel 'customer'")),
    ("technician_reject_unknown_code", "reject", {"actor": ANALYST, "reasons": [{"code": "NAO-GOSTEI"}]}, ("reasons", "fora do catálogo")),
    ("technician_reject_no_reasons", "reject", {"actor": ANALYST, "reasons": []}, ("reasons", "ao menos 1")),
]


@pytest.mark.parametrize("case,name,args,fragments", TECHNICIAN_CASES, ids=[c[0] for c in TECHNICIAN_CASES])
async def test_technician_update_refused(world: World, case, name, args, fragments):
    message = await _refused_update(world, world.pending_technician, name, args, TechnicianStatus)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- uploads -----------------------------------------------------------------------------------


def _pdf(size: int) -> bytes:
    return make_pdf("upload", size)


UPLOAD_CASES: list[tuple[str, bytes, str, str, str]] = [
    ("pdf_4mb", _pdf(4 * 1024 * 1024), "parecer.pdf", "parecer", "excede o limite de 3 MB"),
    ("pdf_one_byte_over", _pdf(MAX_DOCUMENT_BYTES + 1), "projeto.pdf", "electrical_project", "excede o limite de 3 MB"),
    ("elf_named_pdf", b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "projeto.pdf", "electrical_project", "executável renomeado"),
    ("windows_exe_named_pdf", b"MZ\x90\x00" + b"\x00" * 200, "art.pdf", "art_rrt", "executável renomeado"),
    ("zip_named_pdf", b"PK\x03\x04" + b"\x00" * 200, "memorial.pdf", "descriptive_memorial", "executável renomeado"),
    ("script_named_pdf", b"#!/bin/sh\nrm -rf /\n", "unifilar.pdf", "single_line_diagram", "executável renomeado"),
    ("text_named_pdf", b"isto nao e um pdf\n" * 20, "id.pdf", "commercial_id", "conteúdo não é PDF"),
    ("html_named_png", b"<html><script>alert(1)</script></html>", "foto.png", "other", "conteúdo não é PDF"),
    ("pdf_named_exe", _pdf(2048), "projeto.exe", "electrical_project", "executável renomeado"),
    ("empty_file", b"", "vazio.pdf", "other", "arquivo vazio"),
    ("kind_unknown", _pdf(2048), "doc.pdf", "selfie", "tipo de documento 'selfie' desconhecido"),
    ("filename_control_chars", _pdf(2048), "pro\x07jeto.pdf", "other", "caracteres de controle"),
    ("filename_300_chars", _pdf(2048), "p" * 296 + ".pdf", "other", "mais de 255 caracteres"),
]


@pytest.mark.parametrize("case,content,filename,kind,fragment", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_upload_refused(world: World, tmp_path, case, content, filename, kind, fragment):
    w = world
    safe_name = filename if "\x07" not in filename and len(filename) < 200 else "upload.bin"
    path = tmp_path / safe_name
    path.write_bytes(content)
    before = w.snapshot()
    with pytest.raises(UploadRefused) as caught:
        upload(w.store, w.blobs, path, kind=kind, filename=filename)
    assert fragment in str(caught.value), str(caught.value)
    assert w.snapshot() == before


# --- the same request_id with another body ----------------------------------------------------


async def test_duplicate_request_id_with_a_different_body_is_refused(world: World):
    """The request_id is the idempotency key: resending the same body finds the same
    request (tests/test_access_request.py), a different body under it must be refused."""
    from gd_client import GdClient, GdRefused

    w = world
    gd = GdClient(w.client, w.settings)
    raw = w.good_input()
    first = await gd.start_request(raw)
    assert first.status == "AWAITING_APR"
    workflow_id = access_request_id(raw["request_id"])
    await quiet(w.client.get_workflow_handle(workflow_id, result_type=AccessStatus))
    again = await gd.start_request(raw)  # same body: the same request, no new NS
    assert again.service_note == first.service_note
    other = json.loads(json.dumps(raw))
    other["generation"]["installed_power_kw"] = 50.0
    other["customer"]["email"] = "outra.pessoa@example.com"
    handle = w.client.get_workflow_handle(workflow_id)
    before_history = await history_facts(handle, exact=w.exact)
    before = w.snapshot()
    with pytest.raises(GdRefused) as caught:
        await gd.start_request(other)
    assert "request_id" in caught.value.message, caught.value.message
    assert await history_facts(handle, exact=w.exact) == before_history
    assert w.snapshot() == before
    await handle.terminate(reason="test finished")


# --- the gd CLI ----------------------------------------------------------------------------------


GD = Path(sys.executable).parent / "gd"


def _gd(w: World, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update({
        "GD_TEMPORAL_ADDRESS": w.client.service_client.config.target_host,
        "GD_NAMESPACE": w.client.namespace,
        "GD_TASK_QUEUE": w.settings.task_queue,
        "GD_DATABASE_URL": w.settings.database_url,
        "GD_BLOB_DIR": str(w.settings.blob_dir),
        "GD_SMTP_PORT": str(w.settings.smtp_port),
        "COLUMNS": "200",
    })
    return subprocess.run([str(GD), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def _new_request(w: World, **overrides: str) -> tuple[list[str], str]:
    flags = {
        "--request-id": f"cli-{uuid.uuid4().hex[:8]}", "--name": "Maria Souza",
        "--document": "529.982.247-25", "--email": "maria@example.com.br",
        "--installation": "3001234567",
        "--technician": "CREA-MG-{registration}".format(**w.technician), "--power": "8.5",
        "--doc": f"commercial_id={w.docs['commercial_id']['sha256']}",
    }
    flags.update(overrides)
    return ["request", "new", *[part for item in flags.items() for part in item]], flags["--request-id"]


def _write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _apr_register(w: World, ns: str) -> list[str]:
    docs = [x for k in APR_KINDS for x in ("--doc", f"{k}={w.docs[k]['sha256']}")]
    return ["--council-key", TECH["council_key"], "apr", "register", w.parked["AWAITING_APR"], "--as", "rt.joao", "--ns", ns,
            "--protocol", w.numbers[w.parked["AWAITING_APR"]][1], *docs]


# id, argv (and the request id it would open, if any), fragments of the one stderr line
CLI_CASES: list[tuple[str, Callable[[World, Path], tuple[list[str], str | None]], tuple[str, ...]]] = [
    ("cli_malformed_json_file", lambda w, d: (["request", "new", "--file", str(_write(d, "bad.json", '{"request_id": "cli-json-1", "kind": '))], "cli-json-1"), ("bad.json", "JSON inválido", "linha 1")),
    ("cli_json_file_not_an_object", lambda w, d: (["request", "new", "--file", str(_write(d, "list.json", "[1, 2]"))], None), ("list.json", "objeto JSON")),
    ("cli_invalid_cpf", lambda w, d: _new_request(w, **{"--document": "529.982.247-26"}), ("customer.document", "dígitos verificadores")),
    ("cli_email_lookalike", lambda w, d: _new_request(w, **{"--email": "m\u0430ria@example.com"}), ("customer.email", "ASCII")),
    ("cli_power_not_a_number", lambda w, d: _new_request(w, **{"--power": "muito"}), ("--power",)),
    ("cli_request_id_unicode_hyphen", lambda w, d: _new_request(w, **{"--request-id": "cli\u20101"}), ("request_id", "formato inválido")),
    ("cli_upload_disguised_executable", lambda w, d: (["docs", "upload", str(_write(d, "projeto.pdf", b"\x7fELF" + b"\x00" * 64)), "--kind", "electrical_project"], None), ("executável renomeado",)),
    ("cli_upload_4mb", lambda w, d: (["docs", "upload", str(_write(d, "grande.pdf", _pdf(4 * 1024 * 1024))), "--kind", "parecer"], None), ("excede o limite de 3 MB",)),
    ("cli_apr_wrong_ns", lambda w, d: (_apr_register(w, "7999999999"), None), ("service_note", "7999999999")),
    ("cli_withdraw_wrong_role", lambda w, d: (["request", "withdraw", w.parked["UNDER_ANALYSIS"], "--reason", "desisti", "--as", "ana.analista", "--role", "analyst"], None), ("papel", "analyst")),
]


@pytest.mark.parametrize("case,argv,fragments", CLI_CASES, ids=[c[0] for c in CLI_CASES])
async def test_cli_refused(world: World, tmp_path, case, argv, fragments):
    from temporalio.service import RPCError, RPCStatusCode

    w = world
    args, request_id = argv(w, tmp_path)
    parked = list(w.parked.values())
    histories = [await history_facts(w.client.get_workflow_handle(wf), exact=w.exact) for wf in parked]
    before = w.snapshot()
    done = await asyncio.to_thread(_gd, w, *args, cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-500:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert w.snapshot() == before
    assert [await history_facts(w.client.get_workflow_handle(wf), exact=w.exact) for wf in parked] == histories
    if request_id is not None:  # refused before anything reached the server
        with pytest.raises(RPCError) as missing:
            await w.client.get_workflow_handle(access_request_id(request_id)).describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND


