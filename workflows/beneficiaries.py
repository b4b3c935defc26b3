"""``BeneficiaryRegistration``: cadastramento de UC recebedora (DOMAIN.md, process 3.8).

The holder names the UCs that receive the generator's credits (percentages or a priority
order); intake checks the allocation rules and that the generating request is CONNECTED.
An analyst confirms — the allocation takes effect from the next billing cycle — or
rejects with catalogue reasons. No regulatory deadline applies to this review, so no
timer runs. Started on its own (a later change) or as a child of ``AccessRequest``.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any, Callable, Union

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.calendar import local_date
    from models.activities import (
        AllocationRecord,
        EmailRequest,
        IntakeCheck,
        IntakeResult,
        Transition,
    )
    from models.beneficiaries import (
        BeneficiaryDecision,
        BeneficiaryInput,
        BeneficiaryStatus,
        ConfirmArgs,
        RejectArgs,
    )
    from models.common import (
        Actor,
        Notification,
        Problem,
        Reason,
        parse_or_problems,
        parse_or_refuse,
    )
    from models.ids import beneficiaries_id

from workflows import common
from workflows.common import (
    reasons_context,
    require_reasons,
    require_role,
    require_status,
    upsert_changed,
)

DECIDERS = ("analyst", "supervisor")
ID_PREFIX = "gd-beneficiaries-"
# A change takes effect from the next billing cycle (DOMAIN.md); cycles are monthly.
BILLING_CYCLE_MONTHS = 1


def next_billing_cycle(moment: datetime, months: int = BILLING_CYCLE_MONTHS) -> date:
    """First day of the month ``months`` after the local (America/Sao_Paulo) date of ``moment``."""
    day = local_date(moment)
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


@workflow.defn(name="BeneficiaryRegistration")
class BeneficiaryRegistrationWorkflow:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.input: BeneficiaryInput | None = None
        # Until intake answers, nobody may decide yet (CONTRACT extension: "RECEIVED").
        self.status = "RECEIVED"
        self.refusal: list[Problem] = []
        self.seq = 0
        self.effective_from: date | None = None
        self.decisions: list[BeneficiaryDecision] = []
        self.notifications: list[Notification] = []
        self.pending: list[Union[Transition, EmailRequest]] = []
        self.search_attributes: dict[str, Any] = {}
        self.created_at: datetime | None = None
        self.updated_at: datetime | None = None

    # --- main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: Any) -> BeneficiaryStatus:
        # ``raw`` is undecoded JSON: a payload failing pydantic inside the converter would
        # leave the workflow stuck with no message (TEMPORAL_NOTES.md).
        self.created_at = workflow.now()
        if await self._intake(raw):
            self._open_review()
        while True:
            await self._drain()
            if self.status != "PENDING_REVIEW":
                break
            await workflow.wait_condition(
                lambda: bool(self.pending) or self.status != "PENDING_REVIEW"
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain()
        return self._snapshot()

    async def _drain(self) -> None:
        while self.pending:
            note = await common.run_effect(self.pending[0])
            if note is not None:
                self.notifications.append(note)
            self.pending.pop(0)

    # --- intake ------------------------------------------------------------------------

    async def _intake(self, raw: Any) -> bool:
        workflow_id = workflow.info().workflow_id
        result: IntakeResult = await workflow.execute_activity(
            "validate_intake",
            IntakeCheck(process="beneficiaries", workflow_id=workflow_id, raw=raw),
            result_type=IntakeResult,
            **common.STORE_OPTIONS,
        )
        problems = list(result.problems)
        parsed = None
        if not problems:
            parsed, problems = parse_or_problems(BeneficiaryInput, result.normalized or {})
        if parsed is not None and beneficiaries_id(parsed.request_id) != workflow_id:
            problems.append(
                Problem(
                    field="request_id",
                    code="workflow_id_mismatch",
                    message=f"o id do processo deve ser {beneficiaries_id(parsed.request_id)}",
                )
            )
        if problems:
            self.status = "REFUSED"
            self.refusal = problems
            self._transition("refused", data={"problems": [p.model_dump() for p in problems]})
            return False
        self.input = parsed
        return True

    def _open_review(self) -> None:
        inp = self._input()
        self.status = "PENDING_REVIEW"
        self._transition("received", actor=inp.actor)
        self._email("beneficiaries_received", key_step="received")

    # --- state helpers -----------------------------------------------------------------

    def _input(self) -> BeneficiaryInput:
        assert self.input is not None
        return self.input

    def _request_id(self) -> str:
        if self.input is not None:
            return self.input.request_id
        return workflow.info().workflow_id.removeprefix(ID_PREFIX)

    def _next_actor(self) -> str | None:
        if self.status != "PENDING_REVIEW":
            return None
        return "analyst" if self.input is not None else "system"

    def _units(self) -> list[dict[str, Any]]:
        return [u.model_dump(mode="json") for u in self._input().allocation.units]

    def _transition(
        self,
        action: str,
        *,
        actor: Actor | None = None,
        reasons: list[Reason] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.seq += 1
        self.updated_at = workflow.now()
        workflow_id = workflow.info().workflow_id
        row = None
        if self.input is not None:  # the store keeps every allocation, current and earlier
            inp = self.input
            row = AllocationRecord(
                workflow_id=workflow_id,
                request_id=inp.request_id,
                generator_installation=inp.generator_installation,
                modality=inp.modality,
                mode=inp.allocation.mode,
                units=self._units(),
                status=self.status,
                effective_from=self.effective_from,
                recorded_at=self.updated_at,
            )
        self.pending.append(
            Transition(
                workflow_id=workflow_id,
                event_key=f"{self.seq:04d}-{action}",
                process="beneficiaries",
                action=action,
                status=self.status,
                at=self.updated_at,
                actor=actor,
                reasons=reasons or [],
                data=data or {},
                allocation=row,
            )
        )
        upsert_changed(
            self.search_attributes,
            GdStatus=self.status,
            GdKind="beneficiaries",
            GdNextActor=self._next_actor(),
        )

    def _email(self, template: str, *, key_step: str, **context: Any) -> None:
        inp = self._input()
        if inp.notify_email is None:  # started without an address: nobody to tell
            return
        # The run id tells registrations apart: a later change reuses the workflow id.
        info = workflow.info()
        self.pending.append(
            EmailRequest(
                key=f"{info.workflow_id}:{key_step}:{info.run_id}",
                template=template,
                to=[inp.notify_email],
                context={
                    "request_id": inp.request_id,
                    "generator_installation": inp.generator_installation,
                    "modality": inp.modality,
                    **context,
                },
            )
        )

    def _decide(self, actor: Actor, action: str, status: str, reasons: list[Reason]) -> None:
        self.decisions.append(
            BeneficiaryDecision(at=workflow.now(), actor=actor, action=action, reasons=reasons)
        )
        self.status = status

    def _snapshot(self) -> BeneficiaryStatus:
        inp = self.input
        return BeneficiaryStatus(
            request_id=self._request_id(),
            status=self.status,  # type: ignore[arg-type]
            generator_installation=inp.generator_installation if inp else None,
            modality=inp.modality if inp else None,
            allocation=inp.allocation if inp else None,
            effective_from=self.effective_from,
            next_actor=self._next_actor(),
            notifications=list(self.notifications),
            decisions=list(self.decisions),
            refusal_reasons=list(self.refusal),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    # --- query -------------------------------------------------------------------------

    @workflow.query(name="status")
    def status_query(self) -> BeneficiaryStatus:
        return self._snapshot()

    # --- updates -----------------------------------------------------------------------
    # A validator refuses without writing history; the handler checks again under the lock
    # because two updates validated against the same state may both be accepted.

    async def _apply(
        self, check: Callable[[Any], Any], args: Any, act: Callable[[Any], None]
    ) -> BeneficiaryStatus:
        await common.decide(self.lock, check, args, act)
        return self._snapshot()

    def _require_open(self, action: str) -> None:
        if self.status == "RECEIVED":
            common.refuse(f"{action}: o cadastramento ainda está em validação; tente novamente")
        require_status(self.status, ("PENDING_REVIEW",), action)

    def _check_confirm(self, args: Any) -> ConfirmArgs:
        parsed = parse_or_refuse(ConfirmArgs, args)
        self._require_open("confirm")
        require_role(parsed.actor, DECIDERS, "confirm")
        return parsed

    def _check_reject(self, args: Any) -> RejectArgs:
        parsed = parse_or_refuse(RejectArgs, args)
        self._require_open("reject")
        require_role(parsed.actor, DECIDERS, "reject")
        require_reasons(parsed.reasons, "reject_beneficiaries", "reasons")
        return parsed

    @workflow.update(name="confirm")
    async def confirm(self, args: Any) -> BeneficiaryStatus:
        return await self._apply(self._check_confirm, args, self._confirmed)

    @confirm.validator
    def _validate_confirm(self, args: Any) -> None:
        self._check_confirm(args)

    def _confirmed(self, parsed: ConfirmArgs) -> None:
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
            key_step="registered",
            effective_from=self.effective_from.isoformat(),
            mode=inp.allocation.mode,
            units=[
                {
                    "installation_number": u.installation_number,
                    "percent": str(u.percent) if u.percent is not None else None,
                    "priority": u.priority,
                }
                for u in inp.allocation.units
            ],
        )

    @workflow.update(name="reject")
    async def reject(self, args: Any) -> BeneficiaryStatus:
        return await self._apply(self._check_reject, args, self._rejected)

    @reject.validator
    def _validate_reject(self, args: Any) -> None:
        self._check_reject(args)

    def _rejected(self, parsed: RejectArgs) -> None:
        self._decide(parsed.actor, "reject", "REJECTED", list(parsed.reasons))
        self._transition("rejected", actor=parsed.actor, reasons=list(parsed.reasons))
        self._email(
            "beneficiaries_rejected", key_step="rejected", reasons=reasons_context(parsed.reasons)
        )
