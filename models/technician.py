"""Payloads of ``TechnicianRegistration`` (cadastro do Responsável Técnico)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from models.acks import Action
from models.common import (
    ActorArgs,
    Cpf,
    Decision,
    DeadlineRecord,
    Email,
    Model,
    Notification,
    PersonName,
    Phone,
    Problem,
    Reason,
    Registration,
    SlaBreach,
    Uf,
)

TechnicianStatusName = Literal["RECEIVED", "REFUSED", "PENDING_REVIEW", "APPROVED", "REJECTED"]


class TechnicianInput(Model):
    name: PersonName
    cpf: Cpf
    email: Email
    phone: Phone
    council: Literal["CREA", "CAU"]
    uf: Uf
    registration: Registration
    title: Annotated[str, Field(min_length=1, max_length=120)] = "Engenheiro Eletricista"

    @property
    def key(self) -> str:
        return f"{self.council}-{self.uf}-{self.registration}"


class RegistrationCheck(Model):
    """The analyst's check of the RT's council registration before approval (seed: "o
    mesmo deverá estar com o registro regularizado no CREA ou no CAU"). There is no public
    API to call (DOMAIN.md): the analyst says where and when it was checked."""

    source: Annotated[str, Field(min_length=3, max_length=200)]  # e.g. "CREA-MG, consulta pública"
    checked_at: datetime
    situation: Literal["regular", "irregular", "not_found"]

    @field_validator("checked_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("checked_at: informe data e hora com fuso (ex.: 2026-12-01T10:00:00-03:00)")
        return value


class TechnicianApproveArgs(ActorArgs):
    # Optional in the contract; the web form requires it.
    registration_check: RegistrationCheck | None = None


class TechnicianRejectArgs(ActorArgs):
    reasons: Annotated[list[Reason], Field(min_length=1, max_length=50)]


class TechnicianStatus(Model):
    technician: str
    status: TechnicianStatusName
    due_at: datetime | None = None
    next_actor: str | None = None
    sla_breaches: list[SlaBreach] = []
    decisions: list[Decision] = []
    deadlines: list[DeadlineRecord] = []
    notifications: list[Notification] = []
    refusal_reasons: list[Problem] = []
    # The updates the current status accepts and who may send them (domain/rules).
    actions: list[Action] = []
    # Bumped by every recorded step; equals the ``sequence`` of an update's ack.
    sequence: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
