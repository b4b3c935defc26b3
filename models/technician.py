"""Payloads of ``TechnicianRegistration`` (cadastro do Responsável Técnico)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from models.acks import Action
from models.common import (
    Actor,
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


# --- the RT's e-mail corrected (TechnicianEmailChange; issue 17 item 4) ----------------------

# The code sent to the new address: valid 72 h (as the APR set-password link), at most 5
# wrong tries per code; a new change_email sends a new code (and tells the old address).
EMAIL_CODE_TTL = timedelta(hours=72)
EMAIL_CODE_ATTEMPTS = 5
EMAIL_CODE_DIGITS = 6


def _email_code(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(rf"[0-9]{{{EMAIL_CODE_DIGITS}}}", value):
        raise PydanticCustomError(
            "code_format", f"o código tem {EMAIL_CODE_DIGITS} dígitos (veja o e-mail enviado ao novo endereço)")
    return value


EmailCode = Annotated[str, Field(max_length=64), AfterValidator(_email_code)]


class ChangeEmailArgs(ActorArgs):
    email: Email


class ConfirmEmailArgs(ActorArgs):
    code: EmailCode


EmailChangeStatusName = Literal["IDLE", "AWAITING_CONFIRMATION", "CONFIRMED", "EXPIRED", "LOCKED"]


def email_hint(address: str) -> str:
    """``j***@example.com``: enough for the RT to recognise the address, not to read it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


class EmailChangeStatus(Model):
    """The ``status`` query of TechnicianEmailChange. No address in clear: the new one
    only as a hint (``email_hint``)."""

    technician: str
    status: EmailChangeStatusName
    new_email_hint: str | None = None
    expires_at: datetime | None = None
    attempts_left: int = EMAIL_CODE_ATTEMPTS
    requested_by: Actor | None = None
    confirmed_at: datetime | None = None
    notifications: list[Notification] = []
    sequence: int = 0
