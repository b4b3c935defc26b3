"""Payloads of the ``AccessRequest`` workflow (consulta and solicitação de acesso)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from models.beneficiaries import Allocation
from models.acks import Action
from models.names import Updates
from models.common import (
    Actor,
    ActorArgs,
    Decision,
    DeadlineRecord,
    DocumentRef,
    Notification,
    SlaBreach,
    Email,
    InstallationNumber,
    LongText,
    Model,
    PersonName,
    Phone,
    Problem,
    Reason,
    RequestId,
    ServiceNote,
    ShortText,
    TaxId,
    Technician,
)

MICRO_LIMIT_KW = 75.0
MINI_LIMIT_DISPATCHABLE_KW = 5000.0
MINI_LIMIT_NON_DISPATCHABLE_KW = 3000.0
# Lei 14.300 art. 1 IX: solar counts as dispatchable only with storage of at least 20 %
# of its monthly generation. Monthly generation is estimated with a capacity factor
# typical of fixed PV in Minas Gerais (~20 %): kW × 720 h × 0.20.
SOLAR_CAPACITY_FACTOR = 0.20
DISPATCHABLE_SOURCES = ("hydro", "biomass", "cogeneration")
REANALYSIS_MOTIVE = "Reanálise do projeto/processo elétrico"
# The seed's two reanalysis motives ("Solicitação de NS de Reanálise": "reanálise de carga
# na rede ou reanálise de projeto elétrico na AGV"); the first is the default.
REANALYSIS_MOTIVES = (REANALYSIS_MOTIVE, "Reanálise de carga na rede")

AccessStatusName = Literal[
    "RECEIVED",  # not in CONTRACT.md: intake still running (a few hundred ms)
    "REFUSED",
    "AWAITING_APR",
    "LAPSED",
    "UNDER_ANALYSIS",
    "SUSPENDED",
    "REPROVED",
    "APPROVED",
    "INSPECTION_REQUESTED",
    "INSPECTION_REPROVED",
    "CONNECTED",
    "AWAITING_ANSWER",
    "ANSWERED",
    "CANCELLED",
]
TERMINAL_STATUSES = ("REFUSED", "CONNECTED", "ANSWERED", "CANCELLED")
GenerationClass = Literal["micro", "mini"]


def input_digest(inp: "AccessRequestInput") -> str:
    return hashlib.sha256(inp.model_dump_json().encode()).hexdigest()


class Customer(Model):
    name: PersonName
    document: TaxId | None = None
    email: Email
    phone: Phone | None = None
    customer_number: Annotated[str, Field(pattern=r"^\d{1,12}$")] | None = None


class Integrator(Model):
    name: PersonName
    document: TaxId
    # Where a consulta's answer also goes when the integrator filed it (issue 17).
    email: Email | None = None


class Generation(Model):
    source: Literal["solar", "wind", "hydro", "biomass", "cogeneration", "other"]
    installed_power_kw: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    storage_kwh: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    voltage_kv: Annotated[float, Field(gt=0, le=800, allow_inf_nan=False)] = 0.22
    modality: Literal["local", "remote", "shared", "multi_unit"]

    @property
    def dispatchable(self) -> bool:
        if self.source in DISPATCHABLE_SOURCES:
            return True
        if self.source == "solar" and self.storage_kwh:
            monthly_kwh = self.installed_power_kw * 720 * SOLAR_CAPACITY_FACTOR
            return self.storage_kwh >= 0.20 * monthly_kwh
        return False

    @property
    def mini_limit_kw(self) -> float:
        return MINI_LIMIT_DISPATCHABLE_KW if self.dispatchable else MINI_LIMIT_NON_DISPATCHABLE_KW

    @property
    def generation_class(self) -> GenerationClass:
        return "micro" if self.installed_power_kw <= MICRO_LIMIT_KW else "mini"

    @model_validator(mode="after")
    def _within_gd(self) -> "Generation":
        if self.installed_power_kw > self.mini_limit_kw:
            kind = "despachável" if self.dispatchable else "não despachável"
            raise ValueError(
                f"potência instalada de {self.installed_power_kw:g} kW acima do limite de "
                f"minigeração ({self.mini_limit_kw:g} kW para fonte {kind}): não é GD"
            )
        return self


RequestMotive = Literal[
    "new_connection", "power_increase", "holder_change", "modality_change",
    "beneficiaries_change", "source_change",
]


class AccessRequestInput(Model):
    request_id: RequestId
    kind: Literal["inquiry", "request"]
    customer: Customer
    integrator: Integrator | None = None
    installation_number: InstallationNumber | None = None
    technician: Technician | None = None
    generation: Generation
    documents: Annotated[list[DocumentRef], Field(max_length=50)] = []
    beneficiaries: Allocation | None = None
    policy: Literal["seed", "ren1000-2023"] | None = None
    # The AGV form's "Motivo da Solicitação" (domain/motives.py); a request without one
    # is a new connection. An inquiry has none.
    motive: RequestMotive | None = None

    @model_validator(mode="after")
    def _branch_rules(self) -> "AccessRequestInput":
        if self.kind == "request":
            if self.technician is None:
                raise ValueError("technician: obrigatório para uma solicitação de acesso")
            if self.customer.document is None:
                raise ValueError("customer.document: CPF/CNPJ obrigatório para uma solicitação")
            if not any(d.kind == "commercial_id" for d in self.documents):
                raise ValueError(
                    "documents: a solicitação exige o documento de identificação do "
                    "cliente (commercial_id)"
                )
            if self.beneficiaries is not None and self.installation_number is None:
                raise ValueError(
                    "installation_number: obrigatório quando a solicitação declara UCs "
                    "recebedoras (beneficiaries)"
                )
        elif self.beneficiaries is not None:
            raise ValueError("beneficiaries: uma consulta não cadastra UCs recebedoras")
        elif self.motive is not None:
            raise ValueError("motive: o motivo da solicitação não se aplica a uma consulta")
        elif not (
            self.customer.document
            or self.customer.customer_number
            or (self.integrator and self.integrator.document)
        ):
            raise ValueError(
                "customer: a consulta exige CPF/CNPJ do cliente ou do integrador, "
                "ou o número de cliente"
            )
        return self


# --- update arguments -------------------------------------------------------------


class RegisterAprArgs(ActorArgs):
    service_note: ServiceNote
    protocol: Annotated[str, Field(min_length=1, max_length=32)]
    documents: Annotated[list[DocumentRef], Field(max_length=50)] = []


class ApproveArgs(ActorArgs):
    parecer: DocumentRef
    requires_works: bool = False
    notes: Annotated[str, Field(max_length=10000)] | None = None


class SuspendArgs(ActorArgs):
    pendencies: Annotated[list[Reason], Field(min_length=1, max_length=50)]


class ReproveArgs(ActorArgs):
    reasons: Annotated[list[Reason], Field(min_length=1, max_length=50)]


class AttachCorrectionsArgs(ActorArgs):
    documents: Annotated[list[DocumentRef], Field(min_length=1, max_length=50)]


class RequestReanalysisArgs(ActorArgs):
    reproved_service_note: ServiceNote
    motive: Annotated[str, Field(max_length=200)] = REANALYSIS_MOTIVE
    documents: Annotated[list[DocumentRef], Field(max_length=50)] = []


class DeclareWorksArgs(ActorArgs):
    reason: ShortText


class PauseClockArgs(ActorArgs):
    reason: ShortText


class AnswerInquiryArgs(ActorArgs):
    answer: LongText
    documents: Annotated[list[DocumentRef], Field(max_length=50)] = []


class RequestInspectionArgs(ActorArgs):
    documents: Annotated[list[DocumentRef], Field(max_length=50)] = []


class RecordInspectionArgs(ActorArgs):
    result: Literal["approved", "reproved"]
    findings: Annotated[list[Annotated[str, Field(min_length=1, max_length=2000)]],
                        Field(max_length=100)] = []
    report: DocumentRef | None = None


class WithdrawArgs(ActorArgs):
    reason: ShortText


class AssignArgs(ActorArgs):
    """Who works the request: an analyst claims it for themself, a supervisor (re)assigns."""

    analyst: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@:-]+$")]


# --- status snapshot ----------------------------------------------------------------


class AccessStatus(Model):
    request_id: str
    kind: Literal["inquiry", "request"]
    status: AccessStatusName
    policy: str = "seed"
    generation_class: GenerationClass | None = None
    technician: str | None = None
    service_note: str | None = None
    protocol: str | None = None
    service_notes: list[str] = []
    due_at: datetime | None = None
    due_rule: str | None = None
    clock_paused: bool = False
    next_actor: str | None = None
    cycle: int = 0
    works_declared: bool = False
    sla_breaches: list[SlaBreach] = []
    documents: list[DocumentRef] = []
    decisions: list[Decision] = []
    deadlines: list[DeadlineRecord] = []
    refusal_reasons: list[Problem] = []
    notifications: list[Notification] = []
    inspection_findings: list[str] = []
    beneficiaries_workflow_id: str | None = None
    # The analyst working the request (``assign``): an actor id, no personal data.
    assignee: str | None = None
    # The updates the current status accepts and who may send them (domain/rules).
    actions: list[Action] = []
    # Bumped by every recorded step; equals the ``sequence`` of an update's ack.
    sequence: int = 0
    # "Motivo da Solicitação" at intake (domain/motives.py); None for an inquiry.
    motive: str | None = None
    # SHA-256 of the normalised input: lets a caller tell "the same request again" from
    # "this request_id was used for another body" (the id alone cannot).
    input_digest: str | None = None
    # Side effects (store writes, e-mails) queued but not yet done; 0 once settled.
    pending_effects: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


# Each AccessRequest update's arguments (the workflow's ``_check`` decodes them).
UPDATE_ARGS: dict[str, type[ActorArgs]] = {
    Updates.REGISTER_APR: RegisterAprArgs,
    Updates.APPROVE: ApproveArgs,
    Updates.SUSPEND: SuspendArgs,
    Updates.REPROVE: ReproveArgs,
    Updates.ATTACH_CORRECTIONS: AttachCorrectionsArgs,
    Updates.REQUEST_REANALYSIS: RequestReanalysisArgs,
    Updates.DECLARE_WORKS: DeclareWorksArgs,
    Updates.PAUSE_CLOCK: PauseClockArgs,
    Updates.RESUME_CLOCK: ActorArgs,
    Updates.ANSWER_INQUIRY: AnswerInquiryArgs,
    Updates.REQUEST_INSPECTION: RequestInspectionArgs,
    Updates.RECORD_INSPECTION: RecordInspectionArgs,
    Updates.WITHDRAW: WithdrawArgs,
    Updates.ASSIGN: AssignArgs,
}
