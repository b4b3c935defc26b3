"""``AccessRequest``: a consulta or a solicitação de acesso, from intake to connection.

Who may send which update in which status, and what each status's deadline does, is the
table ``domain.rules.ACCESS``: every validator runs its one check, then the few rules of
its own (the NS matches, the documents are complete). Update handlers change the state
under a lock and queue their side effects (store transition, e-mails, child workflow);
the main loop drains that queue in order, and a second task watches the deadline of the
current status. So an update answers as soon as its decision is recorded (a small
``UpdateAck``; the status is the ``status`` query), and an e-mail outage delays e-mails,
never decisions nor deadlines.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import rules
    from domain.limits import check_growth
    from domain.policies import Deadline
    from domain.apr_documents import REQUIRED_APR_KINDS, apr_documents
    from domain.motives import DEFAULT_MOTIVE
    from domain.motives import label as motive_label
    from domain.rules import ACCESS
    from models.access import (
        REANALYSIS_MOTIVES,
        TERMINAL_STATUSES,
        UPDATE_ARGS,
        AccessRequestInput,
        AccessStatus,
        AnswerInquiryArgs,
        ApproveArgs,
        AssignArgs,
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
    from models.acks import UpdateAck
    from models.activities import IntakeCheck, IntakeResult, IssuedNumbers, NumberRequest, Transition
    from models.common import (
        Actor,
        ActorArgs,
        Decision,
        DeadlineRecord,
        DocumentRef,
        Reason,
        RoleRefused,
        SlaBreach,
        StatusRefused,
        parse_or_refuse,
    )
    from models.access_state import AccessState, ActiveDeadline, StartChild
    from models.ids import beneficiaries_id
    from models.names import SYSTEM_ACTOR_ID, Activities, Queries, Updates, Workflows

from workflows import access_view as view
from workflows import common
from workflows.common import refuse, require_reasons

# Analysis cycles per run before continuing as new, so a long reanalysis loop keeps a
# bounded history.
CYCLES_PER_RUN = 4
# Patch ids (workflow.patched): histories written before each change still replay.
APPROVE_RECORDS_WORKS = "approve-records-works-v1"
# The deadline is watched by its own task, not between two side effects of the main loop.
DEADLINE_WATCH = "deadline-watch-v1"
# Validators check who the actor is: a party's role must be the request's RT/customer, and
# the orchestrator's own id is refused. Asked at the start of each run (a validator may
# not call workflow.patched: it runs read-only) and kept in ``self.identity_checks``, so
# requests started before it keep the rules they started under. Handlers never check it
# again (``_check(again=True)``): a replay runs no validator and cannot depend on it.
PARTY_CHECK = "party-check-v1"

@workflow.defn(name=Workflows.ACCESS_REQUEST)
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
        # A validator that runs before ``run`` asks the patch checks identities too;
        # ``run`` corrects it for a history written before PARTY_CHECK.
        self.identity_checks = True

    # --- main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None) -> AccessStatus:
        # Asked first, in the run's first workflow task: asked after the intake's local
        # activity, the marker can land in a later task than that result, and a replay
        # (a query after a worker restart) no longer finds it (docs/PATCHING.md).
        watching = workflow.patched(DEADLINE_WATCH)
        self.identity_checks = workflow.patched(PARTY_CHECK)
        if carried is None:
            await self._intake(raw)
        if watching and self.state is not None:
            return await self._run_watching(raw)
        return await self._run_before_watch(raw)

    async def _run_before_watch(self, raw: dict[str, Any]) -> AccessStatus:
        async def maybe_continue_as_new() -> None:
            assert self.state is not None
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self.state.pending:
                    self.state.cycles_this_run = 0
                    workflow.continue_as_new(args=[raw, self.state])

        await common.run_before_watch(
            lock=self.lock,
            drain=self._drain,
            queued=lambda: bool(self.state and self.state.pending),
            finished=lambda: self.state is None or self.state.status in TERMINAL_STATUSES,
            key=lambda: (self.state.seq, self.state.status) if self.state else None,
            next_instant=self._next_timer,
            act=self._on_timer,
            between=maybe_continue_as_new,
        )
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
                if isinstance(effect, Transition) and effect.process == "access":
                    effect = view.with_status(self.state, effect)
                note = await common.run_effect(effect)
                if note is not None:
                    self.state.notifications.append(note)
            self.state.pending.pop(0)

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
            # The e-mail names when the 24 hours ended (the APR window's own due instant).
            ended = {"apr_due_at": common.iso(deadline.due_at)}
            await self._set_deadline("pendencies_answer", workflow.now())
            self._decide(None, "lapse", reasons=[Reason(code="NS-PRAZO-APR-EXPIRADO")])
            self._move("LAPSED", "apr_window_lapsed", email=("apr_lapsed", self._requesters()),
                       extra=ended)
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
            Activities.VALIDATE_INTAKE,
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
                view.refused_transition(self.raw_request_id, self.raw_kind, result.problems, now)
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
            customer_digest=result.customer_digest,
        )
        if inp.kind == "inquiry":
            await self._set_deadline("inquiry_answer", now)
            self._move("AWAITING_ANSWER", "received", email=("inquiry_received", [inp.customer.email]))
            return
        numbers: IssuedNumbers = await workflow.execute_activity(
            Activities.ISSUE_NUMBERS,
            NumberRequest(workflow_id=info.workflow_id, step="intake"),
            result_type=IssuedNumbers,
            **common.STORE_OPTIONS,
        )
        self.state.service_note = numbers.service_note
        self.state.protocol = numbers.protocol
        self.state.service_notes.append(numbers.service_note)
        # Deadlines run on the workflow clock (the activity ran on the worker's clock).
        await self._set_deadline("apr_window", workflow.now())
        required, recommended = apr_documents(inp.generation.generation_class)
        self._move(
            "AWAITING_APR", "received", email=("request_received", self._requesters()),
            extra={"motive": inp.motive or DEFAULT_MOTIVE, "motive_label": motive_label(inp.motive),
                   "apr_required": required, "apr_recommended": recommended},
        )

    # --- state helpers -----------------------------------------------------------------

    def _requesters(self) -> list[str]:
        return view.requesters(self._current())

    async def _set_deadline(self, rule: str, start: datetime, reason: str | None = None) -> None:
        state = self._current()
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
        state = self._current()
        state.decisions.append(
            Decision(
                at=workflow.now(),
                actor=common.on_record(actor) or Actor(id=SYSTEM_ACTOR_ID, role="system"),
                action=action, reasons=reasons or [], text=text,
                service_note=state.service_note, documents=documents or [],
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
        state = self._current()
        state.status = status
        if state.deadline is not None and ACCESS.deadline(status) != state.deadline.rule:
            state.deadline = None
        if email is not None:
            self._email(email[0], email[1], attachments=attachments, **(extra or {}))
        self._transition(action, actor=actor, reasons=reasons, documents=documents, data=extra)

    def _transition(self, action: str, *, actor=None, reasons=None, documents=None, data=None) -> None:
        state = self._current()
        state.seq += 1
        state.updated_at = workflow.now()
        state.pending.append(
            view.transition(state, action, actor=actor, reasons=reasons, documents=documents, data=data)
        )
        view.upsert_search_attributes(state)

    def _email(
        self,
        template: str,
        to: list[str],
        *,
        step: str | None = None,
        attachments: list[DocumentRef] | None = None,
        **extra: Any,
    ) -> None:
        state = self._current()
        state.pending.append(view.email(state, template, to, step or template, attachments or [], extra))

    def _snapshot(self) -> AccessStatus:
        if self.state is None:
            return AccessStatus(
                request_id=self.raw_request_id,
                kind=self.raw_kind,  # type: ignore[arg-type]
                status="REFUSED" if self.refused else "RECEIVED",
                refusal_reasons=self.refusal,
            )
        return view.snapshot(self.state)

    async def _start_child(self, effect: StartChild) -> None:
        from temporalio.workflow import ParentClosePolicy

        await workflow.start_child_workflow(
            Workflows.BENEFICIARY_REGISTRATION,
            effect.payload,
            id=effect.workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=common.search_attributes(
                GdKind="beneficiaries", GdStatus="PENDING_REVIEW"
            ),
        )

    # --- query -------------------------------------------------------------------------

    @workflow.query(name=Queries.STATUS)
    def status(self) -> AccessStatus:
        return self._snapshot()

    # --- updates -----------------------------------------------------------------------
    # Each update (``common.process_update``): a validator (no state change: a refusal
    # writes nothing to history) and a handler that checks again under the lock, since two
    # updates validated against the same state may arrive together; then ``_<update>``
    # decides. Both checks run ``_check``: the arguments (``models.access.UPDATE_ARGS``), the rules table
    # (status, role, party), then the update's own rules (``_rules_<update>``, if any).

    def _check(self, update: str, args: Any, *, again: bool = False) -> Any:
        parsed = parse_or_refuse(UPDATE_ARGS[update], args)
        state = self._current()
        inp = state.input
        parties = rules.Parties(technician=view.technician_key(state), customer=inp.customer.document)
        # Who the actor is cannot change between the validator and the handler: only the
        # validator checks it, so a replay (validators do not run) never depends on it.
        identity = self.identity_checks and not again
        rules.check(ACCESS, update, state.status, parsed.actor, parties, identity=identity)
        check_growth(state, update, parsed)  # per-request caps (LimitRefused)
        own = getattr(self, f"_rules_{update}", None)
        if own is not None:
            own(state, parsed)
        # Rules added once requests were already running: checked by the validator only,
        # so an update an older history accepted still replays (validators do not run in
        # a replay; a handler that raised where it used to act would need a patch).
        newer = getattr(self, f"_validator_rules_{update}", None)
        if newer is not None and not again:
            newer(state, parsed)
        return parsed

    async def _apply(self, update: str, args: Any) -> UpdateAck:
        act = getattr(self, f"_{update}")
        await common.decide(self.lock, lambda raw: self._check(update, raw, again=True), args, act)
        state = self._current()
        return UpdateAck(id=state.input.request_id, update=update, status=state.status, sequence=state.seq)

    # The updates (CONTRACT.md); who may send each, and when, is ``domain.rules.ACCESS``.
    register_apr = common.process_update(Updates.REGISTER_APR)
    approve = common.process_update(Updates.APPROVE)
    suspend = common.process_update(Updates.SUSPEND)
    reprove = common.process_update(Updates.REPROVE)
    attach_corrections = common.process_update(Updates.ATTACH_CORRECTIONS)
    request_reanalysis = common.process_update(Updates.REQUEST_REANALYSIS)
    declare_works = common.process_update(Updates.DECLARE_WORKS)
    pause_clock = common.process_update(Updates.PAUSE_CLOCK)
    resume_clock = common.process_update(Updates.RESUME_CLOCK)
    answer_inquiry = common.process_update(Updates.ANSWER_INQUIRY)
    request_inspection = common.process_update(Updates.REQUEST_INSPECTION)
    record_inspection = common.process_update(Updates.RECORD_INSPECTION)
    withdraw = common.process_update(Updates.WITHDRAW)
    assign = common.process_update(Updates.ASSIGN)

    def _current(self) -> AccessState:
        if self.state is None:
            if self.refused:
                raise StatusRefused("solicitação recusada na triagem: nenhuma ação é possível")
            raise StatusRefused("a solicitação ainda está em triagem; tente novamente")
        return self.state

    # register_apr ----------------------------------------------------------------------

    def _rules_register_apr(self, state: AccessState, parsed: RegisterAprArgs) -> None:
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

    def _validator_rules_register_apr(self, state: AccessState, parsed: RegisterAprArgs) -> None:
        # A lapsed NS registered late opens the reanalysis, and with it a parecer clock
        # against the distributor: the dossier must be as complete as within the 24 hours
        # (seed, "Solicitação de NS de Reanálise", step 1; DOMAIN.md 3.3 and 3.5).
        if state.status == "LAPSED":
            kinds = {d.kind for d in state.documents} | {d.kind for d in parsed.documents}
            missing = [k for k in REQUIRED_APR_KINDS if k not in kinds]
            if missing:
                refuse(
                    "documents: para cadastrar a NS reprovada por decurso de prazo faltam "
                    f"documentos técnicos obrigatórios: {', '.join(missing)}"
                )

    async def _register_apr(self, parsed: RegisterAprArgs) -> None:
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

    def _rules_approve(self, state: AccessState, parsed: ApproveArgs) -> None:
        if parsed.parecer.kind != "parecer" or parsed.parecer.content_type != "application/pdf":
            refuse("parecer: o parecer de acesso deve ser um PDF do tipo 'parecer' (até 3 MB)")

    async def _approve(self, parsed: ApproveArgs) -> None:
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

    def _rules_suspend(self, state: AccessState, parsed: SuspendArgs) -> None:
        require_reasons(parsed.pendencies, "suspend", "pendencies")

    async def _suspend(self, parsed: SuspendArgs) -> None:
        await self._hold("SUSPENDED", "suspend", parsed.actor, parsed.pendencies, "suspended")

    def _rules_reprove(self, state: AccessState, parsed: ReproveArgs) -> None:
        require_reasons(parsed.reasons, "reprove", "reasons")

    async def _reprove(self, parsed: ReproveArgs) -> None:
        await self._hold("REPROVED", "reprove", parsed.actor, parsed.reasons, "reproved")

    async def _hold(self, status: str, action: str, actor, reasons: list[Reason], template: str) -> None:
        """Suspension or reproval: the requester has 30 days to answer (pendencies_answer)."""
        state = self._current()
        state.corrections_attached = False
        self._decide(actor, action, reasons=reasons)
        await self._set_deadline("pendencies_answer", workflow.now())
        self._move(status, action, actor=actor, reasons=reasons, email=(template, self._requesters()))

    # corrections and reanalysis ---------------------------------------------------------

    async def _attach_corrections(self, parsed: AttachCorrectionsArgs) -> None:
        state = self._current()
        state.documents.extend(parsed.documents)
        state.corrections_attached = True
        self._transition("corrections_attached", actor=parsed.actor, documents=parsed.documents)

    def _rules_request_reanalysis(self, state: AccessState, parsed: RequestReanalysisArgs) -> None:
        if parsed.reproved_service_note != state.service_note:
            refuse(
                f"reproved_service_note: informe a NS reprovada desta solicitação "
                f"({state.service_note}), não {parsed.reproved_service_note}"
            )
        if parsed.motive not in REANALYSIS_MOTIVES:
            accepted = " ou ".join(f'"{m}"' for m in REANALYSIS_MOTIVES)
            refuse(f"motive: o motivo da solicitação deve ser {accepted}")
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

    async def _request_reanalysis(self, parsed: RequestReanalysisArgs) -> None:
        state = self._current()
        numbers: IssuedNumbers = await workflow.execute_activity(
            Activities.ISSUE_NUMBERS,
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

    def _rules_declare_works(self, state: AccessState, parsed: DeclareWorksArgs) -> None:
        if state.works_declared:
            refuse("declare_works: obras já declaradas neste ciclo de análise")

    async def _declare_works(self, parsed: DeclareWorksArgs) -> None:
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

    def _rules_pause_clock(self, state: AccessState, parsed: PauseClockArgs) -> None:
        if state.deadline is None or state.deadline.paused_at is not None:
            refuse("pause_clock: o prazo já está suspenso")

    async def _pause_clock(self, parsed: PauseClockArgs) -> None:
        state = self._current()
        assert state.deadline is not None
        state.deadline.paused_at = workflow.now()
        self._decide(parsed.actor, "pause_clock", text=parsed.reason)
        self._email("clock_paused", self._requesters(), step=f"pause-{state.seq}", reason=parsed.reason,
                    paused_at=state.deadline.paused_at.isoformat())
        self._transition("clock_paused", actor=parsed.actor, data={"reason": parsed.reason})

    def _rules_resume_clock(self, state: AccessState, parsed: ActorArgs) -> None:
        if state.deadline is None or state.deadline.paused_at is None:
            refuse("resume_clock: o prazo não está suspenso")

    async def _resume_clock(self, parsed: ActorArgs) -> None:
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

    async def _answer_inquiry(self, parsed: AnswerInquiryArgs) -> None:
        state = self._current()
        state.documents.extend(parsed.documents)
        self._decide(parsed.actor, "answer_inquiry", text=parsed.answer, documents=parsed.documents)
        self._move(
            "ANSWERED",
            "answered",
            actor=parsed.actor,
            documents=parsed.documents,
            email=("inquiry_answered", view.inquiry_recipients(state.input)),
            attachments=parsed.documents,
            extra={"answer": parsed.answer},
        )

    # vistoria -----------------------------------------------------------------------------

    async def _request_inspection(self, parsed: RequestInspectionArgs) -> None:
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

    def _rules_record_inspection(self, state: AccessState, parsed: RecordInspectionArgs) -> None:
        if parsed.result == "reproved" and not parsed.findings:
            refuse("findings: uma vistoria reprovada exige ao menos uma constatação")

    async def _record_inspection(self, parsed: RecordInspectionArgs) -> None:
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
        state.pending.append(StartChild(workflow_id=child_id, payload=view.beneficiaries_payload(inp)))

    # withdrawal -----------------------------------------------------------------------------

    async def _withdraw(self, parsed: WithdrawArgs) -> None:
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

    # assignment ------------------------------------------------------------------------------

    def _rules_assign(self, state: AccessState, parsed: AssignArgs) -> None:
        actor = parsed.actor
        if actor.role == "analyst" and parsed.analyst != actor.id:
            raise RoleRefused(
                "analyst: o analista só assume a solicitação para si; "
                "atribuir a outra pessoa é do supervisor"
            )
        if state.assignee == parsed.analyst:
            refuse(f"analyst: a solicitação já está atribuída a {parsed.analyst}")
        if actor.role == "analyst" and state.assignee is not None:
            raise StatusRefused(
                f"assign: a solicitação já foi assumida por {state.assignee}; "
                "só o supervisor pode reatribuí-la"
            )

    async def _assign(self, parsed: AssignArgs) -> None:
        state = self._current()
        previous = state.assignee
        state.assignee = parsed.analyst
        self._transition(
            "assigned", actor=parsed.actor, data={"analyst": parsed.analyst, "previous": previous}
        )
