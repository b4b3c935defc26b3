"""What the ``AccessRequest`` shows of its state: the store's event row, the context of
its e-mails, and the ``status`` snapshot. Pure reads of ``AccessState``; no commands.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.rules import ACCESS
    from models.access import AccessStatus, input_digest
    from models.acks import Action
    from models.access_state import AccessState
    from models.activities import EmailRequest, RequestRow, Transition
    from models.names import SYSTEM_ACTOR_ID

from workflows import common


def transition(state: AccessState, action: str, *, actor=None, reasons=None, documents=None,
               data=None) -> Transition:
    """The store's record of the step just taken (``state.seq`` already bumped)."""
    workflow_id = workflow.info().workflow_id
    deadline = state.deadline
    inp = state.input
    return Transition(
        workflow_id=workflow_id,
        event_key=f"{state.seq:04d}-{action}",
        process="access",
        action=action,
        status=state.status,
        at=state.updated_at,
        actor=common.on_record(actor),
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
            workflow_id=workflow_id,
            request_id=inp.request_id,
            kind=inp.kind,
            status=state.status,
            generation_class=inp.generation.generation_class,
            installation_number=inp.installation_number,
            service_note=state.service_note,
            protocol=state.protocol,
            due_at=deadline.due_at if deadline else None,
            due_rule=deadline.rule if deadline else None,
            sla_breaches=len(state.sla_breaches),
            technician=technician_key(state),
            cycle=state.cycle,
            clock_paused=bool(deadline and deadline.paused_at is not None),
            customer_digest=state.customer_digest,
            created_at=state.created_at,
            updated_at=state.updated_at,
        ),
    )


def upsert_search_attributes(state: AccessState) -> None:
    deadline = state.deadline
    common.upsert_changed(
        state.search_attributes,
        GdStatus=state.status,
        GdKind=state.input.kind,
        GdClass=state.input.generation.generation_class,
        GdServiceNote=state.service_note,
        GdProtocol=state.protocol,
        GdTechnician=technician_key(state),
        GdNextActor=ACCESS.next_actor(state.status),
        GdDueAt=deadline.due_at if deadline and deadline.paused_at is None else None,
        GdSlaBreached=bool(state.sla_breaches),
        GdAssignee=state.assignee,
    )


def technician_key(state: AccessState) -> str | None:
    return state.input.technician.key if state.input.technician else None


def email_context(state: AccessState) -> dict[str, Any]:
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
        "technician": technician_key(state),
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


def snapshot(state: AccessState) -> AccessStatus:
    deadline = state.deadline
    inp = state.input
    return AccessStatus(
        request_id=inp.request_id,
        kind=inp.kind,
        status=state.status,  # type: ignore[arg-type]
        policy=state.policy,
        generation_class=inp.generation.generation_class,
        technician=technician_key(state),
        motive=(inp.motive or "new_connection") if inp.kind == "request" else None,
        service_note=state.service_note,
        protocol=state.protocol,
        service_notes=list(state.service_notes),
        due_at=deadline.due_at if deadline else None,
        due_rule=deadline.rule if deadline else None,
        clock_paused=bool(deadline and deadline.paused_at is not None),
        next_actor=ACCESS.next_actor(state.status),
        cycle=state.cycle,
        works_declared=state.works_declared,
        sla_breaches=list(state.sla_breaches),
        documents=list(state.documents),
        decisions=list(state.decisions),
        deadlines=list(state.deadlines),
        notifications=list(state.notifications),
        inspection_findings=list(state.inspection_findings),
        beneficiaries_workflow_id=state.beneficiaries_workflow_id,
        assignee=state.assignee,
        actions=[Action(**a) for a in ACCESS.actions(state.status)],
        sequence=state.seq,
        pending_effects=len(state.pending),
        input_digest=input_digest(inp),
        created_at=state.created_at,
        updated_at=state.updated_at,
    )


# The largest status a step carries to the store (JSON characters; a typical one is 2–5 KB).
MAX_STORED_STATUS_CHARS = 64_000


def with_status(state: AccessState, effect: Transition) -> Transition:
    """``effect`` (the first queued effect, about to run) carrying the ``status`` the query
    answers once it is recorded: the state now (e-mails queued before it already sent),
    without this effect among the pending ones. Only the activity's input changes (no
    command), so histories written before it still replay."""
    settled = snapshot(state).model_copy(update={"pending_effects": max(len(state.pending) - 1, 0)})
    dumped = settled.model_dump(mode="json")
    if len(json.dumps(dumped, ensure_ascii=False, separators=(",", ":"))) > MAX_STORED_STATUS_CHARS:
        # A request near its caps (domain/limits.py): the activity's input (and the
        # history) stays small; the store keeps only a mark, and the API asks the workflow.
        dumped = {"sequence": state.seq, "omitted": "too_large"}
    return effect.model_copy(update={"status_snapshot": dumped})


def refused_transition(request_id: str, kind: str, problems: list, now) -> Transition:
    """The store's record of an input refused at intake (there is no state to show)."""
    workflow_id = workflow.info().workflow_id
    return Transition(
        workflow_id=workflow_id,
        event_key="0000-refused",
        process="access",
        action="refused",
        status="REFUSED",
        at=now,
        data={"problems": [p.model_dump() for p in problems]},
        request=RequestRow(
            workflow_id=workflow_id,
            request_id=request_id or workflow_id,
            kind=kind,
            status="REFUSED",
            created_at=now,
            updated_at=now,
        ),
    )


def requesters(state: AccessState) -> list[str]:
    """Who hears of the request's steps: its customer, and its RT (by council key)."""
    recipients = [state.input.customer.email]
    if state.input.technician is not None:
        recipients.append(f"technician:{state.input.technician.key}")
    return recipients


def inquiry_recipients(inp: Any) -> list[str]:
    """A consulta's answer: the customer, and the integrator when the input names one with
    an e-mail (seed: a consulta may be filed by the customer or the integrator)."""
    to = [inp.customer.email]
    integrator = inp.integrator
    if integrator is not None and integrator.email and integrator.email not in to:
        to.append(integrator.email)
    return to


def beneficiaries_payload(inp: Any) -> dict[str, Any]:
    """The input of the BeneficiaryRegistration child, started once the plant is connected."""
    return {
        "request_id": inp.request_id,
        "generator_installation": inp.installation_number,
        "holder_document": inp.customer.document,
        "modality": inp.generation.modality,
        "actor": {"id": SYSTEM_ACTOR_ID, "role": "system"},
        "allocation": inp.beneficiaries.model_dump(mode="json"),
        "notify_email": inp.customer.email,
    }


def email(state: AccessState, template: str, to: list[str], step: str,
          attachments: list, extra: dict[str, Any]) -> EmailRequest:
    """An e-mail of this step; its key makes a resend after a retry a duplicate."""
    return EmailRequest(
        key=f"{workflow.info().workflow_id}:{template}:{step}:{state.cycle}:{state.seq}",
        template=template,
        to=to,
        context={**email_context(state), "step": step, **extra},
        attachments=attachments,
    )
