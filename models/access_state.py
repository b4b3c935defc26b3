"""The ``AccessRequest`` workflow's own state: what it knows, carried across continue-as-new.

These classes live here, not in the workflow module, because the workflow sandbox imports
the workflow module again for every run: pydantic classes defined there would be rebuilt
(validators, schema) each time. Modules under ``models`` are passed through the sandbox
and built once per process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Union

from models.access import AccessRequestInput
from models.activities import EmailRequest, Transition
from models.common import Decision, DeadlineRecord, DocumentRef, Model, Notification, SlaBreach


class ActiveDeadline(Model):
    rule: str
    start: datetime
    due_at: datetime
    remind_at: datetime | None = None
    on_lapse: str
    reminded: bool = False
    breached: bool = False
    paused_at: datetime | None = None
    paused_total_s: float = 0.0


class StartChild(Model):
    """Queued effect: start the BeneficiaryRegistration child once connection is stored."""

    workflow_id: str
    payload: dict[str, Any]


class AccessState(Model):
    """Everything the workflow knows; carried whole across continue-as-new."""

    input: AccessRequestInput
    status: str
    policy: str
    created_at: datetime
    updated_at: datetime
    seq: int = 0
    cycle: int = 0
    cycles_this_run: int = 0
    service_note: str | None = None
    protocol: str | None = None
    service_notes: list[str] = []
    deadline: ActiveDeadline | None = None
    works_declared: bool = False
    corrections_attached: bool = False
    apr_registered_after_lapse: bool = False
    sla_breaches: list[SlaBreach] = []
    documents: list[DocumentRef] = []
    decisions: list[Decision] = []
    deadlines: list[DeadlineRecord] = []
    notifications: list[Notification] = []
    inspection_findings: list[str] = []
    beneficiaries_workflow_id: str | None = None
    # The intake's keyed hash of the customer's CPF/CNPJ (the store's portal lookup).
    customer_digest: str | None = None
    assignee: str | None = None
    search_attributes: dict[str, Any] = {}
    pending: list[Union[Transition, EmailRequest, StartChild]] = []
