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

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.calendar import TZ
    from domain.rules import TECHNICIAN
    from models.activities import CredentialsRequest, EmailResult, TechnicianRow
    from models.common import Actor, Notification, Problem, parse_or_problems
    from models.ids import technician_id
    from models.names import Activities, Signals, Updates, Workflows
    from models.technician import (
        TechnicianApproveArgs,
        TechnicianInput,
        TechnicianRejectArgs,
        TechnicianStatus,
    )

from workflows import common
from workflows.common import reasons_context, refuse
from workflows.review import PENDING, ReviewWorkflow

SITUATIONS = {"regular": "regular", "irregular": "irregular", "not_found": "não encontrado"}


def local_text(moment: Any) -> str:
    """dd/mm/aaaa hh:mm in America/Sao_Paulo."""
    return moment.astimezone(TZ).strftime("%d/%m/%Y %H:%M")


# TechnicianInput carries no policy and both shipped policies agree on this rule.
POLICY = "seed"
RULE = "technician_review"
PROCESS_LABEL = "Cadastro de Responsável Técnico"
ID_PREFIX = "gd-technician-"
# Patch ids (workflow.patched; docs/PATCHING.md): histories written before still replay.
DEADLINE_WATCH = "technician-deadline-watch-v1"
# Who the actor is (the orchestrator's own id refused), as AccessRequest's PARTY_CHECK.
PARTY_CHECK = "technician-party-check-v1"


