"""Builders and fake activities for AccessRequest tests.

The fakes are registered under the real activity names, so a workflow-logic test runs the
real workflow code on a real (time-skipping) server without a database or SMTP server.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.deadlines import DeadlineActivities
from models.access import AccessRequestInput, AccessStatus
from models.acks import UpdateAck
from models.activities import (
    EmailRequest,
    EmailResult,
    IntakeCheck,
    IntakeResult,
    IssuedNumbers,
    NumberRequest,
    Transition,
)
from models.common import parse_or_problems
from models.ids import access_request_id

CPF = "529.982.247-25"
OTHER_CPF = "111.444.777-35"
CNPJ = "11.222.333/0001-81"
TECHNICIAN = {"council": "CREA", "uf": "MG", "registration": "123456"}
ANALYST = {"id": "ana.analista", "role": "analyst"}
# Parties of every request built here (CONTRACT.md "Parties"): its RT and its customer.
TECH = {"id": "rt.joao", "role": "technician", "council_key": "CREA-MG-123456"}
CUSTOMER = {"id": "cliente.maria", "role": "customer", "document": "52998224725"}
INSPECTOR = {"id": "vistoriador.carlos", "role": "inspector"}
APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")


# --- deadlines worked by hand (DOMAIN.md, "Deadlines: how to count") -----------------------
# Written from the rule, not from domain/calendar.py: a test must not ask the code under
# test what the answer is. Every date a test takes from a clock is a date in this zone.
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
# The distributor's own fixed dates (Belo Horizonte municipal holidays).
DISTRIBUTOR_FIXED_HOLIDAYS = ((8, 15), (12, 8))


def holidays_mg(year: int) -> set[date]:
    """National + Minas Gerais public holidays (the `holidays` package, DOMAIN.md) plus the
    distributor's fixed dates."""
    official = holidays.country_holidays("BR", subdiv="MG", years=year)
    return set(official) | {date(year, m, d) for m, d in DISTRIBUTOR_FIXED_HOLIDAYS}


def business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in holidays_mg(d.year)


def local_day(moment: datetime) -> date:
    return moment.astimezone(SAO_PAULO).date()


def end_of_local_day(d: date) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tzinfo=SAO_PAULO)


def due_in_days(event: datetime, n: int) -> datetime:
    """N days: local date + N, rolled to the next business day, at 23:59:59 local."""
    d = local_day(event) + timedelta(days=n)
    while not business_day(d):
        d += timedelta(days=1)
    return end_of_local_day(d)


def due_in_business_days(event: datetime, n: int) -> datetime:
    """N business days: the N-th business day after the event's local date, 23:59:59."""
    d = local_day(event)
    for _ in range(n):
        d += timedelta(days=1)
        while not business_day(d):
            d += timedelta(days=1)
    return end_of_local_day(d)


async def server_now(env) -> datetime:
    """The server's clock (the time-skipping server's own), in America/Sao_Paulo."""
    return (await env.get_current_time()).astimezone(SAO_PAULO)


async def skip_to_local(env, at: time, clear: tuple[int, ...] = ()) -> datetime:
    """On the time-skipping server, move the clock to the next `at` (local time) on a day D
    for which D + n is a business day for every n in `clear`. At 23:30 in São Paulo the
    UTC date is already D + 1, and with no weekend or holiday to roll a due date over, a
    date taken in UTC instead of local time shows as a day off. On a real server the clock
    cannot move: returns its current time."""
    now = await server_now(env)
    if not env.supports_time_skipping:
        return now
    day = now.date()
    for _ in range(366):
        target = datetime.combine(day, at, tzinfo=SAO_PAULO)
        if target > now and all(business_day(day + timedelta(days=n)) for n in clear):
            break
        day += timedelta(days=1)
    else:
        raise AssertionError(f"no day with {clear} all business days after {now}")
    await env.sleep(target - now)
    moved = await server_now(env)
    assert target <= moved < target + timedelta(minutes=5), (target, moved)
    return moved


def doc(kind: str, content: bytes | None = None, content_type: str = "application/pdf") -> dict:
    content = content or f"%PDF-1.4 {kind}".encode()
    return {
        "sha256": hashlib.sha256(content).hexdigest(),
        "kind": kind,
        "filename": f"{kind}.pdf",
        "size": len(content),
        "content_type": content_type,
    }


