"""What the TechnicianRegistration and BeneficiaryRegistration workflow tests share: fake
activities registered under the real names (the deadline activities are the real ones),
a worker running both workflows on them, and the calls a test makes on a registration
(start, status, update, settle, an update that must be refused).

A test module subclasses ``RecordingFakes`` (its own ``validate_intake`` and any extra
activity), defines its ``fakes`` fixture, imports ``worker`` by name (pytest finds fixtures
in the module's namespace, as with tests/access_fixtures.py) and binds a ``Registration``.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.deadlines import DeadlineActivities
from models.acks import UpdateAck
from models.activities import EmailRequest, EmailResult, Transition
from tests.access_helpers import settled_history_length, smtp_outage_error
from workflows.beneficiaries import BeneficiaryRegistrationWorkflow
from workflows.technician import TechnicianRegistrationWorkflow

# What a refused update may leave in history on the time-skipping server (its validator's
# workflow task), and nothing else.
TASK_EVENTS = {
    "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    "EVENT_TYPE_WORKFLOW_TASK_STARTED",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
}


class RecordingFakes:
    """Records what the workflow asked for; answers like the real activities would.
    Subclasses add ``validate_intake`` (and their own activities, via ``extra``)."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.emails: list[EmailRequest] = []
        self._lock = threading.Lock()
        # True: every send_email attempt fails (retried by Temporal), like an SMTP outage.
        # Retries are spaced 6 h apart (smtp_outage_error) so that skipping days of test-server
        # time does not run thousands of attempts.
        self.mail_down = False

    @activity.defn(name="record_transition")
    def record_transition(self, t: Transition) -> None:
        with self._lock:
            if all((x.workflow_id, x.event_key) != (t.workflow_id, t.event_key) for x in self.transitions):
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

    def of(self, workflow_id: str) -> tuple[list[Transition], list[EmailRequest]]:
        return (
            [t for t in self.transitions if t.workflow_id == workflow_id],
            [e for e in self.emails if e.key.startswith(workflow_id + ":")],
        )

    def extra(self) -> list:
        """Activities of one process only (the technician's credentials)."""
        return []

    def all(self) -> list:
        deadlines = DeadlineActivities()
        return [
            self.validate_intake,  # type: ignore[attr-defined]
            self.record_transition,
            self.send_email,
            *self.extra(),
            deadlines.compute_deadline,
            deadlines.resume_deadline,
        ]


@pytest.fixture
async def worker(client: Client, task_queue: str, fakes: RecordingFakes):
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[TechnicianRegistrationWorkflow, BeneficiaryRegistrationWorkflow],
        activities=fakes.all(),
        activity_executor=ThreadPoolExecutor(max_workers=4),
    ) as running:
        yield running


@dataclass(frozen=True)
class Registration:
    """The calls a test makes on one registration workflow type."""

    workflow_type: str
    status_type: type
    workflow_id_of: Callable[[dict[str, Any]], str]

    async def start(self, client: Client, raw: dict, task_queue: str, workflow_id: str | None = None) -> WorkflowHandle:
        return await client.start_workflow(
            self.workflow_type,
            raw,
            id=workflow_id or self.workflow_id_of(raw),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=self.status_type,
        )

    async def status(self, handle: WorkflowHandle) -> Any:
        return await handle.query("status", result_type=self.status_type)

    async def update(self, handle: WorkflowHandle, name: str, args: Any) -> Any:
        """Run the update (it answers an ack), then the status the caller goes on with."""
        ack = await handle.execute_update(name, args, result_type=UpdateAck)
        current = await self.status(handle)
        assert (ack.update, ack.status, ack.sequence) == (name, current.status, current.sequence)
        return current

    async def settle(self, handle: WorkflowHandle, predicate, timeout: float = 10.0) -> Any:
        """Poll the status until ``predicate`` holds (side effects run after an update)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            current = await self.status(handle)
            if predicate(current):
                return current
            if loop.time() > deadline:
                raise AssertionError(f"status never satisfied the condition: {current}")
            await asyncio.sleep(0.05)

    async def refused(self, handle: WorkflowHandle, name: str, args: Any) -> str:
        """Run an update that must be refused; return its message. Nothing of it may reach
        history: the dev server drops the validator's workflow task; the time-skipping server
        keeps that task's own three events, but no update event and no command."""
        before = await quiet_history_length(handle)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await self.update(handle, name, args)
        added = (await handle.fetch_history()).events[before:]
        kinds = {EventType.Name(e.event_type) for e in added}
        assert kinds <= TASK_EVENTS, f"{name} refusal wrote history: {kinds - TASK_EVENTS}"
        return str(caught.value.cause)


async def quiet_history_length(handle: WorkflowHandle) -> int:
    """History length once the workflow has nothing in flight (no pending activity, its
    last workflow task completed): describe() and the history, not a pause in growth."""
    return await settled_history_length(handle)
