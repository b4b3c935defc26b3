"""``TechnicianRegistration``: cadastro do Responsável Técnico (DOMAIN.md, process 1).

The RT's registration waits in PENDING_REVIEW for up to 3 business days (rule
``technician_review``): the analysts get a reminder before the due date, and once it
passes the breach is recorded and the supervisor told, while approve/reject stay open.
Approval sends the three e-mails of the guide; the secrets they carry are created inside
that activity, never here.

Update handlers decide under a lock and queue their side effects; the main loop drains the
queue in order, and the review deadline is watched by a task of its own. An update answers
once its decision is taken, and a mail outage delays e-mails, never decisions nor the
deadline's reminder and breach.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Callable, Union

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.policies import Deadline
    from models.activities import (
        CredentialsRequest,
        EmailRequest,
        EmailResult,
        IntakeCheck,
        IntakeResult,
        TechnicianRow,
        Transition,
    )
    from models.common import (
        Actor,
        Decision,
        DeadlineRecord,
        Notification,
        Problem,
        Reason,
        SlaBreach,
        parse_or_problems,
        parse_or_refuse,
    )
    from models.ids import technician_id
    from models.technician import (
        TechnicianApproveArgs,
        TechnicianInput,
        TechnicianRejectArgs,
        TechnicianStatus,
    )

from workflows import common
from workflows.common import (
    reasons_context,
    require_reasons,
    require_role,
    require_status,
    upsert_changed,
)

# TechnicianInput carries no policy and both shipped policies agree on this rule.
POLICY = "seed"
RULE = "technician_review"
DECIDERS = ("analyst", "supervisor")
PROCESS_LABEL = "Cadastro de Responsável Técnico"
ID_PREFIX = "gd-technician-"
# Patch ids (workflow.patched; docs/PATCHING.md): histories written before still replay.
DEADLINE_WATCH = "technician-deadline-watch-v1"

Effect = Union[Transition, EmailRequest, CredentialsRequest]


@workflow.defn(name="TechnicianRegistration")
class TechnicianRegistrationWorkflow:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.input: TechnicianInput | None = None
        # Until intake answers, nobody may decide yet (CONTRACT extension: "RECEIVED").
        self.status = "RECEIVED"
        self.refusal: list[Problem] = []
        self.seq = 0
        self.deadline: Deadline | None = None
        self.reminded = False
        self.breached = False
        self.sla_breaches: list[SlaBreach] = []
        self.decisions: list[Decision] = []
        self.deadlines: list[DeadlineRecord] = []
        self.notifications: list[Notification] = []
        self.pending: list[Effect] = []
        self.search_attributes: dict[str, Any] = {}
        self.created_at: datetime | None = None
        self.updated_at: datetime | None = None

    # --- main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: Any) -> TechnicianStatus:
        # ``raw`` is undecoded JSON: a payload failing pydantic inside the converter would
        # leave the workflow stuck with no message (TEMPORAL_NOTES.md).
        # First thing in the run, before any local activity (docs/PATCHING.md).
        watching = workflow.patched(DEADLINE_WATCH)
        self.created_at = workflow.now()
        if await self._intake(raw):
            await self._open_review()
        if watching and self.status == "PENDING_REVIEW":
            return await self._run_watching()
        return await self._run_before_watch()

    async def _run_watching(self) -> TechnicianStatus:
        """Side effects in order, the review deadline in a task of its own
        (``common.run_watching``)."""
        await common.run_watching(
            lock=self.lock,
            drain=self._drain,
            queued=lambda: bool(self.pending),
            finished=lambda: self.status != "PENDING_REVIEW",
            next_instant=self._next_timer,
            act=self._on_timer,
        )
        return self._snapshot()

    async def _run_before_watch(self) -> TechnicianStatus:
        """The loop of histories written before DEADLINE_WATCH (and of a refused intake):
        the timer ran between two side effects, so during an outage it fired late."""
        while True:
            await self._drain()
            if self.status != "PENDING_REVIEW":
                break
            await self._wait_for_decision_or_timer()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain()
        return self._snapshot()

    async def _drain(self) -> None:
        """Run queued side effects in order; a handler may queue more meanwhile."""
        while self.pending:
            effect = self.pending[0]
            if isinstance(effect, CredentialsRequest):
                self.notifications.extend(await _send_credentials(effect))
            else:
                note = await common.run_effect(effect)
                if note is not None:
                    self.notifications.append(note)
            self.pending.pop(0)

    async def _wait_for_decision_or_timer(self) -> None:
        def changed() -> bool:
            return bool(self.pending) or self.status != "PENDING_REVIEW"

        if not await common.wait_for_change_or(self._next_timer(), changed):
            return
        async with self.lock:
            if self.status == "PENDING_REVIEW":
                self._on_timer()

    def _next_timer(self) -> datetime | None:
        deadline = self.deadline
        if deadline is None:
            return None
        if deadline.remind_at and not self.reminded and deadline.remind_at < deadline.due_at:
            return deadline.remind_at
        return None if self.breached else deadline.due_at

    def _on_timer(self) -> None:
        deadline = self.deadline
        assert deadline is not None
        if deadline.remind_at and not self.reminded and deadline.remind_at < deadline.due_at:
            self.reminded = True
            self._transition("reminder", data={"rule": RULE})
            self._email(
                "deadline_reminder", ["role:analysts"], key_step="reminder", **self._internal()
            )
            return
        # Late is the distributor's fault: record and escalate, never decide automatically.
        self.breached = True
        breach = SlaBreach(step=RULE, due_at=deadline.due_at, breached_at=workflow.now())
        self.sla_breaches.append(breach)
        self._transition(
            "sla_breach", data={"rule": RULE, "breached_at": common.iso(breach.breached_at)}
        )
        self._email(
            "sla_escalation",
            ["role:supervisor"],
            key_step="sla_escalation",
            breached_at=breach.breached_at.isoformat(),
            **self._internal(),
        )

    # --- intake ------------------------------------------------------------------------

    async def _intake(self, raw: Any) -> bool:
        workflow_id = workflow.info().workflow_id
        result: IntakeResult = await workflow.execute_activity(
            "validate_intake",
            IntakeCheck(process="technician", workflow_id=workflow_id, raw=raw),
            result_type=IntakeResult,
            **common.STORE_OPTIONS,
        )
        problems = list(result.problems)
        parsed = None
        if not problems:
            parsed, problems = parse_or_problems(TechnicianInput, result.normalized or {})
        if parsed is not None:
            expected = technician_id(parsed.council, parsed.uf, parsed.registration)
            # The id is what makes a second registration of the same RT join this one.
            if expected != workflow_id:
                problems.append(
                    Problem(
                        field="registration",
                        code="workflow_id_mismatch",
                        message=f"o id do processo deve ser {expected} "
                        "(conselho, UF e registro normalizados)",
                    )
                )
        if problems:
            self.status = "REFUSED"
            self.refusal = problems
            self._transition("refused", data={"problems": [p.model_dump() for p in problems]})
            return False
        self.input = parsed
        return True

    async def _open_review(self) -> None:
        inp = self._input()
        self.deadline = await common.compute_deadline(POLICY, RULE, workflow.now())
        self.deadlines.append(common.deadline_record(self.deadline))
        self.status = "PENDING_REVIEW"
        self._transition(
            "submitted",
            actor=Actor(id=inp.key, role="technician"),
            data={"rule": RULE, "due_at": common.iso(self.deadline.due_at), "policy": POLICY},
        )
        self._email(
            "technician_received",
            [inp.email],
            key_step="received",
            recipient_name=inp.name,
            due_at=common.iso(self.deadline.due_at),
            title=inp.title,
        )

    # --- state helpers -----------------------------------------------------------------

    def _input(self) -> TechnicianInput:
        assert self.input is not None
        return self.input

    def _key(self) -> str:
        if self.input is not None:
            return self.input.key
        return workflow.info().workflow_id.removeprefix(ID_PREFIX)

    def _due_at(self) -> datetime | None:
        if self.status == "PENDING_REVIEW" and self.deadline is not None:
            return self.deadline.due_at
        return None

    def _next_actor(self) -> str | None:
        if self.status != "PENDING_REVIEW":
            return None
        return "analyst" if self.input is not None else "system"

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
        if self.input is not None:  # a refused input may not even have a valid key
            row = TechnicianRow(
                key=self.input.key,
                workflow_id=workflow_id,
                status=self.status,
                updated_at=self.updated_at,
                email=self.input.email,
            )
        self.pending.append(
            Transition(
                workflow_id=workflow_id,
                event_key=f"{self.seq:04d}-{action}",
                process="technician",
                action=action,
                status=self.status,
                at=self.updated_at,
                actor=actor,
                reasons=reasons or [],
                data=data or {},
                technician=row,
            )
        )
        upsert_changed(
            self.search_attributes,
            GdStatus=self.status,
            GdKind="technician",
            GdTechnician=self.input.key if self.input is not None else None,
            GdNextActor=self._next_actor(),
            GdDueAt=self._due_at(),
            GdSlaBreached=bool(self.sla_breaches),
        )

    def _email(self, template: str, to: list[str], *, key_step: str, **context: Any) -> None:
        # The run id tells registrations apart: after a rejection the RT registers again
        # under the same workflow id, and must get that run's e-mails.
        info = workflow.info()
        self.pending.append(
            EmailRequest(
                key=f"{info.workflow_id}:{key_step}:{info.run_id}",
                template=template,
                to=to,
                context={"technician": self._key(), **context},
            )
        )

    def _internal(self) -> dict[str, Any]:
        """Context of the analysts' and supervisor's e-mails: no personal data needed."""
        assert self.deadline is not None
        return {
            "request_id": self._key(),
            "workflow_id": workflow.info().workflow_id,
            "process": PROCESS_LABEL,
            "step": RULE,
            "due_at": common.iso(self.deadline.due_at),
        }

    def _decide(self, actor: Actor, action: str, status: str, reasons: list[Reason]) -> None:
        self.decisions.append(
            Decision(at=workflow.now(), actor=actor, action=action, reasons=reasons)
        )
        self.status = status

    def _snapshot(self) -> TechnicianStatus:
        return TechnicianStatus(
            technician=self._key(),
            status=self.status,  # type: ignore[arg-type]
            due_at=self._due_at(),
            next_actor=self._next_actor(),
            sla_breaches=list(self.sla_breaches),
            decisions=list(self.decisions),
            deadlines=list(self.deadlines),
            notifications=list(self.notifications),
            refusal_reasons=list(self.refusal),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    # --- query -------------------------------------------------------------------------

    @workflow.query(name="status")
    def status_query(self) -> TechnicianStatus:
        return self._snapshot()

    # --- updates -----------------------------------------------------------------------
    # A validator refuses without writing history; the handler checks again under the lock
    # because two updates validated against the same state may both be accepted.

    async def _apply(
        self, check: Callable[[Any], Any], args: Any, act: Callable[[Any], None]
    ) -> TechnicianStatus:
        await common.decide(self.lock, check, args, act)
        return self._snapshot()

    def _require_open(self, action: str) -> None:
        if self.status == "RECEIVED":
            common.refuse(f"{action}: o cadastro ainda está em validação; tente novamente")
        require_status(self.status, ("PENDING_REVIEW",), action)

    def _check_approve(self, args: Any) -> TechnicianApproveArgs:
        parsed = parse_or_refuse(TechnicianApproveArgs, args)
        self._require_open("approve")
        require_role(parsed.actor, DECIDERS, "approve")
        return parsed

    def _check_reject(self, args: Any) -> TechnicianRejectArgs:
        parsed = parse_or_refuse(TechnicianRejectArgs, args)
        self._require_open("reject")
        require_role(parsed.actor, DECIDERS, "reject")
        require_reasons(parsed.reasons, "reject_technician", "reasons")
        return parsed

    @workflow.update(name="approve")
    async def approve(self, args: Any) -> TechnicianStatus:
        return await self._apply(self._check_approve, args, self._approved)

    @approve.validator
    def _validate_approve(self, args: Any) -> None:
        self._check_approve(args)

    def _approved(self, parsed: TechnicianApproveArgs) -> None:
        inp = self._input()
        self._decide(parsed.actor, "approve", "APPROVED", [])
        self._transition("approved", actor=parsed.actor)
        info = workflow.info()
        self.pending.append(
            CredentialsRequest(
                key=f"{info.workflow_id}:credentials:{info.run_id}",
                technician=inp.key,
                name=inp.name,
                email=inp.email,
                cpf=inp.cpf,
            )
        )

    @workflow.update(name="reject")
    async def reject(self, args: Any) -> TechnicianStatus:
        return await self._apply(self._check_reject, args, self._rejected)

    @reject.validator
    def _validate_reject(self, args: Any) -> None:
        self._check_reject(args)

    def _rejected(self, parsed: TechnicianRejectArgs) -> None:
        inp = self._input()
        self._decide(parsed.actor, "reject", "REJECTED", list(parsed.reasons))
        self._transition("rejected", actor=parsed.actor, reasons=list(parsed.reasons))
        self._email(
            "technician_rejected",
            [inp.email],
            key_step="rejected",
            recipient_name=inp.name,
            reasons=reasons_context(parsed.reasons),
        )


async def _send_credentials(request: CredentialsRequest) -> list[Notification]:
    try:
        results: list[EmailResult] = await workflow.execute_activity(
            "send_technician_credentials",
            request,
            result_type=list[EmailResult],
            **common.MAIL_OPTIONS,
        )
    except ActivityError as error:
        return [
            Notification(
                key=request.key, template="technician_credentials", status="refused",
                detail=common.activity_failure(error),
            )
        ]
    return [
        Notification(key=r.key, template=r.template, status=r.status, detail=r.detail)
        for r in results
    ]
