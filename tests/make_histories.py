"""Regenerate the golden histories of ``tests/histories/`` (replayed by tests/test_replay.py).

    python -m tests.make_histories            # every scenario
    python -m tests.make_histories access-inquiry-answered   # some, by name

Each scenario drives the real workflows on the time-skipping test server (binary from the
virtual environment; nothing is downloaded) with the fake activities of
tests/access_helpers.py, then writes every workflow it touched with ``audit.export``
(format ``gd-history-export/1``: one JSON per workflow, every run of its chain). Across the
set every status of every workflow type is reached at least once; test_replay.py checks
that coverage from the files themselves.

Files listed in ``FROZEN`` were made by older code and are never rewritten: they prove
that today's code still replays what older code wrote (see docs/PATCHING.md).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from audit.export import fetch_chain
from models.activities import (
    CredentialsRequest,
    EmailChangeFacts,
    EmailCodeCheck,
    EmailCodeRequest,
    EmailResult,
)
from models.ids import beneficiaries_id, email_change_id, technician_id
from tests.access_helpers import (
    ANALYST,
    CPF,
    CUSTOMER,
    INSPECTOR,
    TECH,
    FakeActivities,
    doc,
    inquiry_input,
    parecer_doc,
    quiet,
    register_apr,
    request_input,
    start,
    status,
    update,
)
from tests.servers import SERVER_STARTUP

HISTORIES = Path(__file__).resolve().parent / "histories"
# Written before a patch (docs/PATCHING.md); kept as is. "-prepatch": before
# "approve-records-works-v1"; "-pre-deadline-watch": before "deadline-watch-v1"
# (access) or "technician-deadline-watch-v1".
FROZEN = {
    "access-connected-works-prepatch",
    "access-connected-works-pre-deadline-watch",
    "access-continue-as-new-pre-deadline-watch",
    "access-inquiry-answered-pre-deadline-watch",
    "access-lapse-cycles-cancelled-pre-deadline-watch",
    "access-refused-pre-deadline-watch",
    "technician-approved-late-pre-deadline-watch",
    "technician-refused-pre-deadline-watch",
    "technician-rejected-pre-deadline-watch",
    # Recorded before the validators checked who the actor is (party-check-v1,
    # technician-party-check-v1, beneficiaries-party-check-v1): no marker in them.
    "access-lapse-cycles-cancelled-pre-party-check",
    "technician-approved-late-pre-party-check",
    "beneficiaries-rejected-pre-party-check",
}
SUPERVISOR = {"id": "sofia.supervisora", "role": "supervisor"}
SYSTEM = {"id": "gd-orchestrator", "role": "system"}
CREDENTIAL_TEMPLATES = (
    "technician_agv_credentials",
    "technician_apr_approved",
    "technician_apr_set_password",
)
ALLOCATION = {
    "mode": "percent",
    "units": [
        {"installation_number": "3001234567", "holder_document": CPF, "percent": 60},
        {"installation_number": "3009876543", "holder_document": CPF, "percent": 40},
    ],
}


class GoldenFakes(FakeActivities):
    """The access fakes plus the RT credentials activity (no secret is ever made here)."""

    @activity.defn(name="send_technician_credentials")
    def send_technician_credentials(self, req: CredentialsRequest) -> list[EmailResult]:
        return [
            EmailResult(key=f"{req.key}:{template}", template=template, status="sent")
            for template in CREDENTIAL_TEMPLATES
        ]

    # The RT's e-mail corrected (workflows/email_change.py): the RT is in review with the
    # address of technician_raw; the code is always GOLDEN_CODE.
    @activity.defn(name="technician_email_facts")
    def technician_email_facts(self, technician: str) -> EmailChangeFacts:
        return EmailChangeFacts(status="PENDING_REVIEW", email="joao.pereira@example.com.br")

    @activity.defn(name="send_email_change_code")
    def send_email_change_code(self, req: EmailCodeRequest) -> EmailResult:
        return EmailResult(key=req.key, template="technician_email_change_code", status="sent")

    @activity.defn(name="confirm_email_change")
    def confirm_email_change(self, check: EmailCodeCheck) -> bool:
        return check.code == GOLDEN_CODE

    def all(self) -> list:
        return [*super().all(), self.send_technician_credentials, self.technician_email_facts,
                self.send_email_change_code, self.confirm_email_change]


GOLDEN_CODE = "482913"


def golden_worker(client: Client, task_queue: str, fakes: GoldenFakes | None = None) -> Worker:
    from workflows.registry import ALL_WORKFLOWS

    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(ALL_WORKFLOWS),
        activities=(fakes or GoldenFakes()).all(),
        activity_executor=ThreadPoolExecutor(max_workers=4),
    )


# --- helpers --------------------------------------------------------------------------


async def settled(handle: WorkflowHandle) -> None:
    """Wait until the history stops growing (queued activities done): the test server
    does not skip time while an activity task is outstanding."""
    last = -1
    for _ in range(400):
        length = len((await handle.fetch_history()).events)
        if length == last:
            return
        last = length
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id}: history never settled")


async def first_task_done(handle: WorkflowHandle) -> None:
    from temporalio.api.enums.v1 import EventType

    for _ in range(200):
        events = (await handle.fetch_history()).events
        if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id}: the new run never completed a workflow task")


async def wait_for(handle: WorkflowHandle, predicate: Callable[[dict], bool], timeout: float = 10) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await handle.query("status")
        if predicate(current):
            return current
        if loop.time() > deadline:
            raise RuntimeError(f"{handle.id}: status never reached the condition: {current}")
        await asyncio.sleep(0.05)


async def sleep_past_due(env: WorkflowEnvironment, handle: WorkflowHandle, extra=timedelta(minutes=1)):
    st = await quiet(handle)
    await env.sleep(st.due_at - (await env.get_current_time()) + extra)


def technician_raw(registration: str, **overrides: Any) -> dict[str, Any]:
    raw = {
        "name": "João Pereira da Silva",
        "cpf": "529.982.247-25",
        "email": "joao.pereira@example.com.br",
        "phone": "(31) 98765-4321",
        "council": "CREA",
        "uf": "MG",
        "registration": registration,
        "title": "Engenheiro Eletricista",
    }
    raw.update(overrides)
    return raw


async def start_technician(client: Client, raw: dict, task_queue: str) -> WorkflowHandle:
    handle = await client.start_workflow(
        "TechnicianRegistration",
        raw,
        id=technician_id(raw["council"], raw["uf"], raw["registration"]),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    # Intake done: refused, or in review with its first e-mail out (RECEIVED while intake runs).
    await wait_for(handle, lambda s: s["status"] not in ("RECEIVED", "PENDING_REVIEW") or s["notifications"])
    return handle


def beneficiaries_raw(request_id: str, **overrides: Any) -> dict[str, Any]:
    raw = {
        "request_id": request_id,
        "generator_installation": "3001234567",
        "holder_document": CPF,
        "modality": "local",
        "actor": CUSTOMER,
        "allocation": ALLOCATION,
        "notify_email": "maria.souza@example.com.br",
    }
    raw.update(overrides)
    return raw


async def start_beneficiaries(client: Client, raw: dict, task_queue: str) -> WorkflowHandle:
    handle = await client.start_workflow(
        "BeneficiaryRegistration",
        raw,
        id=beneficiaries_id(raw["request_id"]),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await wait_for(handle, lambda s: s["status"] not in ("RECEIVED", "PENDING_REVIEW") or s["next_actor"] == "analyst")
    return handle


# --- scenarios ------------------------------------------------------------------------
# Each returns {file name: workflow id}. ``tag`` keeps ids unique when tests reuse them on
# a shared server; make_histories passes "golden".

Scenario = Callable[[Client, WorkflowEnvironment, str, str], Awaitable[dict[str, str]]]


async def access_refused(client, env, task_queue, tag):
    raw = request_input(f"{tag}-refused", power_kw=4000)
    raw["customer"]["document"] = "123.456.789-00"
    raw["documents"] = []
    handle = await start(client, raw, task_queue)
    await handle.result()
    return {"access-refused": handle.id}


async def access_inquiry_answered(client, env, task_queue, tag):
    """Consulta: clock paused and resumed, answer deadline breached, then answered."""
    handle = await start(client, inquiry_input(f"{tag}-inquiry"), task_queue)
    await update(handle, "pause_clock", {"actor": ANALYST, "reason": "aguardando dados do alimentador"})
    await quiet(handle)
    await env.sleep(timedelta(days=2))
    await update(handle, "resume_clock", {"actor": ANALYST})
    await sleep_past_due(env, handle)
    await quiet(handle)
    await update(handle, "answer_inquiry", {
        "actor": SUPERVISOR, "answer": "Há capacidade no alimentador para 8,5 kW.",
        "documents": [doc("other", b"%PDF-1.4 resposta")]})
    await handle.result()
    return {"access-inquiry-answered": handle.id}


async def access_withdrawn(client, env, task_queue, tag):
    handle = await start(client, request_input(f"{tag}-withdrawn"), task_queue)
    await update(handle, "withdraw", {"actor": CUSTOMER, "reason": "desisti do projeto"})
    await handle.result()
    return {"access-withdrawn": handle.id}


async def access_connected_works(client, env, task_queue, tag):
    """Approved with works, vistoria reproved then approved, connected; the beneficiary
    registration it starts is confirmed."""
    handle = await start(client, request_input(f"{tag}-works", beneficiaries=ALLOCATION), task_queue)
    await register_apr(handle, await status(handle))
    await update(handle, "approve", {
        "actor": ANALYST, "parecer": parecer_doc(), "requires_works": True,
        "notes": "Necessária troca do transformador <TR-123> & religador"})
    await update(handle, "request_inspection", {"actor": CUSTOMER})
    await update(handle, "record_inspection", {
        "actor": INSPECTOR, "result": "reproved", "findings": ["Aterramento fora do padrão"],
        "report": doc("inspection_report")})
    await update(handle, "request_inspection", {"actor": CUSTOMER, "documents": [doc("correction")]})
    await update(handle, "record_inspection", {"actor": INSPECTOR, "result": "approved"})
    final = await handle.result()
    child = client.get_workflow_handle(final.beneficiaries_workflow_id)
    await wait_for(child, lambda s: s["next_actor"] == "analyst")
    await child.execute_update("confirm", {"actor": ANALYST})
    await child.result()
    return {"access-connected-works": handle.id, "beneficiaries-registered": child.id}


async def access_lapse_cycles_cancelled(client, env, task_queue, tag):
    """APR window lapses; late APR registration and reanalysis; works declared; clock
    paused; parecer breached (reminder, escalation); suspended, corrected, reanalysed;
    reproved; pendencies never answered: cancelled by decurso de prazo."""
    handle = await start(client, request_input(f"{tag}-lapse"), task_queue)
    first = await status(handle)
    await sleep_past_due(env, handle)
    st = await quiet(handle)
    assert st.status == "LAPSED", st.status
    st = await register_apr(handle, st)
    st = await update(handle, "request_reanalysis", {"actor": TECH, "reproved_service_note": first.service_note})
    await update(handle, "declare_works", {"actor": ANALYST, "reason": "reforço de rede no alimentador"})
    await update(handle, "pause_clock", {"actor": ANALYST, "reason": "aguardando ONS"})
    await quiet(handle)
    await env.sleep(timedelta(days=1))
    await update(handle, "resume_clock", {"actor": ANALYST})
    await sleep_past_due(env, handle)
    st = await quiet(handle)
    assert st.sla_breaches, "parecer deadline should have been breached"
    st = await update(handle, "suspend", {"actor": ANALYST, "pendencies": [
        {"code": "DOC-ART-AUSENTE"}, {"code": "OTHER", "text": "Falta foto do QGBT"}]})
    await update(handle, "attach_corrections", {"actor": TECH, "documents": [doc("art_rrt", b"%PDF-1.4 ART v2")]})
    st = await update(handle, "request_reanalysis", {"actor": TECH, "reproved_service_note": st.service_note})
    await update(handle, "reprove", {"actor": ANALYST, "reasons": [{"code": "DOC-UNIFILAR-DIVERGENTE"}]})
    await sleep_past_due(env, handle)
    final = await handle.result()
    assert final.status == "CANCELLED", final.status
    return {"access-lapse-cycles-cancelled": handle.id}


async def access_continue_as_new(client, env, task_queue, tag):
    """Enough reanalysis cycles to continue as new; approved in the second run."""
    from workflows.access_request import CYCLES_PER_RUN

    handle = await start(client, request_input(f"{tag}-chain"), task_queue)
    st = await register_apr(handle, await status(handle))
    for _ in range(CYCLES_PER_RUN):
        st = await update(handle, "suspend", {"actor": ANALYST, "pendencies": [{"code": "DOC-ILEGIVEL"}]})
        await update(handle, "attach_corrections", {"actor": TECH, "documents": [doc("correction")]})
        st = await update(handle, "request_reanalysis", {"actor": TECH, "reproved_service_note": st.service_note})
    latest = client.get_workflow_handle(handle.id)
    first_run = handle.result_run_id
    for _ in range(200):
        if (await latest.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("no continue-as-new happened")
    # Updates reaching the new run before its first workflow task are refused (the
    # carried state is only set in run()): wait for that task (see the report).
    await first_task_done(latest)
    await update(latest, "approve", {"actor": ANALYST, "parecer": parecer_doc()})
    await update(latest, "withdraw", {"actor": CUSTOMER, "reason": "projeto adiado"})
    await latest.result()
    return {"access-continue-as-new": handle.id}


async def technician_approved_late(client, env, task_queue, tag):
    """Reminder, then the 3-business-day review breached and escalated, then approved."""
    handle = await start_technician(client, technician_raw(_registration(tag, 1)), task_queue)
    await settled(handle)
    due = (await handle.query("status"))["due_at"]
    from datetime import datetime

    await env.sleep(datetime.fromisoformat(due) - await env.get_current_time() + timedelta(minutes=1))
    await wait_for(handle, lambda s: s["sla_breaches"])
    await settled(handle)
    await handle.execute_update("approve", {"actor": SUPERVISOR})
    await handle.result()
    return {"technician-approved-late": handle.id}


async def technician_email_changed(client, env, task_queue, tag):
    """In review, an analyst asks for a new e-mail, a wrong code, then the right one (the
    registration learns the address by signal), then approval."""
    raw = technician_raw(_registration(tag, 4))
    handle = await start_technician(client, raw, task_queue)
    await settled(handle)
    key = f"CREA-MG-{raw['registration']}"
    change = await client.start_workflow(
        "TechnicianEmailChange", key, id=email_change_id(key), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    await change.execute_update("change_email", {"actor": ANALYST, "email": "joao.novo@exemplo.org"})
    await settled(change)
    try:
        await change.execute_update("confirm_email", {"actor": ANALYST, "code": "000000"})
    except Exception:  # noqa: BLE001 - the wrong code is refused, as it should
        pass
    await change.execute_update("confirm_email", {"actor": ANALYST, "code": GOLDEN_CODE})
    await change.result()
    await settled(handle)
    await handle.execute_update("approve", {"actor": ANALYST})
    await handle.result()
    return {"technician-email-changed": handle.id, "technician-email-change-confirmed": change.id}


async def technician_rejected(client, env, task_queue, tag):
    handle = await start_technician(client, technician_raw(_registration(tag, 2)), task_queue)
    await handle.execute_update("reject", {"actor": ANALYST, "reasons": [
        {"code": "RT-REGISTRO-IRREGULAR"}, {"code": "OTHER", "text": "Registro suspenso no CREA-MG"}]})
    await handle.result()
    return {"technician-rejected": handle.id}


async def technician_refused(client, env, task_queue, tag):
    raw = technician_raw(_registration(tag, 3), cpf="111.111.111-11", email="sem-arroba")
    handle = await start_technician(client, raw, task_queue)
    await handle.result()
    return {"technician-refused": handle.id}


async def beneficiaries_rejected(client, env, task_queue, tag):
    handle = await start_beneficiaries(client, beneficiaries_raw(f"{tag}-benef-rejected"), task_queue)
    await handle.execute_update("reject", {"actor": ANALYST, "reasons": [{"code": "UC-RECEBEDORA-OUTRA-AREA"}]})
    await handle.result()
    return {"beneficiaries-rejected": handle.id}


async def beneficiaries_refused(client, env, task_queue, tag):
    bad = {"mode": "percent", "units": [
        {"installation_number": "3001234567", "holder_document": CPF, "percent": 60},
        {"installation_number": "3009876543", "holder_document": CPF, "percent": 30}]}
    raw = beneficiaries_raw(f"{tag}-benef-refused", allocation=bad)
    handle = await start_beneficiaries(client, raw, task_queue)
    await handle.result()
    return {"beneficiaries-refused": handle.id}


def _registration(tag: str, n: int) -> str:
    # Registration numbers are digits; the tag makes them unique on a shared server.
    return str(100000 + (uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{n}").int % 900000))


SCENARIOS: dict[str, Scenario] = {
    "access-refused": access_refused,
    "access-inquiry-answered": access_inquiry_answered,
    "access-withdrawn": access_withdrawn,
    "access-connected-works": access_connected_works,
    "access-lapse-cycles-cancelled": access_lapse_cycles_cancelled,
    "access-continue-as-new": access_continue_as_new,
    "technician-approved-late": technician_approved_late,
    "technician-rejected": technician_rejected,
    "technician-refused": technician_refused,
    "technician-email-changed": technician_email_changed,
    "beneficiaries-rejected": beneficiaries_rejected,
    "beneficiaries-refused": beneficiaries_refused,
}


async def start_environment() -> WorkflowEnvironment:
    from models import search_attributes as sa
    from tests.conftest import _binary
    from worker import data_converter

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_startup_timeout=SERVER_STARTUP,
        data_converter=data_converter(),
        test_server_existing_path=_binary("temporal-test-server"),
    )
    await sa.register(env.client, "default")
    return env


async def generate(names: list[str], out: Path = HISTORIES, tag: str = "golden") -> list[Path]:
    written: list[Path] = []
    for name in names:
        # One server per scenario: after a child workflow the test server stops skipping
        # time for good, which would hang the next scenario's sleep.
        async with await start_environment() as env:
            task_queue = f"gd-golden-{uuid.uuid4().hex[:8]}"
            async with golden_worker(env.client, task_queue):
                produced = await SCENARIOS[name](env.client, env, task_queue, tag)
                for file_name, workflow_id in produced.items():
                    if file_name in FROZEN:
                        continue
                    export = await fetch_chain(env.client, workflow_id)
                    path = out / f"{file_name}.json.gz"
                    export.write(path)
                    written.append(path)
                    print(f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}: "
                          f"{len(export.runs)} execução(ões), {export.event_count} eventos, "
                          f"{path.stat().st_size // 1024} KB")
    return written


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"cenário(s) desconhecido(s): {', '.join(unknown)}; conhecidos: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    asyncio.run(generate(names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