@workflow.defn(name=Workflows.TECHNICIAN_REGISTRATION)
class TechnicianRegistrationWorkflow(ReviewWorkflow):
    PROCESS = TECHNICIAN
    STORE_PROCESS = "technician"
    PROCESS_LABEL = PROCESS_LABEL
    ARGS = {Updates.APPROVE: TechnicianApproveArgs, Updates.REJECT: TechnicianRejectArgs}
    ID_PREFIX = ID_PREFIX
    INPUT = TechnicianInput
    KEY_FIELD = "key"
    PARTY_CHECK = PARTY_CHECK
    REJECT_USE = "reject_technician"

    input: TechnicianInput | None

    @workflow.run
    async def run(self, raw: Any) -> TechnicianStatus:
        # First thing in the run, before any local activity (docs/PATCHING.md); then the
        # party-check patch, intake and the loop (ReviewWorkflow._review).
        watching = workflow.patched(DEADLINE_WATCH)
        return await self._review(raw, watching)

    async def _run_effect(self, effect: Any) -> list:
        if isinstance(effect, CredentialsRequest):
            return await _send_credentials(effect)
        return await super()._run_effect(effect)

    # --- intake ------------------------------------------------------------------------

    def _id_problems(self, parsed: TechnicianInput, workflow_id: str) -> list[Problem]:
        expected = technician_id(parsed.council, parsed.uf, parsed.registration)
        # The id is what makes a second registration of the same RT join this one.
        if expected == workflow_id:
            return []
        return [
            Problem(
                field="registration",
                code="workflow_id_mismatch",
                message=f"o id do processo deve ser {expected} "
                "(conselho, UF e registro normalizados)",
            )
        ]

    async def _open_review(self) -> None:
        inp = self._input()
        state = self.state
        state.deadline = await common.compute_deadline(POLICY, RULE, workflow.now())
        state.deadlines.append(common.deadline_record(state.deadline))
        state.status = PENDING
        self._transition(
            "submitted",
            actor=Actor(id=inp.key, role="technician"),
            data={"rule": RULE, "due_at": common.iso(state.deadline.due_at), "policy": POLICY},
        )
        self._queue_email(
            "technician_received", [inp.email], "received",
            {"recipient_name": inp.name, "due_at": common.iso(state.deadline.due_at), "title": inp.title},
        )  # fmt: skip

    # --- what it records -----------------------------------------------------------------

    def _email_base(self) -> dict[str, Any]:
        return {"technician": self._key()}

    def _row(self) -> dict[str, Any]:
        if self.input is None:  # a refused input may not even have a valid key
            return {}
        return {
            "technician": TechnicianRow(
                key=self.input.key,
                workflow_id=workflow.info().workflow_id,
                status=self.state.status,
                updated_at=self.state.updated_at,
                email=self.input.email,
            )
        }

    def _search_attributes(self) -> dict[str, Any]:
        return {
            "GdStatus": self.state.status,
            "GdKind": "technician",
            "GdTechnician": self.input.key if self.input is not None else None,
            "GdNextActor": self._next_actor(),
            "GdDueAt": self._due_at(),
            "GdSlaBreached": bool(self.state.sla_breaches),
        }

    def _snapshot(self) -> TechnicianStatus:
        state = self.state
        return TechnicianStatus(
            technician=self._key(),
            status=state.status,  # type: ignore[arg-type]
            due_at=self._due_at(),
            next_actor=self._next_actor(),
            sla_breaches=list(state.sla_breaches),
            decisions=list(state.decisions),
            deadlines=list(state.deadlines),
            notifications=list(state.notifications),
            refusal_reasons=list(state.refusal),
            actions=self._actions(),
            sequence=state.seq,
            created_at=state.created_at,
            updated_at=state.updated_at,
        )

    @workflow.signal(name=Signals.EMAIL_CHANGED)
    def email_changed(self, email: str) -> None:
        """The RT confirmed a new address (workflows/email_change.py) while in review: the
        rejection or the credentials, and the store rows, use it from now on. No history
        written before has this signal, so they replay unchanged."""
        if self.input is None:
            return
        parsed, problems = parse_or_problems(
            TechnicianInput, {**self.input.model_dump(mode="json"), "email": email})
        if parsed is not None and not problems:
            self.input = parsed

    # --- updates (workflows/review.py; who and when: domain.rules.TECHNICIAN) ------------

    approve = common.process_update(Updates.APPROVE)
    reject = common.process_update(Updates.REJECT)

    def _rules_approve(self, parsed: TechnicianApproveArgs) -> None:
        check = parsed.registration_check
        if check is not None and check.situation != "regular":
            refuse(
                "registration_check.situation: a aprovação exige o registro regularizado no "
                f"CREA ou no CAU (verificado: {SITUATIONS[check.situation]})"
            )

    def _approve(self, parsed: TechnicianApproveArgs) -> None:
        inp = self._input()
        self._decide(parsed.actor, "approve", "APPROVED", [])
        check = parsed.registration_check
        data: dict[str, Any] = {}
        if check is not None:
            data = {
                "registration_check": check.model_dump(mode="json"),
                # What the timeline shows (audit/timeline: "observações").
                "notes": f"registro {inp.key} verificado em {check.source} em "
                f"{local_text(check.checked_at)}: {SITUATIONS[check.situation]}",
            }
            self.state.decisions[-1] = self.state.decisions[-1].model_copy(
                update={"text": data["notes"]})
        self._transition("approved", actor=parsed.actor, data=data)
        info = workflow.info()
        self.state.pending.append(
            CredentialsRequest(
                key=f"{info.workflow_id}:credentials:{info.run_id}",
                technician=inp.key,
                name=inp.name,
                email=inp.email,
                cpf=inp.cpf,
            )
        )

    def _reject(self, parsed: TechnicianRejectArgs) -> None:
        inp = self._input()
        self._record_rejection(parsed.actor, parsed.reasons)
        self._queue_email(
            "technician_rejected", [inp.email], "rejected",
            {"recipient_name": inp.name, "reasons": reasons_context(parsed.reasons)},
        )  # fmt: skip


async def _send_credentials(request: CredentialsRequest) -> list[Notification]:
    try:
        results: list[EmailResult] = await workflow.execute_activity(
            Activities.SEND_TECHNICIAN_CREDENTIALS,
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
