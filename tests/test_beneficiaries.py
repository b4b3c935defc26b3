"""BeneficiaryRegistration workflow logic on a real Temporal server, with fake activities
registered under the real names: every allocation rule, confirmation and rejection (the
fakes, the worker and the calls on a registration are tests/registration_fixtures.py)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio import activity
from temporalio.client import Client

from models.activities import IntakeCheck, IntakeResult, Transition
from models.beneficiaries import BeneficiaryInput, BeneficiaryStatus
from models.common import Problem, parse_or_problems
from models.ids import beneficiaries_id
from tests.registration_fixtures import RecordingFakes, Registration, worker  # noqa: F401 (fixture)
from workflows.beneficiaries import next_billing_cycle

CPF = "529.982.247-25"
OTHER_CPF = "111.444.777-35"
CNPJ = "11.222.333/0001-81"
CNPJ_OTHER_BRANCH = "11.222.333/0002-62"  # same root (11222333)
CNPJ_OTHER_ROOT = "99.888.777/0001-00"
GENERATOR = "3001234567"
ANALYST = {"id": "ana.analista", "role": "analyst"}
CUSTOMER = {"id": "cliente.maria", "role": "customer"}
SYSTEM = {"id": "gd-orchestrator", "role": "system"}
NOT_CONNECTED_PREFIX = "naoconectada-"


def unit(installation: str, *, percent: Any = None, priority: int | None = None, holder: str = CPF) -> dict:
    return {
        "installation_number": installation,
        "holder_document": holder,
        "percent": percent,
        "priority": priority,
    }


def beneficiary_input(
    units: list[dict] | None = None,
    *,
    mode: str = "percent",
    modality: str = "local",
    holder: str = CPF,
    request_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    raw = {
        "request_id": request_id or f"req-{uuid.uuid4().hex[:12]}",
        "generator_installation": GENERATOR,
        "holder_document": holder,
        "modality": modality,
        "actor": SYSTEM,
        "allocation": {
            "mode": mode,
            "units": units or [unit("3001234568", percent=60), unit("3001234569", percent=40)],
        },
        "notify_email": "maria.souza@example.com.br",
    }
    raw.update(overrides)
    return raw


class Fakes(RecordingFakes):
    """The shared fakes; intake answers like records.validate_intake: the model's rules,
    then the generating request must be CONNECTED in the store."""

    @activity.defn(name="validate_intake")
    def validate_intake(self, check: IntakeCheck) -> IntakeResult:
        assert check.process == "beneficiaries"
        parsed, problems = parse_or_problems(BeneficiaryInput, check.raw)
        request_id = check.raw.get("request_id", "")
        if request_id.startswith(NOT_CONNECTED_PREFIX):
            problems.append(
                Problem(
                    field="request_id",
                    code="generator_not_connected",
                    message=f"a solicitação de acesso {request_id} não tem usina conectada "
                    "(situação: UNDER_ANALYSIS); o cadastro de UC recebedora exige a "
                    "geradora conectada",
                )
            )
        if problems:
            return IntakeResult(problems=problems)
        return IntakeResult(normalized=parsed.model_dump(mode="json"))


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


BENEFICIARIES = Registration(
    "BeneficiaryRegistration", BeneficiaryStatus, lambda raw: beneficiaries_id(raw["request_id"]))
start, status, update, settle, refused = (
    BENEFICIARIES.start, BENEFICIARIES.status, BENEFICIARIES.update, BENEFICIARIES.settle,
    BENEFICIARIES.refused,
)  # fmt: skip


async def outcome(client: Client, task_queue: str, raw: dict) -> BeneficiaryStatus:
    """Start; a refused input completes at once, an accepted one waits for the analyst."""
    handle = await start(client, raw, task_queue)
    current = await settle(handle, lambda s: s.status == "REFUSED" or s.next_actor == "analyst")
    if current.status != "REFUSED":
        await handle.terminate()
    else:
        # The status is visible before the refusal is recorded: wait for the workflow's end.
        current = await handle.result()
    return current


def messages(st: BeneficiaryStatus) -> dict[str, str]:
    return {p.field: p.message for p in st.refusal_reasons}


# --- allocation rules -----------------------------------------------------------------------

UNITS3 = ("3001234568", "3001234569", "3001234570")

REFUSALS = {
    "percent sum 99.99": (
        dict(units=[unit(n, percent=33.33) for n in UNITS3]),
        "allocation.units",
        "os percentuais somam 99.99, devem somar exatamente 100",
    ),
    "percent sum 100.01": (
        dict(units=[unit(UNITS3[0], percent=33.33), unit(UNITS3[1], percent=33.33),
                    unit(UNITS3[2], percent=33.35)]),
        "allocation.units",
        "os percentuais somam 100.01, devem somar exatamente 100",
    ),
    "percent zero": (
        dict(units=[unit(UNITS3[0], percent=0), unit(UNITS3[1], percent=100)]),
        "allocation.units.0.percent",
        "deve ser > 0",
    ),
    "percent negative": (
        dict(units=[unit(UNITS3[0], percent=-10), unit(UNITS3[1], percent=110)]),
        "allocation.units.0.percent",
        "deve ser > 0",
    ),
    "percent missing": (
        dict(units=[unit(UNITS3[0], percent=100), unit(UNITS3[1], priority=1)]),
        "allocation.units",
        "no modo percent cada UC precisa de percent",
    ),
    "priority gap": (
        dict(mode="priority", units=[unit(UNITS3[0], priority=1), unit(UNITS3[1], priority=3)]),
        "allocation.units",
        "as prioridades devem ser 1..n sem lacunas nem repetições",
    ),
    "priority duplicate": (
        dict(mode="priority", units=[unit(UNITS3[0], priority=1), unit(UNITS3[1], priority=1)]),
        "allocation.units",
        "as prioridades devem ser 1..n sem lacunas nem repetições",
    ),
    "priority not starting at 1": (
        dict(mode="priority", units=[unit(UNITS3[0], priority=2), unit(UNITS3[1], priority=3)]),
        "allocation.units",
        "as prioridades devem ser 1..n sem lacunas nem repetições",
    ),
    "repeated UC": (
        dict(units=[unit(UNITS3[0], percent=50), unit(UNITS3[0], percent=50)]),
        "allocation.units",
        f"UC {UNITS3[0]} repetida na lista de recebedoras",
    ),
    "remote, another CPF": (
        dict(modality="remote",
             units=[unit(UNITS3[0], percent=50), unit(UNITS3[1], percent=50, holder=OTHER_CPF)]),
        "allocation.units",
        f"no autoconsumo remoto a UC {UNITS3[1]} deve ter o mesmo titular (CPF, ou raiz do "
        "CNPJ) da UC geradora",
    ),
    "remote, another CNPJ root": (
        dict(modality="remote", holder=CNPJ,
             units=[unit(UNITS3[0], percent=50, holder=CNPJ),
                    unit(UNITS3[1], percent=50, holder=CNPJ_OTHER_ROOT)]),
        "allocation.units",
        f"no autoconsumo remoto a UC {UNITS3[1]} deve ter o mesmo titular (CPF, ou raiz do "
        "CNPJ) da UC geradora",
    ),
    "remote, CPF holder and a CNPJ unit": (
        dict(modality="remote",
             units=[unit(UNITS3[0], percent=100, holder=CNPJ)]),
        "allocation.units",
        f"no autoconsumo remoto a UC {UNITS3[0]} deve ter o mesmo titular (CPF, ou raiz do "
        "CNPJ) da UC geradora",
    ),
    "bad installation number": (
        dict(units=[unit("123", percent=100)]),
        "allocation.units.0.installation_number",
        "número da instalação deve ter exatamente 10 dígitos",
    ),
    "bad holder document": (
        dict(units=[unit(UNITS3[0], percent=100, holder="111.111.111-11")]),
        "allocation.units.0.holder_document",
        "CPF inválido: dígitos verificadores não conferem",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_allocation_rule_refuses(client, worker, task_queue, fakes, case):
    overrides, field, message = REFUSALS[case]
    st = await outcome(client, task_queue, beneficiary_input(**overrides))
    assert st.status == "REFUSED" and st.next_actor is None
    assert messages(st).get(field) == message, st.refusal_reasons
    transitions, emails = fakes.of(beneficiaries_id(st.request_id))
    assert [(t.action, t.status, t.allocation) for t in transitions] == [("refused", "REFUSED", None)]
    assert emails == []


async def test_more_than_two_decimals_is_refused(client, worker, task_queue):
    st = await outcome(
        client, task_queue,
        beneficiary_input([unit(UNITS3[0], percent=33.333), unit(UNITS3[1], percent=66.667)]),
    )
    assert st.status == "REFUSED"
    fields = {p.field: p for p in st.refusal_reasons}
    assert fields["allocation.units.0.percent"].code == "decimal_max_places"
    assert "2" in fields["allocation.units.0.percent"].message


ACCEPTED = {
    "percent sum exactly 100 with cents": dict(
        units=[unit(UNITS3[0], percent=33.33), unit(UNITS3[1], percent=33.33),
               unit(UNITS3[2], percent="33.34")]),
    "single unit 100": dict(units=[unit(UNITS3[0], percent=100)]),
    "priorities 1..n in any order": dict(
        mode="priority",
        units=[unit(UNITS3[0], priority=2), unit(UNITS3[1], priority=3), unit(UNITS3[2], priority=1)]),
    "generator's own UC among the receivers": dict(
        units=[unit(GENERATOR, percent=70), unit(UNITS3[0], percent=30)]),
    "remote, same CPF written differently": dict(
        modality="remote", units=[unit(GENERATOR, percent=50, holder="52998224725"),
                                  unit(UNITS3[0], percent=50)]),
    "remote, same CNPJ root, another branch": dict(
        modality="remote", holder=CNPJ,
        units=[unit(UNITS3[0], percent=50, holder=CNPJ),
               unit(UNITS3[1], percent=50, holder=CNPJ_OTHER_BRANCH)]),
    "shared, other holders allowed": dict(
        modality="shared",
        units=[unit(UNITS3[0], percent=50), unit(UNITS3[1], percent=50, holder=OTHER_CPF)]),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
async def test_allocation_rule_accepts(client, worker, task_queue, fakes, case):
    st = await outcome(client, task_queue, beneficiary_input(**ACCEPTED[case]))
    assert st.status == "PENDING_REVIEW", st.refusal_reasons
    assert st.next_actor == "analyst" and st.refusal_reasons == []


async def test_generator_not_connected_is_refused(client, worker, task_queue):
    raw = beneficiary_input(request_id=f"{NOT_CONNECTED_PREFIX}{uuid.uuid4().hex[:8]}")
    st = await outcome(client, task_queue, raw)
    assert st.status == "REFUSED"
    [problem] = st.refusal_reasons
    assert problem.code == "generator_not_connected"
    assert "não tem usina conectada" in problem.message


async def test_every_problem_is_listed_at_once(client, worker, task_queue):
    raw = beneficiary_input(
        [unit(UNITS3[0], percent=50), unit(UNITS3[0], percent=40)],
        request_id=f"{NOT_CONNECTED_PREFIX}{uuid.uuid4().hex[:8]}",
        holder_document="123",
    )
    st = await outcome(client, task_queue, raw)
    fields = set(messages(st))
    assert {"request_id", "holder_document", "allocation.units"} <= fields


async def test_id_must_match_the_request(client, worker, task_queue):
    raw = beneficiary_input()
    handle = await start(client, raw, task_queue, workflow_id="gd-beneficiaries-outra")
    st = await handle.result()
    assert st.status == "REFUSED" and st.request_id == "outra"
    assert st.refusal_reasons[0].code == "workflow_id_mismatch"


# --- review ---------------------------------------------------------------------------------


def test_next_billing_cycle_uses_the_local_date():
    # 02:30 UTC on 1 February is still 31 January in Minas Gerais.
    assert next_billing_cycle(datetime(2026, 2, 1, 2, 30, tzinfo=timezone.utc)) == date(2026, 2, 1)
    assert next_billing_cycle(datetime(2026, 2, 1, 3, 0, tzinfo=timezone.utc)) == date(2026, 3, 1)
    assert next_billing_cycle(datetime(2026, 12, 15, 12, tzinfo=timezone.utc)) == date(2027, 1, 1)
    assert next_billing_cycle(datetime(2026, 11, 30, 12, tzinfo=timezone.utc), 2) == date(2027, 1, 1)


async def test_confirm_registers_from_the_next_billing_cycle(client, worker, task_queue, fakes):
    raw = beneficiary_input(mode="priority", units=[unit(UNITS3[0], priority=2), unit(UNITS3[1], priority=1)])
    handle = await start(client, raw, task_queue)
    st = await settle(handle, lambda s: s.next_actor == "analyst" and s.notifications)
    assert st.status == "PENDING_REVIEW" and st.due_at is None  # no regulatory deadline
    assert st.generator_installation == GENERATOR and st.allocation.mode == "priority"

    message = await refused(handle, "confirm", {"actor": CUSTOMER})
    assert "papel 'customer' não pode" in message

    st = await update(handle, "confirm", {"actor": ANALYST})
    assert st.status == "REGISTERED" and st.next_actor is None
    [decision] = st.decisions
    assert decision.action == "confirm" and decision.actor.id == "ana.analista"
    local = decision.at.astimezone(ZoneInfo("America/Sao_Paulo")).date()
    first_of_next = date(local.year + local.month // 12, local.month % 12 + 1, 1)
    assert st.effective_from == first_of_next
    result = await handle.result()
    assert result.status == "REGISTERED" and result.effective_from == first_of_next

    transitions, emails = fakes.of(handle.id)
    assert [(t.action, t.status) for t in transitions] == [
        ("received", "PENDING_REVIEW"),
        ("registered", "REGISTERED"),
    ]
    assert transitions[0].actor.role == "system"
    registered = transitions[1].allocation
    assert registered.status == "REGISTERED" and registered.effective_from == first_of_next
    assert registered.generator_installation == GENERATOR and registered.mode == "priority"
    assert [u["installation_number"] for u in registered.units] == [UNITS3[0], UNITS3[1]]
    assert [e.template for e in emails] == ["beneficiaries_received", "beneficiaries_registered"]
    assert all(e.to == ["maria.souza@example.com.br"] for e in emails)
    context = emails[1].context
    assert context["effective_from"] == first_of_next.isoformat()
    assert context["mode"] == "priority" and context["generator_installation"] == GENERATOR
    assert context["units"][0] == {"installation_number": UNITS3[0], "percent": None, "priority": 2}
    assert [n.status for n in result.notifications] == ["sent", "sent"]


async def test_reject_with_catalogue_reasons(client, worker, task_queue, fakes):
    raw = beneficiary_input()
    handle = await start(client, raw, task_queue)
    await settle(handle, lambda s: s.next_actor == "analyst" and s.notifications)

    message = await refused(handle, "reject", {"actor": ANALYST, "reasons": [{"code": "RT-EMAIL-INVALIDO"}]})
    assert "fora do catálogo" in message and "RT-EMAIL-INVALIDO" in message
    message = await refused(handle, "reject", {"actor": ANALYST})
    assert "reasons: campo obrigatório" in message

    st = await update(
        handle, "reject",
        {"actor": ANALYST, "reasons": [{"code": "UC-RECEBEDORA-OUTRA-AREA"},
                                       {"code": "OTHER", "text": "UC 3001234569 desligada"}]},
    )
    assert st.status == "REJECTED" and st.effective_from is None
    result = await handle.result()
    assert result.status == "REJECTED"
    transitions, emails = fakes.of(handle.id)
    assert [(t.action, t.allocation.status) for t in transitions] == [
        ("received", "PENDING_REVIEW"),
        ("rejected", "REJECTED"),
    ]
    assert [r.code for r in transitions[1].reasons] == ["UC-RECEBEDORA-OUTRA-AREA", "OTHER"]
    rejected = emails[-1]
    assert rejected.template == "beneficiaries_rejected"
    texts = [r["text"] for r in rejected.context["reasons"]]
    assert texts[0] and texts[1] == "UC 3001234569 desligada"


async def test_without_an_address_nobody_is_emailed(client, worker, task_queue, fakes):
    raw = beneficiary_input(notify_email=None)
    handle = await start(client, raw, task_queue)
    await settle(handle, lambda s: s.next_actor == "analyst")
    await update(handle, "confirm", {"actor": ANALYST})
    result = await handle.result()
    assert result.status == "REGISTERED" and result.notifications == []
    _, emails = fakes.of(handle.id)
    assert emails == []


async def test_a_later_change_is_a_new_run_with_its_own_emails(client, worker, task_queue, fakes):
    raw = beneficiary_input()
    first = await start(client, raw, task_queue)
    await settle(first, lambda s: s.next_actor == "analyst")
    await update(first, "confirm", {"actor": ANALYST})
    await first.result()
    change = {**raw, "allocation": {"mode": "percent", "units": [unit(UNITS3[2], percent=100)]}}
    second = await start(client, change, task_queue)
    assert second.result_run_id != first.result_run_id
    st = await settle(second, lambda s: s.next_actor == "analyst" and s.notifications)
    assert [n.status for n in st.notifications] == ["sent"]  # not a duplicate of the first run
    await second.terminate()


# --- with the real activities (SQLite store, templates, SMTP sink) ---------------------------


def _connect_request(deps, request_id: str) -> None:
    """Put a CONNECTED access request in the store, as AccessRequest would have."""
    from activities.records import RecordActivities
    from models.activities import RequestRow

    now = datetime.now(timezone.utc)
    RecordActivities(deps.store, deps.blobs).record_transition(
        Transition(
            workflow_id=f"gd-request-{request_id}",
            event_key="0001-connected",
            process="access",
            action="connected",
            status="CONNECTED",
            at=now,
            request=RequestRow(
                workflow_id=f"gd-request-{request_id}",
                request_id=request_id,
                kind="request",
                status="CONNECTED",
                installation_number=GENERATOR,
                created_at=now,
                updated_at=now,
            ),
        )
    )


async def test_end_to_end_with_real_activities(client, real_worker, task_queue, deps, smtp_sink):
    async with real_worker():
        refused_st = await (await start(client, beneficiary_input(), task_queue)).result()
        assert [p.code for p in refused_st.refusal_reasons] == ["generator_not_connected"]

        raw = beneficiary_input()
        _connect_request(deps, raw["request_id"])
        handle = await start(client, raw, task_queue)
        await settle(handle, lambda s: s.next_actor == "analyst" and s.notifications)
        await update(handle, "confirm", {"actor": ANALYST})
        result = await handle.result()
    assert result.status == "REGISTERED"
    assert [n.status for n in result.notifications] == ["sent", "sent"], result.notifications
    current = deps.store.current_allocation(GENERATOR)
    assert current is not None and current.workflow_id == handle.id
    assert current.status == "REGISTERED" and current.effective_from == result.effective_from
    messages = await smtp_sink.wait_for_async(2)
    assert result.effective_from.strftime("%d/%m/%Y") in str(messages[1]["Subject"])
