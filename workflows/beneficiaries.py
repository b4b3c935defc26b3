"""``BeneficiaryRegistration``: cadastramento de UC recebedora (DOMAIN.md, process 3.8).

The holder names the UCs that receive the generator's credits (percentages or a priority
order); intake checks the allocation rules and that the generating request is CONNECTED.
An analyst confirms — the allocation takes effect from the next billing cycle — or
rejects with catalogue reasons. No regulatory deadline applies to this review, so no
timer runs. Started on its own (a later change) or as a child of ``AccessRequest``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.calendar import local_date
    from domain.rules import BENEFICIARIES
    from models.activities import AllocationRecord
    from models.beneficiaries import (
        BeneficiaryDecision,
        BeneficiaryInput,
        BeneficiaryStatus,
        ConfirmArgs,
        RejectArgs,
    )
    from models.common import Problem
    from models.ids import beneficiaries_id
    from models.names import Updates, Workflows

from workflows import common
from workflows.common import reasons_context
from workflows.review import PENDING, ReviewWorkflow

ID_PREFIX = "gd-beneficiaries-"
# A change takes effect from the next billing cycle (DOMAIN.md); cycles are monthly.
BILLING_CYCLE_MONTHS = 1
# Who the actor is (the orchestrator's own id refused), as AccessRequest's PARTY_CHECK.
PARTY_CHECK = "beneficiaries-party-check-v1"


def next_billing_cycle(moment: datetime, months: int = BILLING_CYCLE_MONTHS) -> date:
    """First day of the month ``months`` after the local (America/Sao_Paulo) date of ``moment``."""
    day = local_date(moment)
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


@workflow.defn(name=Workflows.BENEFICIARY_REGISTRATION)
class BeneficiaryRegistrationWorkflow(ReviewWorkflow):
    PROCESS = BENEFICIARIES
    STORE_PROCESS = "beneficiaries"
    ARGS = {Updates.CONFIRM: ConfirmArgs, Updates.REJECT: RejectArgs}
    ID_PREFIX = ID_PREFIX
    INPUT = BeneficiaryInput
    KEY_FIELD = "request_id"
    PARTY_CHECK = PARTY_CHECK
    REJECT_USE = "reject_beneficiaries"

    input: BeneficiaryInput | None

    def __init__(self) -> None:
        super().__init__()
        self.effective_from: date | None = None

    @workflow.run
    async def run(self, raw: Any) -> BeneficiaryStatus:
        # No deadline: the loop only runs the effects until decided.
        return await self._review(raw, watching=False)

    # --- intake ------------------------------------------------------------------------

    def _id_problems(self, parsed: BeneficiaryInput, workflow_id: str) -> list[Problem]:
        if beneficiaries_id(parsed.request_id) == workflow_id:
            return []
        return [
            Problem(
                field="request_id",
                code="workflow_id_mismatch",
                message=f"o id do processo deve ser {beneficiaries_id(parsed.request_id)}",
            )
        ]

    async def _open_review(self) -> None:
        inp = self._input()
        self.state.status = PENDING
        self._transition("received", actor=inp.actor)
        self._email("beneficiaries_received", "received", {})

    # --- what it records -----------------------------------------------------------------

    def _units(self) -> list[dict[str, Any]]:
        return [u.model_dump(mode="json") for u in self._input().allocation.units]

    def _row(self) -> dict[str, Any]:
        if self.input is None:
            return {}
        # The store keeps every allocation, current and earlier.
        inp = self.input
        return {
            "allocation": AllocationRecord(
                workflow_id=workflow.info().workflow_id,
                request_id=inp.request_id,
                generator_installation=inp.generator_installation,
                modality=inp.modality,
                mode=inp.allocation.mode,
                units=self._units(),
                status=self.state.status,
                effective_from=self.effective_from,
                recorded_at=self.state.updated_at,
            )
        }

    def _search_attributes(self) -> dict[str, Any]:
        return {
            "GdStatus": self.state.status,
            "GdKind": "beneficiaries",
            "GdNextActor": self._next_actor(),
        }

    def _email_base(self) -> dict[str, Any]:
        inp = self._input()
        return {
            "request_id": inp.request_id,
            "generator_installation": inp.generator_installation,
            "modality": inp.modality,
        }

    def _email(self, template: str, key_step: str, context: dict[str, Any]) -> None:
        inp = self._input()
        if inp.notify_email is None:  # started without an address: nobody to tell
            return
        self._queue_email(template, [inp.notify_email], key_step, context)

    def _snapshot(self) -> BeneficiaryStatus:
        inp = self.input
        state = self.state
        return BeneficiaryStatus(
            request_id=self._key(),
            status=state.status,  # type: ignore[arg-type]
            generator_installation=inp.generator_installation if inp else None,
            modality=inp.modality if inp else None,
            allocation=inp.allocation if inp else None,
            effective_from=self.effective_from,
            next_actor=self._next_actor(),
            notifications=list(state.notifications),
            decisions=[
                BeneficiaryDecision(at=d.at, actor=d.actor, action=d.action, reasons=d.reasons)
                for d in state.decisions
            ],
            refusal_reasons=list(state.refusal),
            actions=self._actions(),
            sequence=state.seq,
            created_at=state.created_at,
            updated_at=state.updated_at,
        )

    # --- updates (workflows/review.py; who and when: domain.rules.BENEFICIARIES) ---------

    confirm = common.process_update(Updates.CONFIRM)
    reject = common.process_update(Updates.REJECT)

    def _confirm(self, parsed: ConfirmArgs) -> None:
        inp = self._input()
        self.effective_from = next_billing_cycle(workflow.now())
        self._decide(parsed.actor, "confirm", "REGISTERED", [])
        self._transition(
            "registered",
            actor=parsed.actor,
            data={"effective_from": self.effective_from.isoformat()},
        )
        self._email(
            "beneficiaries_registered",
            "registered",
            {
                "effective_from": self.effective_from.isoformat(),
                "mode": inp.allocation.mode,
                "units": [
                    {
                        "installation_number": u.installation_number,
                        "percent": str(u.percent) if u.percent is not None else None,
                        "priority": u.priority,
                    }
                    for u in inp.allocation.units
                ],
            },
        )

    def _reject(self, parsed: RejectArgs) -> None:
        self._record_rejection(parsed.actor, parsed.reasons)
        self._email(
            "beneficiaries_rejected", "rejected", {"reasons": reasons_context(parsed.reasons)}
        )
