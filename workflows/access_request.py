"""``AccessRequest``: a consulta or a solicitação de acesso, from intake to connection.

Update handlers change the state under a lock and queue their side effects (store
transition, e-mails, child workflow); the main loop drains that queue in order, and a
second task watches the deadline of the current status. So an update answers as soon as
its decision is recorded, and an e-mail outage delays e-mails, never decisions nor
deadlines.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.limits import check_growth
    from domain.policies import Deadline
    from models.access import (
        REANALYSIS_MOTIVE,
        TERMINAL_STATUSES,
        AccessRequestInput,
        input_digest,
        AccessStatus,
        AnswerInquiryArgs,
        ApproveArgs,
        AttachCorrectionsArgs,
        DeclareWorksArgs,
        PauseClockArgs,
        RecordInspectionArgs,
        RegisterAprArgs,
        ReproveArgs,
        RequestInspectionArgs,
        RequestReanalysisArgs,
        SuspendArgs,
        WithdrawArgs,
    )
    from models.activities import (
        EmailRequest,
        IntakeCheck,
        IntakeResult,
        IssuedNumbers,
        NumberRequest,
        RequestRow,
        Transition,
    )
    from models.common import (
        Actor,
        ActorArgs,
        Decision,
        DeadlineRecord,
        DocumentRef,
        Reason,
        SlaBreach,
        parse_or_refuse,
    )
    from models.access_state import AccessState, ActiveDeadline, StartChild
    from models.ids import beneficiaries_id

from workflows import common
from workflows.common import refuse, require_reasons, require_role, require_status

NEXT_ACTOR = {
    "AWAITING_APR": "technician",
    "LAPSED": "technician",
    "UNDER_ANALYSIS": "analyst",
    "SUSPENDED": "technician",
    "REPROVED": "technician",
    "APPROVED": "customer",
    "INSPECTION_REQUESTED": "inspector",
    "INSPECTION_REPROVED": "customer",
    "AWAITING_ANSWER": "analyst",
}
# The deadline each waiting status runs under (rules of domain/policies).
STATUS_RULE = {
    "AWAITING_APR": "apr_window",
    "UNDER_ANALYSIS": "parecer",
    "SUSPENDED": "pendencies_answer",
    "REPROVED": "pendencies_answer",
    "LAPSED": "pendencies_answer",
    "APPROVED": "inspection_request_window",
    "INSPECTION_REPROVED": "inspection_request_window",
    "INSPECTION_REQUESTED": "inspection",
    "AWAITING_ANSWER": "inquiry_answer",
}
PAUSABLE = ("UNDER_ANALYSIS", "INSPECTION_REQUESTED", "AWAITING_ANSWER")
DECIDERS = ("analyst", "supervisor")
REQUESTERS = ("customer", "technician")
REQUIRED_APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")
# Analysis cycles per run before continuing as new, so a long reanalysis loop keeps a
# bounded history.
CYCLES_PER_RUN = 4
# Patch ids (workflow.patched): histories written before each change still replay.
APPROVE_RECORDS_WORKS = "approve-records-works-v1"
# The deadline is watched by its own task, not between two side effects of the main loop.
DEADLINE_WATCH = "deadline-watch-v1"


@workflow.defn(name="AccessRequest")
class AccessRequestWorkflow:
    @workflow.init
    def __init__(self, raw: dict[str, Any], carried: AccessState | None = None) -> None:
        # The carried state is there before the first task, so an update reaching a
        # continued run at once sees the request, not an empty intake.
        self.state: AccessState | None = carried
        self.refusal: list = []
        self.refused = False
        self.raw_request_id: str = ""
        self.raw_kind: str = "request"
        self.lock = asyncio.Lock()

    # --- main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None) -> AccessStatus:
        # Asked first, in the run's first workflow task: asked after the intake's local
        # activity, the marker can land in a later task than that result, and a replay
        # (a query after a worker restart) no longer finds it (docs/PATCHING.md).
        watching = workflow.patched(DEADLINE_WATCH)
        if carried is None:
            await self._intake(raw)
        if watching and self.state is not None:
            return await self._run_watching(raw)
        return await self._run_before_watch(raw)

    async def _run_before_watch(self, raw: dict[str, Any]) -> AccessStatus:
        """The loop of histories written before DEADLINE_WATCH (and of a refused intake):
        the timer ran between two side effects, so while one waited out an outage a
        deadline fell due late."""
        while True:
            await self._drain()
            if self.state is None or self.state.status in TERMINAL_STATUSES:
                break
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self.state.pending:
                    self.state.cycles_this_run = 0
                    workflow.continue_as_new(args=[raw, self.state])
            await self._wait_for_change_or_deadline()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain()
        return self._snapshot()

    async def _run_watching(self, raw: dict[str, Any]) -> AccessStatus:
        """Side effects in order, the deadline in a task of its own (``common.run_watching``):
        on time even while an e-mail waits out an outage."""
        state = self.state
        assert state is not None

        async def maybe_continue_as_new() -> None:
            if not self._should_continue_as_new():
                return
            # Not while an update or the deadline task is halfway through a change.
            await workflow.wait_condition(
                lambda: workflow.all_handlers_finished() and not self.lock.locked()
            )
            if not state.pending and state.status not in TERMINAL_STATUSES:
                state.cycles_this_run = 0
                workflow.continue_as_new(args=[raw, state])

        await common.run_watching(
            lock=self.lock,
            drain=self._drain,
            queued=lambda: bool(state.pending),
            finished=lambda: state.status in TERMINAL_STATUSES,
            next_instant=self._next_timer,
            act=self._on_timer,
            between=maybe_continue_as_new,
        )
        return self._snapshot()

    def _should_continue_as_new(self) -> bool:
        assert self.state is not None
        return (
            self.state.cycles_this_run >= CYCLES_PER_RUN
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _drain(self) -> None:
        """Run queued side effects in order; a handler may queue more meanwhile."""
        while self.state is not None and self.state.pending:
            effect = self.state.pending[0]
            if isinstance(effect, StartChild):
                await self._start_child(effect)
            else:
                note = await common.run_effect(effect)
                if note is not None:
                    self.state.notifications.append(note)
            self.state.pending.pop(0)

    async def _wait_for_change_or_deadline(self) -> None:
        state = self.state
        assert state is not None
        seen = (state.seq, state.status)
        changed = lambda: bool(state.pending) or (state.seq, state.status) != seen  # noqa: E731
        if not await common.wait_for_change_or(self._next_timer(), changed):
            return
        async with self.lock:
            if (state.seq, state.status) == seen:
                await self._on_timer()

    def _next_timer(self) -> datetime | None:
        deadline = self.state.deadline if self.state else None
        if deadline is None or deadline.paused_at is not None:
            return None
        if deadline.remind_at and not deadline.reminded and deadline.remind_at < deadline.due_at:
            return deadline.remind_at
        if not deadline.breached:
            return deadline.due_at
        return None

    async def _on_timer(self) -> None:
        state = self.state
        assert state is not None and state.deadline is not None
        deadline = state.deadline
        if deadline.remind_at and not deadline.reminded and deadline.remind_at < deadline.due_at:
            deadline.reminded = True
            self._email("deadline_reminder", ["role:analysts"], step=deadline.rule)
            self._transition("reminder", data={"rule": deadline.rule})
            return
        deadline.breached = True
        if deadline.on_lapse == "escalate":
            breach = SlaBreach(step=deadline.rule, due_at=deadline.due_at, breached_at=workflow.now())
            state.sla_breaches.append(breach)
            self._email(
                "sla_escalation",
                ["role:supervisor"],
                step=deadline.rule,
                breached_at=breach.breached_at.isoformat(),
            )
            self._transition("sla_breach", data={"rule": deadline.rule})
        elif deadline.on_lapse == "lapse":
            state.corrections_attached = False
            state.apr_registered_after_lapse = False
            await self._set_deadline("pendencies_answer", workflow.now())
            self._decide(None, "lapse", reasons=[Reason(code="NS-PRAZO-APR-EXPIRADO")])
            self._move("LAPSED", "apr_window_lapsed", email=("apr_lapsed", self._requesters()))
        else:
            self._decide(None, "cancel_lapse", text=f"prazo {deadline.rule} esgotado")
            self._move(
                "CANCELLED",
                "lapsed_cancelled",
                email=("cancelled", self._requesters()),
                extra={"cause": "lapsed", "reason": f"decurso do prazo ({deadline.rule})"},
            )

    # --- intake ------------------------------------------------------------------------

    async def _intake(self, raw: dict[str, Any]) -> None:
        info = workflow.info()
        if isinstance(raw, dict):
            self.raw_request_id = str(raw.get("request_id", ""))[:64]
            self.raw_kind = raw.get("kind") if raw.get("kind") in ("inquiry", "request") else "request"
        result: IntakeResult = await workflow.execute_activity(
            "validate_intake",
            IntakeCheck(process="access", workflow_id=info.workflow_id, raw=raw),
            result_type=IntakeResult,
            **common.STORE_OPTIONS,
        )
        now = workflow.now()
        if result.problems or result.normalized is None:
            self.refusal = result.problems
            self.refused = True
            common.upsert_search_attributes(GdStatus="REFUSED", GdKind=self.raw_kind)
            await common.record(
                Transition(
                    workflow_id=info.workflow_id,
                    event_key="0000-refused",
                    process="access",
                    action="refused",
                    status="REFUSED",
                    at=now,
                    data={"problems": [p.model_dump() for p in result.problems]},
                    request=RequestRow(
                        workflow_id=info.workflow_id,
                        request_id=self.raw_request_id or info.workflow_id,
                        kind=self.raw_kind,
                        status="REFUSED",
                        created_at=now,
                        updated_at=now,
                    ),
                )
            )
            return
        inp = AccessRequestInput.model_validate(result.normalized)
        self.state = AccessState(
            input=inp,
            status="RECEIVED",
            policy=inp.policy or "seed",
            created_at=now,
            updated_at=now,
            documents=list(inp.documents),
        )
        if inp.kind == "inquiry":
            await self._set_deadline("inquiry_answer", now)
            self._move("AWAITING_ANSWER", "received", email=("inquiry_received", [inp.customer.email]))
            return
        numbers: IssuedNumbers = await workflow.execute_activity(
            "issue_numbers",
            NumberRequest(workflow_id=info.workflow_id, step="intake"),
            result_type=IssuedNumbers,
            **common.STORE_OPTIONS,
        )
        self.state.service_note = numbers.service_note
        self.state.protocol = numbers.protocol
        self.state.service_notes.append(numbers.service_note)
        # Deadlines run on the workflow clock (the activity ran on the worker's clock).
        await self._set_deadline("apr_window", workflow.now())
        self._move("AWAITING_APR", "received", email=("request_received", self._requesters()))

    # --- state helpers -----------------------------------------------------------------

    def _requesters(self) -> list[str]:
        state = self.state
        assert state is not None
        recipients = [state.input.customer.email]
        if state.input.technician is not None:
            recipients.append(f"technician:{state.input.technician.key}")
        return recipients

    async def _set_deadline(self, rule: str, start: datetime, reason: str | None = None) -> None:
        state = self.state
        assert state is not None
        inp = state.input
        deadline: Deadline = await common.compute_deadline(
            state.policy,
            rule,
            start,
            generation_class=inp.generation.generation_class,
            works=state.works_declared,
            voltage_kv=inp.generation.voltage_kv,
        )
        state.deadline = ActiveDeadline(
            rule=rule,
            start=deadline.start,
            due_at=deadline.due_at,
            remind_at=deadline.remind_at,
            on_lapse=deadline.on_lapse,
        )
        state.deadlines.append(common.deadline_record(deadline, state.cycle, reason))

    def _decide(
        self,
        actor,
        action: str,
        *,
        reasons: list[Reason] | None = None,
        text: str | None = None,
        documents: list[DocumentRef] | None = None,
    ) -> None:
        state = self.state
        assert state is not None
        state.decisions.append(
            Decision(
                at=workflow.now(),
                actor=actor or Actor(id="gd-orchestrator", role="system"),
                action=action,
                reasons=reasons or [],
                text=text,
                service_note=state.service_note,
                documents=documents or [],
            )
        )

    def _move(
        self,
        status: str,
        action: str,
        *,
        actor=None,
        email: tuple[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        reasons: list[Reason] | None = None,
        documents: list[DocumentRef] | None = None,
        attachments: list[DocumentRef] | None = None,
    ) -> None:
        """Change status, drop a deadline that no longer applies, queue the effects."""
        state = self.state
        assert state is not None
        state.status = status
        if state.deadline is not None and STATUS_RULE.get(status) != state.deadline.rule:
            state.deadline = None
        if email is not None:
            self._email(email[0], email[1], attachments=attachments, **(extra or {}))
        self._transition(action, actor=actor, reasons=reasons, documents=documents, data=extra)

    def _transition(self, action: str, *, actor=None, reasons=None, documents=None, data=None) -> None:
        state = self.state
        assert state is not None
        state.seq += 1
        state.updated_at = workflow.now()
        info = workflow.info()
        deadline = state.deadline
        technician = state.input.technician.key if state.input.technician else None
        state.pending.append(
            Transition(
                workflow_id=info.workflow_id,
                event_key=f"{state.seq:04d}-{action}",
                process="access",
                action=action,
                status=state.status,
                at=state.updated_at,
                actor=actor,
                reasons=reasons or [],
                documents=documents or [],
                data={
                    **(data or {}),
                    "cycle": state.cycle,
                    "due_at": common.iso(deadline.due_at if deadline else None),
                    "rule": deadline.rule if deadline else None,
                    "service_note": state.service_note,
                },
                request=RequestRow(
                    workflow_id=info.workflow_id,
                    request_id=state.input.request_id,
                    kind=state.input.kind,
                    status=state.status,
                    generation_class=state.input.generation.generation_class,
                    installation_number=state.input.installation_number,
                    service_note=state.service_note,
                    protocol=state.protocol,
                    due_at=deadline.due_at if deadline else None,
                    due_rule=deadline.rule if deadline else None,
                    sla_breaches=len(state.sla_breaches),
                    technician=technician,
                    cycle=state.cycle,
                    created_at=state.created_at,
                    updated_at=state.updated_at,
                ),
            )
        )
        common.upsert_changed(
            state.search_attributes,
            GdStatus=state.status,
            GdKind=state.input.kind,
            GdClass=state.input.generation.generation_class,
            GdServiceNote=state.service_note,
            GdProtocol=state.protocol,
            GdTechnician=technician,
            GdNextActor=NEXT_ACTOR.get(state.status),
            GdDueAt=deadline.due_at if deadline and deadline.paused_at is None else None,
            GdSlaBreached=bool(state.sla_breaches),
        )

    def _email(
        self,
        template: str,
        to: list[str],
        *,
        step: str | None = None,
        attachments: list[DocumentRef] | None = None,
        **extra: Any,
    ) -> None:
        state = self.state
        assert state is not None
        step = step or template
        state.pending.append(
            EmailRequest(
                key=f"{workflow.info().workflow_id}:{template}:{step}:{state.cycle}:{state.seq}",
                template=template,
                to=to,
                context={**self._email_context(), "step": step, **extra},
                attachments=attachments or [],
            )
        )

    def _email_context(self) -> dict[str, Any]:
        state = self.state
        assert state is not None
        inp = state.input
        deadline = state.deadline
        last = state.decisions[-1] if state.decisions else None
        reasons = common.reasons_context(last.reasons if last else [])
        return {
            "request_id": inp.request_id,
            "workflow_id": workflow.info().workflow_id,
            "kind": inp.kind,
            "status": state.status,
            "customer_name": inp.customer.name,
            "technician": inp.technician.key if inp.technician else None,
            "generation_class": inp.generation.generation_class,
            "installed_power_kw": inp.generation.installed_power_kw,
            "service_note": state.service_note,
            "protocol": state.protocol,
            "service_notes": list(state.service_notes),
            "previous_service_note": state.service_notes[-2] if len(state.service_notes) > 1 else None,
            "cycle": state.cycle,
            "rule": deadline.rule if deadline else None,
            "due_at": common.iso(deadline.due_at if deadline else None),
            "apr_due_at": common.iso(deadline.due_at) if deadline and deadline.rule == "apr_window" else None,
            "reasons": reasons,
            "pendencies": reasons,
            "decision_text": last.text if last else None,
            "findings": list(state.inspection_findings),
            "works_declared": state.works_declared,
        }

    def _snapshot(self) -> AccessStatus:
        state = self.state
        if state is None:
            return AccessStatus(
                request_id=self.raw_request_id,
                kind=self.raw_kind,  # type: ignore[arg-type]
                status="REFUSED" if self.refused else "RECEIVED",
                refusal_reasons=self.refusal,
            )
        deadline = state.deadline
        inp = state.input
        return AccessStatus(
            request_id=inp.request_id,
            kind=inp.kind,
            status=state.status,  # type: ignore[arg-type]
            policy=state.policy,
            generation_class=inp.generation.generation_class,
            technician=inp.technician.key if inp.technician else None,
            service_note=state.service_note,
            protocol=state.protocol,
            service_notes=list(state.service_notes),
            due_at=deadline.due_at if deadline else None,
            due_rule=deadline.rule if deadline else None,
            clock_paused=bool(deadline and deadline.paused_at is not None),
            next_actor=NEXT_ACTOR.get(state.status),
            cycle=state.cycle,
            works_declared=state.works_declared,
            sla_breaches=list(state.sla_breaches),
            documents=list(state.documents),
            decisions=list(state.decisions),
            deadlines=list(state.deadlines),
            notifications=list(state.notifications),
            inspection_findings=list(state.inspection_findings),
            beneficiaries_workflow_id=state.beneficiaries_workflow_id,
            pending_effects=len(state.pending),
            input_digest=input_digest(inp),
            created_at=state.created_at,
            updated_at=state.updated_at,
        )

    async def _start_child(self, effect: StartChild) -> None:
        from temporalio.workflow import ParentClosePolicy

        await workflow.start_child_workflow(
            "BeneficiaryRegistration",
            effect.payload,
            id=effect.workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=common.search_attributes(
                GdKind="beneficiaries", GdStatus="PENDING_REVIEW"
            ),
        )

    # --- query -------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> AccessStatus:
        return self._snapshot()

    # --- updates -----------------------------------------------------------------------
    # Each update has a validator (no state change: a refusal writes nothing to history)
    # and a handler that re-checks under the lock, since two updates validated against
    # the same state may arrive together.

    async def _apply(self, check: Callable[[Any], Any], args: Any, act) -> AccessStatus:
        await common.decide(self.lock, check, args, act)
        return self._snapshot()

    def _current(self) -> AccessState:
        if self.state is None:
            refuse("solicitação recusada na triagem: nenhuma ação é possível")
        assert self.state is not None
        return self.state

    # register_apr ----------------------------------------------------------------------

    def _check_register_apr(self, args: Any) -> RegisterAprArgs:
        parsed = parse_or_refuse(RegisterAprArgs, args)
        state = self._current()
        require_status(state.status, ("AWAITING_APR", "LAPSED"), "register_apr")
        require_role(parsed.actor, ("technician",), "register_apr")
        if parsed.service_note != state.service_note:
            refuse(f"service_note: NS {parsed.service_note} não é a NS desta solicitação")
        if parsed.protocol != state.protocol:
            refuse(f"protocol: Protocolo {parsed.protocol} não é o desta solicitação")
        if state.status == "LAPSED" and state.apr_registered_after_lapse:
            refuse("register_apr: a NS reprovada já foi cadastrada no APR Web; solicite a reanálise")
        if state.status == "AWAITING_APR":
            kinds = {d.kind for d in state.documents} | {d.kind for d in parsed.documents}
            missing = [k for k in REQUIRED_APR_KINDS if k not in kinds]
            if missing:
                refuse(f"documents: faltam documentos técnicos obrigatórios: {', '.join(missing)}")
        check_growth(state, "register_apr", parsed)
        return parsed

    @workflow.update(name="register_apr")
    async def register_apr(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_register_apr, args, self._do_register_apr)

    @register_apr.validator
    def _validate_register_apr(self, args: Any) -> None:
        self._check_register_apr(args)

    async def _do_register_apr(self, parsed: RegisterAprArgs) -> None:
        state = self._current()
        state.documents.extend(parsed.documents)
        if state.status == "LAPSED":
            state.apr_registered_after_lapse = True
            self._transition("apr_registered_after_lapse", actor=parsed.actor, documents=parsed.documents)
            return
        await self._start_cycle(workflow.now())
        self._move(
            "UNDER_ANALYSIS",
            "apr_registered",
            actor=parsed.actor,
            documents=parsed.documents,
            email=("analysis_started", self._requesters()),
        )

    async def _start_cycle(self, start: datetime) -> None:
        state = self._current()
        state.cycle += 1
        state.cycles_this_run += 1
        state.works_declared = False
        state.status = "UNDER_ANALYSIS"
        await self._set_deadline("parecer", start)

    # decisions -------------------------------------------------------------------------

    def _check_decision(self, model, args: Any, action: str):
        parsed = parse_or_refuse(model, args)
        state = self._current()
        require_status(state.status, ("UNDER_ANALYSIS",), action)
        require_role(parsed.actor, DECIDERS, action)
        check_growth(state, action, parsed)
        return parsed

    def _check_approve(self, args: Any) -> ApproveArgs:
        parsed = self._check_decision(ApproveArgs, args, "approve")
        if parsed.parecer.kind != "parecer" or parsed.parecer.content_type != "application/pdf":
            refuse("parecer: o parecer de acesso deve ser um PDF do tipo 'parecer' (até 3 MB)")
        return parsed

    @workflow.update(name="approve")
    async def approve(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_approve, args, self._do_approve)

    @approve.validator
    def _validate_approve(self, args: Any) -> None:
        self._check_approve(args)

    async def _do_approve(self, parsed: ApproveArgs) -> None:
        state = self._current()
        state.documents.append(parsed.parecer)
        if parsed.requires_works:
            # Works named by the parecer reach the event log as a works_declared step, as
            # when declared during the analysis (docs/PATCHING.md).
            if not state.works_declared and workflow.patched(APPROVE_RECORDS_WORKS):
                self._transition(
                    "works_declared",
                    actor=parsed.actor,
                    data={"reason": "obras exigidas no parecer de acesso", "source": "approve"},
                )
            state.works_declared = True
        self._decide(parsed.actor, "approve", text=parsed.notes, documents=[parsed.parecer])
        await self._set_deadline("inspection_request_window", workflow.now())
        self._move(
            "APPROVED",
            "approved",
            actor=parsed.actor,
            documents=[parsed.parecer],
            email=("parecer_issued", self._requesters()),
            attachments=[parsed.parecer],
            extra={"requires_works": parsed.requires_works, "notes": parsed.notes},
        )

    def _check_suspend(self, args: Any) -> SuspendArgs:
        parsed = self._check_decision(SuspendArgs, args, "suspend")
        require_reasons(parsed.pendencies, "suspend", "pendencies")
        return parsed

    @workflow.update(name="suspend")
    async def suspend(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_suspend, args, self._do_suspend)

    @suspend.validator
    def _validate_suspend(self, args: Any) -> None:
        self._check_suspend(args)

    async def _do_suspend(self, parsed: SuspendArgs) -> None:
        await self._hold("SUSPENDED", "suspend", parsed.actor, parsed.pendencies, "suspended")

    def _check_reprove(self, args: Any) -> ReproveArgs:
        parsed = self._check_decision(ReproveArgs, args, "reprove")
        require_reasons(parsed.reasons, "reprove", "reasons")
        return parsed

    @workflow.update(name="reprove")
    async def reprove(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_reprove, args, self._do_reprove)

    @reprove.validator
    def _validate_reprove(self, args: Any) -> None:
        self._check_reprove(args)

    async def _do_reprove(self, parsed: ReproveArgs) -> None:
        await self._hold("REPROVED", "reprove", parsed.actor, parsed.reasons, "reproved")

    async def _hold(self, status: str, action: str, actor, reasons: list[Reason], template: str) -> None:
        """Suspension or reproval: the requester has 30 days to answer (pendencies_answer)."""
        state = self._current()
        state.corrections_attached = False
        self._decide(actor, action, reasons=reasons)
        await self._set_deadline("pendencies_answer", workflow.now())
        self._move(status, action, actor=actor, reasons=reasons, email=(template, self._requesters()))

    # corrections and reanalysis ---------------------------------------------------------

    def _check_attach_corrections(self, args: Any) -> AttachCorrectionsArgs:
        parsed = parse_or_refuse(AttachCorrectionsArgs, args)
        state = self._current()
        require_status(state.status, ("SUSPENDED", "REPROVED"), "attach_corrections")
        require_role(parsed.actor, ("technician",), "attach_corrections")
        check_growth(state, "attach_corrections", parsed)
        return parsed

    @workflow.update(name="attach_corrections")
    async def attach_corrections(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_attach_corrections, args, self._do_attach_corrections)

    @attach_corrections.validator
    def _validate_attach_corrections(self, args: Any) -> None:
        self._check_attach_corrections(args)

    async def _do_attach_corrections(self, parsed: AttachCorrectionsArgs) -> None:
        state = self._current()
        state.documents.extend(parsed.documents)
        state.corrections_attached = True
        self._transition("corrections_attached", actor=parsed.actor, documents=parsed.documents)

    def _check_request_reanalysis(self, args: Any) -> RequestReanalysisArgs:
        parsed = parse_or_refuse(RequestReanalysisArgs, args)
        state = self._current()
        require_status(state.status, ("SUSPENDED", "REPROVED", "LAPSED"), "request_reanalysis")
        require_role(parsed.actor, REQUESTERS, "request_reanalysis")
        if parsed.reproved_service_note != state.service_note:
            refuse(
                f"reproved_service_note: informe a NS reprovada desta solicitação "
                f"({state.service_note}), não {parsed.reproved_service_note}"
            )
        if parsed.motive != REANALYSIS_MOTIVE:
            refuse(f"motive: o motivo da solicitação deve ser \"{REANALYSIS_MOTIVE}\"")
        if state.status == "LAPSED" and not state.apr_registered_after_lapse:
            refuse(
                "request_reanalysis: cadastre antes a NS reprovada por decurso de prazo no "
                "APR Web (register_apr); só depois solicite a reanálise"
            )
        if state.status != "LAPSED" and not state.corrections_attached:
            refuse(
                "request_reanalysis: anexe antes os documentos corrigidos no APR Web "
                "(attach_corrections); só depois solicite a reanálise"
            )
        check_growth(state, "request_reanalysis", parsed)
        return parsed

    @workflow.update(name="request_reanalysis")
    async def request_reanalysis(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_request_reanalysis, args, self._do_request_reanalysis)

    @request_reanalysis.validator
    def _validate_request_reanalysis(self, args: Any) -> None:
        self._check_request_reanalysis(args)

    async def _do_request_reanalysis(self, parsed: RequestReanalysisArgs) -> None:
        state = self._current()
        numbers: IssuedNumbers = await workflow.execute_activity(
            "issue_numbers",
            NumberRequest(workflow_id=workflow.info().workflow_id, step=f"reanalysis-{state.cycle + 1}"),
            result_type=IssuedNumbers,
            **common.STORE_OPTIONS,
        )
        reproved = state.service_note
        state.service_note = numbers.service_note
        state.service_notes.append(numbers.service_note)
        state.documents.extend(parsed.documents)
        state.corrections_attached = False
        state.apr_registered_after_lapse = False
        await self._start_cycle(workflow.now())
        self._move(
            "UNDER_ANALYSIS",
            "reanalysis_requested",
            actor=parsed.actor,
            documents=parsed.documents,
            email=("reanalysis_started", self._requesters()),
            extra={"reproved_service_note": reproved, "motive": parsed.motive},
        )

    # deadline adjustments ------------------------------------------------------------------

    def _check_declare_works(self, args: Any) -> DeclareWorksArgs:
        parsed = parse_or_refuse(DeclareWorksArgs, args)
        state = self._current()
        require_status(state.status, ("UNDER_ANALYSIS",), "declare_works")
        require_role(parsed.actor, DECIDERS, "declare_works")
        if state.works_declared:
            refuse("declare_works: obras já declaradas neste ciclo de análise")
        check_growth(state, "declare_works", parsed)
        return parsed

    @workflow.update(name="declare_works")
    async def declare_works(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_declare_works, args, self._do_declare_works)

    @declare_works.validator
    def _validate_declare_works(self, args: Any) -> None:
        self._check_declare_works(args)

    async def _do_declare_works(self, parsed: DeclareWorksArgs) -> None:
        state = self._current()
        old = state.deadline
        assert old is not None
        state.works_declared = True
        await self._set_deadline("parecer", old.start, reason=f"obras: {parsed.reason}")
        new = state.deadline
        assert new is not None
        new.paused_at, new.paused_total_s = old.paused_at, old.paused_total_s
        new.reminded = old.reminded and (new.remind_at is None or new.remind_at <= workflow.now())
        if old.paused_total_s:
            new.due_at = await common.resume_deadline(new.due_at, timedelta(seconds=old.paused_total_s))
            state.deadlines[-1] = state.deadlines[-1].model_copy(update={"due_at": new.due_at})
        self._decide(parsed.actor, "declare_works", text=parsed.reason)
        self._transition("works_declared", actor=parsed.actor, data={"reason": parsed.reason})

    def _check_pause_clock(self, args: Any) -> PauseClockArgs:
        parsed = parse_or_refuse(PauseClockArgs, args)
        state = self._current()
        require_status(state.status, PAUSABLE, "pause_clock")
        require_role(parsed.actor, DECIDERS, "pause_clock")
        if state.deadline is None or state.deadline.paused_at is not None:
            refuse("pause_clock: o prazo já está suspenso")
        check_growth(state, "pause_clock", parsed)
        return parsed

    @workflow.update(name="pause_clock")
    async def pause_clock(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_pause_clock, args, self._do_pause_clock)

    @pause_clock.validator
    def _validate_pause_clock(self, args: Any) -> None:
        self._check_pause_clock(args)

    async def _do_pause_clock(self, parsed: PauseClockArgs) -> None:
        state = self._current()
        assert state.deadline is not None
        state.deadline.paused_at = workflow.now()
        self._decide(parsed.actor, "pause_clock", text=parsed.reason)
        self._email("clock_paused", self._requesters(), step=f"pause-{state.seq}", reason=parsed.reason,
                    paused_at=state.deadline.paused_at.isoformat())
        self._transition("clock_paused", actor=parsed.actor, data={"reason": parsed.reason})

    def _check_resume_clock(self, args: Any) -> ActorArgs:
        parsed = parse_or_refuse(ActorArgs, args)
        state = self._current()
        require_status(state.status, PAUSABLE, "resume_clock")
        require_role(parsed.actor, DECIDERS, "resume_clock")
        if state.deadline is None or state.deadline.paused_at is None:
            refuse("resume_clock: o prazo não está suspenso")
        return parsed

    @workflow.update(name="resume_clock")
    async def resume_clock(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_resume_clock, args, self._do_resume_clock)

    @resume_clock.validator
    def _validate_resume_clock(self, args: Any) -> None:
        self._check_resume_clock(args)

    async def _do_resume_clock(self, parsed: ActorArgs) -> None:
        state = self._current()
        deadline = state.deadline
        assert deadline is not None and deadline.paused_at is not None
        self._decide(parsed.actor, "resume_clock")
        paused = state.decisions[-1].at - deadline.paused_at
        deadline.due_at = await common.resume_deadline(deadline.due_at, paused)
        if deadline.remind_at is not None:
            deadline.remind_at = deadline.remind_at + paused
        deadline.paused_at = None
        deadline.paused_total_s += paused.total_seconds()
        state.deadlines.append(
            DeadlineRecord(
                rule=deadline.rule,
                start=deadline.start,
                due_at=deadline.due_at,
                remind_at=deadline.remind_at,
                cycle=state.cycle,
                reason=f"prazo retomado após {paused.total_seconds():.0f} s suspenso",
            )
        )
        self._email("clock_resumed", self._requesters(), step=f"resume-{state.seq}")
        self._transition("clock_resumed", actor=parsed.actor, data={"paused_s": paused.total_seconds()})

    # inquiry ------------------------------------------------------------------------------

    def _check_answer_inquiry(self, args: Any) -> AnswerInquiryArgs:
        parsed = parse_or_refuse(AnswerInquiryArgs, args)
        state = self._current()
        require_status(state.status, ("AWAITING_ANSWER",), "answer_inquiry")
        require_role(parsed.actor, DECIDERS, "answer_inquiry")
        check_growth(state, "answer_inquiry", parsed)
        return parsed

    @workflow.update(name="answer_inquiry")
    async def answer_inquiry(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_answer_inquiry, args, self._do_answer_inquiry)

    @answer_inquiry.validator
    def _validate_answer_inquiry(self, args: Any) -> None:
        self._check_answer_inquiry(args)

    async def _do_answer_inquiry(self, parsed: AnswerInquiryArgs) -> None:
        state = self._current()
        state.documents.extend(parsed.documents)
        self._decide(parsed.actor, "answer_inquiry", text=parsed.answer, documents=parsed.documents)
        self._move(
            "ANSWERED",
            "answered",
            actor=parsed.actor,
            documents=parsed.documents,
            email=("inquiry_answered", [state.input.customer.email]),
            attachments=parsed.documents,
            extra={"answer": parsed.answer},
        )

    # vistoria -----------------------------------------------------------------------------

    def _check_request_inspection(self, args: Any) -> RequestInspectionArgs:
        parsed = parse_or_refuse(RequestInspectionArgs, args)
        state = self._current()
        require_status(state.status, ("APPROVED", "INSPECTION_REPROVED"), "request_inspection")
        require_role(parsed.actor, REQUESTERS, "request_inspection")
        check_growth(state, "request_inspection", parsed)
        return parsed

    @workflow.update(name="request_inspection")
    async def request_inspection(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_request_inspection, args, self._do_request_inspection)

    @request_inspection.validator
    def _validate_request_inspection(self, args: Any) -> None:
        self._check_request_inspection(args)

    async def _do_request_inspection(self, parsed: RequestInspectionArgs) -> None:
        state = self._current()
        state.documents.extend(parsed.documents)
        state.status = "INSPECTION_REQUESTED"
        await self._set_deadline("inspection", workflow.now())
        self._move(
            "INSPECTION_REQUESTED",
            "inspection_requested",
            actor=parsed.actor,
            documents=parsed.documents,
            email=("inspection_requested", self._requesters()),
        )

    def _check_record_inspection(self, args: Any) -> RecordInspectionArgs:
        parsed = parse_or_refuse(RecordInspectionArgs, args)
        state = self._current()
        require_status(state.status, ("INSPECTION_REQUESTED",), "record_inspection")
        require_role(parsed.actor, ("inspector",), "record_inspection")
        if parsed.result == "reproved" and not parsed.findings:
            refuse("findings: uma vistoria reprovada exige ao menos uma constatação")
        check_growth(state, "record_inspection", parsed)
        return parsed

    @workflow.update(name="record_inspection")
    async def record_inspection(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_record_inspection, args, self._do_record_inspection)

    @record_inspection.validator
    def _validate_record_inspection(self, args: Any) -> None:
        self._check_record_inspection(args)

    async def _do_record_inspection(self, parsed: RecordInspectionArgs) -> None:
        state = self._current()
        report = [parsed.report] if parsed.report else []
        state.documents.extend(report)
        state.inspection_findings = list(parsed.findings)
        self._decide(
            parsed.actor,
            f"inspection_{parsed.result}",
            text="; ".join(parsed.findings) or None,
            documents=report,
        )
        if parsed.result == "reproved":
            state.status = "INSPECTION_REPROVED"
            await self._set_deadline("inspection_request_window", workflow.now())
            self._move(
                "INSPECTION_REPROVED",
                "inspection_reproved",
                actor=parsed.actor,
                documents=report,
                email=("inspection_reproved", self._requesters()),
                attachments=report,
            )
            return
        self._move(
            "CONNECTED",
            "connected",
            actor=parsed.actor,
            documents=report,
            email=("connected", self._requesters()),
        )
        self._queue_beneficiaries()

    def _queue_beneficiaries(self) -> None:
        state = self._current()
        inp = state.input
        if inp.beneficiaries is None:
            return
        child_id = beneficiaries_id(inp.request_id)
        state.beneficiaries_workflow_id = child_id
        state.pending.append(
            StartChild(
                workflow_id=child_id,
                payload={
                    "request_id": inp.request_id,
                    "generator_installation": inp.installation_number,
                    "holder_document": inp.customer.document,
                    "modality": inp.generation.modality,
                    "actor": {"id": "gd-orchestrator", "role": "system"},
                    "allocation": inp.beneficiaries.model_dump(mode="json"),
                    "notify_email": inp.customer.email,
                },
            )
        )

    # withdrawal -----------------------------------------------------------------------------

    def _check_withdraw(self, args: Any) -> WithdrawArgs:
        parsed = parse_or_refuse(WithdrawArgs, args)
        state = self._current()
        if state.status in TERMINAL_STATUSES:
            refuse(f"withdraw: a solicitação já está encerrada ({state.status})")
        require_role(parsed.actor, ("customer", "system"), "withdraw")
        return parsed

    @workflow.update(name="withdraw")
    async def withdraw(self, args: Any) -> AccessStatus:
        return await self._apply(self._check_withdraw, args, self._do_withdraw)

    @withdraw.validator
    def _validate_withdraw(self, args: Any) -> None:
        self._check_withdraw(args)

    async def _do_withdraw(self, parsed: WithdrawArgs) -> None:
        state = self._current()
        self._decide(parsed.actor, "withdraw", text=parsed.reason)
        recipients = self._requesters() if state.input.kind == "request" else [state.input.customer.email]
        self._move(
            "CANCELLED",
            "withdrawn",
            actor=parsed.actor,
            email=("cancelled", recipients),
            extra={"cause": "withdrawn", "reason": parsed.reason},
        )
