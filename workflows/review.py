"""What the two review workflows share: ``TechnicianRegistration`` and
``BeneficiaryRegistration`` wait in PENDING_REVIEW for an analyst's decision.

One state model (``models.review_state.ReviewState``), one run (``_review``: the
party-check patch, intake through the store's check, the review opened, the loop), one
deadline watch (reminder to the analysts, then the breach recorded and the supervisor
told; never an automatic decision), one effect queue drained in order, one check of every
update against the rules table (``domain.rules``), one rejection record, one ``status``
query and one acknowledgement. Each workflow says how its id follows from its input
(``_id_problems``), what it records (``_row``, ``_search_attributes``, ``_snapshot``),
what it mails, and decides. The commands a run emits are the ones each workflow emitted
before this was shared (tests/test_replay.py replays the golden histories).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import rules
    from models.acks import Action, UpdateAck
    from models.activities import EmailRequest, IntakeCheck, IntakeResult, Transition
    from models.common import (
        Actor,
        ActorArgs,
        Decision,
        Problem,
        Reason,
        SlaBreach,
        parse_or_problems,
        parse_or_refuse,
    )
    from models.names import Activities, Queries
    from models.review_state import ReviewState

from workflows import common
from workflows.common import require_reasons

PENDING = "PENDING_REVIEW"


class ReviewWorkflow:
    PROCESS: ClassVar[rules.Process]
    ARGS: ClassVar[dict[str, type[ActorArgs]]]
    # The process name in the store's event log (and of its intake check).
    STORE_PROCESS: ClassVar[str]
    ID_PREFIX: ClassVar[str]
    PROCESS_LABEL: ClassVar[str] = ""
    # The input model, and its field that is the process key (what the workflow id ends in).
    INPUT: ClassVar[type[Any]]
    KEY_FIELD: ClassVar[str]
    # The ``workflow.patched`` id of the party check (who the actor is).
    PARTY_CHECK: ClassVar[str]
    # The reasons catalogue's use for a rejection (domain.reasons).
    REJECT_USE: ClassVar[str]

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.state = ReviewState()
        self.input: Any = None
        # As in AccessRequest (PARTY_CHECK): ``run`` sets it from its patch.
        self.identity_checks = True

    # --- the run ---------------------------------------------------------------------------

    async def _review(self, raw: Any, watching: bool) -> Any:
        """The whole run after the workflow's own patches: the party-check patch, intake,
        the review opened (when accepted), the loop; the snapshot is its result.
        ``raw`` is undecoded JSON: a payload failing pydantic inside the converter would
        leave the workflow stuck with no message (TEMPORAL_NOTES.md)."""
        self.identity_checks = workflow.patched(self.PARTY_CHECK)
        self.state.created_at = workflow.now()
        if await self._intake(raw):
            await self._open_review()
        await self._loop(watching)
        return self._snapshot()

    async def _intake(self, raw: Any) -> bool:
        """The store's intake check, the input model, and this process's id check
        (``_id_problems``); a refusal is recorded and ends the run."""
        workflow_id = workflow.info().workflow_id
        result: IntakeResult = await workflow.execute_activity(
            Activities.VALIDATE_INTAKE,
            IntakeCheck(process=self.STORE_PROCESS, workflow_id=workflow_id, raw=raw),
            result_type=IntakeResult,
            **common.STORE_OPTIONS,
        )
        problems = list(result.problems)
        parsed = None
        if not problems:
            parsed, problems = parse_or_problems(self.INPUT, result.normalized or {})
        if parsed is not None:
            problems.extend(self._id_problems(parsed, workflow_id))
        if problems:
            self.state.status = "REFUSED"
            self.state.refusal = problems
            self._transition("refused", data={"problems": [p.model_dump() for p in problems]})
            return False
        self.input = parsed
        return True

    def _id_problems(self, parsed: Any, workflow_id: str) -> list[Problem]:
        """The id is what makes a second registration join the first: it must be the one
        the input names."""
        raise NotImplementedError

    async def _open_review(self) -> None:
        raise NotImplementedError

    def _snapshot(self) -> Any:
        raise NotImplementedError

    @workflow.query(name=Queries.STATUS)
    def status_query(self) -> Any:
        return self._snapshot()

    # --- the loop -------------------------------------------------------------------------

    async def _loop(self, watching: bool) -> None:
        """Side effects in order until decided; the deadline watched in its own task
        (``watching``) or, in histories written before that patch, between two effects."""
        state = self.state
        if watching and state.status == PENDING:
            await common.run_watching(
                lock=self.lock,
                drain=self._drain,
                queued=lambda: bool(state.pending),
                finished=lambda: state.status != PENDING,
                next_instant=self._next_timer,
                act=self._on_timer,
            )
            return
        await common.run_before_watch(
            lock=self.lock,
            drain=self._drain,
            queued=lambda: bool(state.pending),
            finished=lambda: state.status != PENDING,
            key=lambda: state.status,
            next_instant=self._next_timer,
            act=self._on_timer,
        )

    async def _drain(self) -> None:
        """Run queued side effects in order; a handler may queue more meanwhile."""
        state = self.state
        while state.pending:
            notes = await self._run_effect(state.pending[0])
            state.notifications.extend(notes)
            state.pending.pop(0)

    async def _run_effect(self, effect: Any) -> list:
        note = await common.run_effect(effect)
        return [note] if note is not None else []

    def _next_timer(self) -> datetime | None:
        state = self.state
        deadline = state.deadline
        if deadline is None:
            return None
        if deadline.remind_at and not state.reminded and deadline.remind_at < deadline.due_at:
            return deadline.remind_at
        return None if state.breached else deadline.due_at

    def _on_timer(self) -> None:
        state = self.state
        deadline = state.deadline
        assert deadline is not None
        if deadline.remind_at and not state.reminded and deadline.remind_at < deadline.due_at:
            state.reminded = True
            self._transition("reminder", data={"rule": deadline.rule})
            self._internal_email("deadline_reminder", "role:analysts", "reminder")
            return
        # Late is the distributor's fault: record and escalate, never decide automatically.
        state.breached = True
        breach = SlaBreach(step=deadline.rule, due_at=deadline.due_at, breached_at=workflow.now())
        state.sla_breaches.append(breach)
        self._transition(
            "sla_breach", data={"rule": deadline.rule, "breached_at": common.iso(breach.breached_at)}
        )
        self._internal_email(
            "sla_escalation", "role:supervisor", "sla_escalation",
            breached_at=breach.breached_at.isoformat(),
        )  # fmt: skip

    def _internal_email(self, template: str, to: str, key_step: str, **extra: Any) -> None:
        """An analysts' or supervisor's e-mail about the deadline: no personal data."""
        deadline = self.state.deadline
        assert deadline is not None
        self._queue_email(
            template, [to], key_step,
            {
                "request_id": self._key(),
                "workflow_id": workflow.info().workflow_id,
                "process": self.PROCESS_LABEL,
                "step": deadline.rule,
                "due_at": common.iso(deadline.due_at),
                **extra,
            },
        )  # fmt: skip

    def _queue_email(self, template: str, to: list[str], key_step: str, context: dict) -> None:
        # The run id tells registrations apart: a later registration (or change) reuses the
        # workflow id, and must get that run's e-mails.
        info = workflow.info()
        self.state.pending.append(
            EmailRequest(
                key=f"{info.workflow_id}:{key_step}:{info.run_id}",
                template=template,
                to=to,
                context={**self._email_base(), **context},
            )
        )

    # --- state helpers -----------------------------------------------------------------

    def _input(self) -> Any:
        assert self.input is not None
        return self.input

    def _decoded(self) -> bool:
        return self.input is not None

    def _key(self) -> str:
        if self.input is not None:
            return getattr(self.input, self.KEY_FIELD)
        return workflow.info().workflow_id.removeprefix(self.ID_PREFIX)

    def _email_base(self) -> dict[str, Any]:
        return {}

    def _row(self) -> dict[str, Any]:
        """The store row this process keeps beside the event (``technician=``, ...)."""
        return {}

    def _search_attributes(self) -> dict[str, Any]:
        """Every search attribute of this process, in the order it has always upserted them."""
        raise NotImplementedError

    def _next_actor(self) -> str | None:
        if self.state.status != PENDING:
            return None
        return self.PROCESS.next_actor(PENDING) if self._decoded() else "system"

    def _due_at(self) -> datetime | None:
        state = self.state
        if state.status == PENDING and state.deadline is not None:
            return state.deadline.due_at
        return None

    def _actions(self) -> list[Action]:
        return [Action(**a) for a in self.PROCESS.actions(self.state.status)]

    def _transition(
        self,
        action: str,
        *,
        actor: Actor | None = None,
        reasons: list[Reason] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        state = self.state
        state.seq += 1
        state.updated_at = workflow.now()
        workflow_id = workflow.info().workflow_id
        state.pending.append(
            Transition(
                workflow_id=workflow_id,
                event_key=f"{state.seq:04d}-{action}",
                process=self.STORE_PROCESS,
                action=action,
                status=state.status,
                at=state.updated_at,
                actor=common.on_record(actor),
                reasons=reasons or [],
                data=data or {},
                **self._row(),
            )
        )
        common.upsert_changed(state.search_attributes, **self._search_attributes())

    def _decide(self, actor: Actor, action: str, status: str, reasons: list[Reason]) -> None:
        self.state.decisions.append(
            Decision(at=workflow.now(), actor=common.on_record(actor), action=action, reasons=reasons)
        )
        self.state.status = status

    def _record_rejection(self, actor: Actor, reasons: list[Reason]) -> None:
        """The analyst's rejection, decided and recorded; the workflow mails it."""
        self._decide(actor, "reject", "REJECTED", list(reasons))
        self._transition("rejected", actor=actor, reasons=list(reasons))

    # --- updates -----------------------------------------------------------------------
    # As in AccessRequest: ``common.process_update`` declares each; ``_check`` runs the
    # rules table (status, role, who the actor is) and then ``_rules_<update>``; the
    # handler checks again under the lock, runs ``_<update>`` and answers an ack.

    def _check(self, update: str, args: Any, *, again: bool = False) -> Any:
        parsed = parse_or_refuse(self.ARGS[update], args)
        rules.check(
            self.PROCESS, update, self.state.status, parsed.actor, rules.Parties(),
            identity=self.identity_checks and not again,
        )  # fmt: skip
        own = getattr(self, f"_rules_{update}", None)
        if own is not None:
            own(parsed)
        return parsed

    def _rules_reject(self, parsed: Any) -> None:
        require_reasons(parsed.reasons, self.REJECT_USE, "reasons")

    async def _apply(self, update: str, args: Any) -> UpdateAck:
        act = getattr(self, f"_{update}")
        await common.decide(self.lock, lambda raw: self._check(update, raw, again=True), args, act)
        return UpdateAck(id=self._key(), update=update, status=self.state.status, sequence=self.state.seq)