def request_input(
    request_id: str | None = None,
    *,
    power_kw: float = 8.5,
    voltage_kv: float = 0.22,
    kind: str = "request",
    beneficiaries: dict | None = None,
    **overrides: Any,
) -> dict:
    raw = {
        "request_id": request_id or f"req-{uuid.uuid4().hex[:12]}",
        "kind": kind,
        "customer": {
            "name": "Maria das Graças Souza",
            "document": CPF,
            "email": "maria.souza@example.com.br",
            "phone": "(31) 99876-5432",
        },
        "installation_number": "3001234567",
        "technician": TECHNICIAN if kind == "request" else None,
        "generation": {
            "source": "solar",
            "installed_power_kw": power_kw,
            "voltage_kv": voltage_kv,
            "modality": "local",
        },
        "documents": [doc("commercial_id")] if kind == "request" else [],
        "beneficiaries": beneficiaries,
    }
    raw.update(overrides)
    return raw


def inquiry_input(request_id: str | None = None) -> dict:
    raw = request_input(request_id, kind="inquiry")
    raw["installation_number"] = None
    return raw


def smtp_outage_error() -> ApplicationError:
    """What a fake send_email raises during a simulated SMTP outage (retried in 6 h)."""
    return ApplicationError(
        "servidor SMTP fora do ar (teste)", type="SMTPServerDisconnected",
        next_retry_delay=timedelta(hours=6),
    )


class FakeActivities:
    """Records what the workflow asked for; answers like the real activities would."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.emails: list[EmailRequest] = []
        self.numbers: dict[tuple[str, str], IssuedNumbers] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        # True: every send_email attempt fails (retried by Temporal), like an SMTP outage.
        # Retries are spaced 6 h apart (smtp_outage_error) so that skipping days of test-server
        # time does not run thousands of attempts.
        self.mail_down = False

    @activity.defn(name="validate_intake")
    def validate_intake(self, check: IntakeCheck) -> IntakeResult:
        from models.beneficiaries import BeneficiaryInput
        from models.technician import TechnicianInput

        model = {
            "access": AccessRequestInput,
            "technician": TechnicianInput,
            "beneficiaries": BeneficiaryInput,
        }[check.process]
        parsed, problems = parse_or_problems(model, check.raw)
        if problems:
            return IntakeResult(problems=problems)
        return IntakeResult(normalized=parsed.model_dump(mode="json"))

    @activity.defn(name="issue_numbers")
    def issue_numbers(self, req: NumberRequest) -> IssuedNumbers:
        with self._lock:
            key = (req.workflow_id, req.step)
            if key not in self.numbers:
                n = next(self._seq)
                self.numbers[key] = IssuedNumbers(
                    service_note=f"{7000000000 + n}",
                    protocol=f"2026{n:06d}",
                    issued_at=activity.info().current_attempt_scheduled_time
                    or datetime.now(timezone.utc),
                )
            return self.numbers[key]

    @activity.defn(name="record_transition")
    def record_transition(self, t: Transition) -> None:
        with self._lock:
            if all(
                (x.workflow_id, x.event_key) != (t.workflow_id, t.event_key)
                for x in self.transitions
            ):
                self.transitions.append(t)

    @activity.defn(name="send_email")
    def send_email(self, req: EmailRequest) -> EmailResult:
        if self.mail_down:
            raise smtp_outage_error()
        with self._lock:
            if any(e.key == req.key for e in self.emails):
                return EmailResult(key=req.key, template=req.template, status="duplicate")
            self.emails.append(req)
        return EmailResult(key=req.key, template=req.template, status="sent")

    def templates(self, workflow_id: str | None = None) -> list[str]:
        return [
            e.template
            for e in self.emails
            if workflow_id is None or e.key.startswith(workflow_id + ":")
        ]

    def all(self) -> list:
        deadlines = DeadlineActivities()
        return [
            self.validate_intake,
            self.issue_numbers,
            self.record_transition,
            self.send_email,
            deadlines.compute_deadline,
            deadlines.resume_deadline,
        ]


def fake_worker(client: Client, task_queue: str, fakes: FakeActivities) -> Worker:
    from concurrent.futures import ThreadPoolExecutor

    from workflows.registry import ALL_WORKFLOWS

    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(ALL_WORKFLOWS),
        activities=fakes.all(),
        activity_executor=ThreadPoolExecutor(max_workers=4),
    )


# The workflows start() opened, by client: each test module has its own server and client
# (conftest's module-scoped env), so one module never terminates another's workflows.
_STARTED: dict[Client, list[WorkflowHandle]] = {}


async def terminate_started(client: Client) -> None:
    """End what a test left running on ``client``'s server: on the time-skipping server,
    workflows whose worker is gone would otherwise keep later tests' clocks from moving.
    A workflow whose side effects never drain fails the test (nothing is swallowed)."""
    from temporalio.api.enums.v1 import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    running = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    started = _STARTED.pop(client, [])
    while started:
        handle = started.pop()
        if (await describe_raw(handle)).workflow_execution_info.status != running:
            continue
        # Let queued activities finish first: the test server does not skip time
        # while an activity task is outstanding, even for a terminated workflow.
        await settle(handle, lambda s: s.pending_effects == 0, timeout=5)
        try:
            await handle.terminate(reason="test finished")
        except RPCError as error:  # closed between describe and terminate
            if error.status != RPCStatusCode.NOT_FOUND:
                raise


async def start(client: Client, raw: dict, task_queue: str) -> WorkflowHandle:
    """Start (or find) the request and wait until intake has answered."""
    handle = await client.start_workflow(
        "AccessRequest",
        raw,
        id=access_request_id(raw["request_id"]),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=AccessStatus,
    )
    _STARTED.setdefault(client, []).append(handle)
    await settle(handle, lambda s: s.status != "RECEIVED")
    return handle


async def status(handle: WorkflowHandle) -> AccessStatus:
    return await handle.query("status", result_type=AccessStatus)


async def update(handle: WorkflowHandle, name: str, args: dict) -> AccessStatus:
    """Run the update (it answers an ack), then the status the caller goes on with."""
    ack = await handle.execute_update(name, args, result_type=UpdateAck)
    current = await status(handle)
    assert (ack.update, ack.status, ack.sequence) == (name, current.status, current.sequence)
    return current


async def history_length(handle: WorkflowHandle) -> int:
    return len((await handle.fetch_history()).events)


WORKFLOW_TASK_EVENTS = (5, 6, 7)  # EVENT_TYPE_WORKFLOW_TASK_SCHEDULED/STARTED/COMPLETED


async def history_facts(handle: WorkflowHandle, exact: bool) -> list[int]:
    """The event types of the history. The time-skipping test server writes a workflow
    task even for a rejected update (the real server drops that speculative task), so
    there the comparison leaves the workflow-task bookkeeping out."""
    events = (await handle.fetch_history()).events
    return [e.event_type for e in events if exact or e.event_type not in WORKFLOW_TASK_EVENTS]


async def settle(handle: WorkflowHandle, predicate, timeout: float = 10.0) -> AccessStatus:
    """Poll the status until ``predicate`` holds (side effects run after an update)."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await status(handle)
        if predicate(current):
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"status never satisfied the condition: {current}")
        await asyncio.sleep(0.05)


