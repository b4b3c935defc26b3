"""What crosses between workflows and activities. Workflows import only these shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from models.common import Actor, DocumentRef, Model, Problem, Reason

Process = Literal["access", "technician", "beneficiaries"]


class IntakeCheck(Model):
    """Raw start payload of a process, checked at once against every rule and the store."""

    process: Process
    workflow_id: str
    raw: Any


class IntakeResult(Model):
    problems: list[Problem] = []
    # The input as validated and normalised (digits only, upper-case CNPJ, …); None if refused.
    normalized: dict[str, Any] | None = None
    # An accepted access request: the keyed hash of its customer's CPF/CNPJ
    # (activities/digests.py), carried to every RequestRow; never the clear document.
    customer_digest: str | None = None


class NumberRequest(Model):
    workflow_id: str
    step: str  # e.g. "intake" or "reanalysis-2": the same step always gets the same numbers


class IssuedNumbers(Model):
    service_note: str  # NS, 10 digits
    protocol: str  # year + sequence, e.g. "2026000123"
    issued_at: datetime


class RequestRow(Model):
    """The projection of an AccessRequest kept in the store (no personal data needed)."""

    workflow_id: str
    request_id: str
    kind: str
    status: str
    generation_class: str | None = None
    installation_number: str | None = None
    service_note: str | None = None
    protocol: str | None = None
    due_at: datetime | None = None
    due_rule: str | None = None
    sla_breaches: int = 0
    technician: str | None = None
    cycle: int = 0
    # The deadline's clock is paused (REN art. 64 pause): "prazo suspenso" in the inbox.
    clock_paused: bool = False
    # The customer's CPF/CNPJ as a keyed hash (activities/digests.py): the portal's lookup.
    customer_digest: str | None = None
    created_at: datetime
    updated_at: datetime


class TechnicianRow(Model):
    key: str  # CREA-MG-12345
    workflow_id: str
    status: str
    updated_at: datetime
    # The RT's address for the e-mails of the requests it signs (DOMAIN.md: every answer
    # goes there). Kept in the store only, never in logs or search attributes.
    email: str | None = None


class AllocationRecord(Model):
    workflow_id: str
    request_id: str
    generator_installation: str
    modality: str
    mode: str
    units: list[dict[str, Any]]
    status: str
    effective_from: date | None = None
    recorded_at: datetime


class Transition(Model):
    """One step of a process: appended to the event log once, projections upserted."""

    workflow_id: str
    event_key: str  # unique within the workflow; a retried activity writes nothing twice
    process: Process
    action: str
    status: str
    at: datetime
    actor: Actor | None = None
    reasons: list[Reason] = []
    documents: list[DocumentRef] = []
    data: dict[str, Any] = {}
    request: RequestRow | None = None
    technician: TechnicianRow | None = None
    allocation: AllocationRecord | None = None
    # An AccessRequest's ``status`` query answer once this step is recorded (AccessStatus
    # as JSON, with its ``sequence``), filled when the effect runs: the store keeps the
    # newest for the API's status GET (``request_status``).
    status_snapshot: dict[str, Any] | None = None


# Attempts of one e-mail before it is given up and recorded refused (workflows'
# MAIL_OPTIONS; the activity's last attempt records the refusal).
MAIL_MAX_ATTEMPTS = 2000


class EmailRequest(Model):
    key: str  # workflow id + step + cycle: the message is delivered once per key
    template: str
    to: list[str]
    cc: list[str] = []
    sender: str | None = None  # default: the template's sender
    context: dict[str, Any] = {}
    attachments: list[DocumentRef] = []


class EmailResult(Model):
    key: str
    template: str = ""
    status: Literal["sent", "duplicate", "refused"]
    message_id: str | None = None
    detail: str | None = None


class CredentialsRequest(Model):
    """Approval of an RT: the activity creates the secrets and sends the three e-mails."""

    key: str
    technician: str  # CREA-MG-12345
    name: str
    email: str
    cpf: str


class EmailChangeFacts(Model):
    """What the store knows of an RT for a change of its e-mail (None: never registered)."""

    status: str | None = None
    email: str | None = None


class EmailCodeRequest(Model):
    """Send a new confirmation code to the RT's new address (the activity creates it)."""

    key: str
    technician: str
    email: str
    expires_at: datetime


class EmailCodeCheck(Model):
    """Confirm a change: the code against its hash, at the workflow's ``at``; on success
    the new address becomes the RT's, in the same transaction."""

    technician: str
    code: str
    email: str
    at: datetime


class DeadlineQuery(Model):
    policy: str
    rule: str
    start: datetime
    generation_class: str | None = None
    works: bool = False
    voltage_kv: float | None = None


class ResumeQuery(Model):
    due_at: datetime
    paused_seconds: float
