"""Payloads of ``BeneficiaryRegistration`` (cadastramento de UC recebedora)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from models.acks import Action
from models.common import (
    Actor,
    ActorArgs,
    Email,
    InstallationNumber,
    Model,
    Notification,
    Problem,
    SlaBreach,
    Reason,
    RequestId,
    TaxId,
    holder_key,
)

Modality = Literal["local", "remote", "shared", "multi_unit"]
BeneficiaryStatusName = Literal["RECEIVED", "REFUSED", "PENDING_REVIEW", "REGISTERED", "REJECTED"]


class AllocationUnit(Model):
    installation_number: InstallationNumber
    holder_document: TaxId
    percent: Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)] | None = None
    priority: Annotated[int, Field(ge=1, le=1000)] | None = None


class Allocation(Model):
    mode: Literal["percent", "priority"]
    units: Annotated[list[AllocationUnit], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _consistent(self) -> "Allocation":
        seen: set[str] = set()
        for unit in self.units:
            if unit.installation_number in seen:
                raise ValueError(
                    f"units: UC {unit.installation_number} repetida na lista de recebedoras"
                )
            seen.add(unit.installation_number)
        if self.mode == "percent":
            if any(u.percent is None for u in self.units):
                raise ValueError("units: no modo percent cada UC precisa de percent")
            total = sum(u.percent for u in self.units if u.percent is not None)
            if total != Decimal("100"):
                raise ValueError(f"units: os percentuais somam {total}, devem somar exatamente 100")
        else:
            priorities = sorted(u.priority for u in self.units if u.priority is not None)
            if len(priorities) != len(self.units):
                raise ValueError("units: no modo priority cada UC precisa de priority")
            if priorities != list(range(1, len(self.units) + 1)):
                raise ValueError(
                    "units: as prioridades devem ser 1..n sem lacunas nem repetições"
                )
        return self


class BeneficiaryInput(Model):
    request_id: RequestId
    generator_installation: InstallationNumber
    holder_document: TaxId
    modality: Modality
    actor: Actor
    allocation: Allocation
    # Not in CONTRACT.md: where the holder is told of the outcome (the parent request's
    # customer e-mail when started as a child).
    notify_email: Email | None = None

    @model_validator(mode="after")
    def _remote_same_holder(self) -> "BeneficiaryInput":
        if self.modality == "remote":
            owner = holder_key(self.holder_document)
            for unit in self.allocation.units:
                if holder_key(unit.holder_document) != owner:
                    raise ValueError(
                        f"allocation.units: no autoconsumo remoto a UC "
                        f"{unit.installation_number} deve ter o mesmo titular (CPF, ou raiz "
                        f"do CNPJ) da UC geradora"
                    )
        return self


class ConfirmArgs(ActorArgs):
    pass


class RejectArgs(ActorArgs):
    reasons: Annotated[list[Reason], Field(min_length=1, max_length=50)]


class BeneficiaryDecision(Model):
    at: datetime
    actor: Actor
    action: str
    reasons: list[Reason] = []


class BeneficiaryStatus(Model):
    request_id: str
    status: BeneficiaryStatusName
    generator_installation: str | None = None
    modality: str | None = None
    allocation: Allocation | None = None
    effective_from: date | None = None
    due_at: datetime | None = None
    next_actor: str | None = None
    sla_breaches: list[SlaBreach] = []
    notifications: list[Notification] = []
    decisions: list[BeneficiaryDecision] = []
    refusal_reasons: list[Problem] = []
    # The updates the current status accepts and who may send them (domain/rules).
    actions: list[Action] = []
    # Bumped by every recorded step; equals the ``sequence`` of an update's ack.
    sequence: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