async def register_apr(handle: WorkflowHandle, st: AccessStatus, extra_docs: list | None = None):
    return await update(
        handle,
        "register_apr",
        {
            "actor": TECH,
            "service_note": st.service_note,
            "protocol": st.protocol,
            "documents": [doc(k) for k in APR_KINDS] + (extra_docs or []),
        },
    )


def parecer_doc() -> dict:
    return doc("parecer", b"%PDF-1.7 parecer de acesso")


async def describe_raw(handle: WorkflowHandle):
    """DescribeWorkflowExecution without decoding search attributes (the time-skipping
    server returns a Datetime attribute the SDK's decoder refuses)."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

    return await handle._client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=handle._client.namespace,
            execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.run_id or ""),
        )
    )


async def settled_history_length(handle: WorkflowHandle, timeout: float = 10.0) -> int:
    """The history's length once the workflow has nothing in flight: no pending activity,
    no pending workflow task, and its last workflow task completed (or the run closed).
    Read from describe() and the history themselves, not from a pause in its growth."""
    import asyncio

    from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus

    task_events = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    }
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        raw = await describe_raw(handle)
        events = (await handle.fetch_history()).events
        if raw.workflow_execution_info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
            return len(events)
        last_task = next((e.event_type for e in reversed(events) if e.event_type in task_events), None)
        if (
            not raw.pending_activities
            and not raw.HasField("pending_workflow_task")
            and last_task == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ):
            return len(events)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{handle.id} never settled: {len(raw.pending_activities)} pending activities, "
                f"workflow task pending: {raw.HasField('pending_workflow_task')}, "
                f"last task event {last_task}")
        await asyncio.sleep(0.05)


async def quiet(handle: WorkflowHandle) -> AccessStatus:
    """Wait until queued side effects ran and the workflow has nothing in flight."""
    current = await settle(handle, lambda s: s.pending_effects == 0)
    await settled_history_length(handle)
    return await status(handle)
