"""The pt-BR timeline of one workflow, read from its history (every run of the chain).

Source: the history itself, decoded with the worker's data converter (codec included):

* every ``record_transition`` activity the workflow scheduled carries the step as decided
  (``Transition``: action, status, time, actor, reasons, documents, and the deadline in
  force after the step in ``data``) — one timeline row each;
* every ``send_email`` (and ``send_technician_credentials``) activity gives an e-mail: the
  template and recipients from its input, the outcome from its result;
* child workflows started, continue-as-new and the final result are noted too.

The deadline in force before each step, and whether the step met it, come from
``audit.windows`` (the same reading as the SLA report). Recipients' e-mail addresses are
masked unless asked for (``full_recipients``): the timeline is a report, and may travel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType

from audit.export import Export
from audit.windows import DeadlineTracker, StepDeadline, rule_label
from models.names import SYSTEM_ACTOR_ID, Activities, Workflows

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "audit"

PROCESS_OF_TYPE = {
    Workflows.ACCESS_REQUEST: "access",
    Workflows.TECHNICIAN_REGISTRATION: "technician",
    Workflows.BENEFICIARY_REGISTRATION: "beneficiaries",
}
TYPE_LABELS = {
    Workflows.ACCESS_REQUEST: "Solicitação/consulta de acesso",
    Workflows.TECHNICIAN_REGISTRATION: "Cadastro de Responsável Técnico",
    Workflows.BENEFICIARY_REGISTRATION: "Cadastramento de UC recebedora",
}
ACTION_LABELS = {
    "refused": "Recusado na triagem",
    "received": "Recebido",
    "submitted": "Cadastro enviado para análise",
    "apr_registered": "NS registrada no APR Web; análise iniciada",
    "apr_registered_after_lapse": "NS reprovada cadastrada no APR Web",
    "apr_window_lapsed": "NS reprovada por decurso de prazo (APR Web)",
    "approved": "Aprovado",
    "suspend": "Análise suspensa (pendências)",
    "reprove": "Projeto reprovado",
    "corrections_attached": "Documentos corrigidos anexados",
    "reanalysis_requested": "Reanálise solicitada; nova NS",
    "works_declared": "Obras declaradas",
    "clock_paused": "Prazo suspenso",
    "clock_resumed": "Prazo retomado",
    "answered": "Consulta respondida",
    "inspection_requested": "Vistoria solicitada",
    "inspection_reproved": "Vistoria reprovada",
    "connected": "Vistoria aprovada; usina conectada",
    "withdrawn": "Desistência do solicitante",
    "lapsed_cancelled": "Cancelado por decurso de prazo",
    "reminder": "Lembrete de prazo enviado",
    "sla_breach": "Prazo descumprido; supervisão avisada",
    "rejected": "Reprovado",
    "registered": "Cadastramento confirmado",
    "child_started": "Processo vinculado iniciado",
    "continued_as_new": "Histórico continuado em nova execução",
    "completed": "Processo encerrado",
    "email_change_requested": "Troca do e-mail do RT pedida (código enviado ao novo endereço)",
    "email_changed": "E-mail do RT trocado (código confirmado)",
}
ACCESS_ACTION_LABELS = {"approved": "Parecer de acesso emitido", "received": "Recebida; NS e Protocolo emitidos"}
STATUS_LABELS = {
    "RECEIVED": "recebido",
    "REFUSED": "recusado",
    "AWAITING_APR": "aguardando APR Web",
    "LAPSED": "NS reprovada por decurso de prazo",
    "UNDER_ANALYSIS": "em análise",
    "SUSPENDED": "suspensa (pendências)",
    "REPROVED": "reprovada",
    "APPROVED": "aprovado",
    "INSPECTION_REQUESTED": "vistoria solicitada",
    "INSPECTION_REPROVED": "vistoria reprovada",
    "CONNECTED": "conectada",
    "AWAITING_ANSWER": "aguardando resposta",
    "ANSWERED": "respondida",
    "CANCELLED": "cancelada",
    "PENDING_REVIEW": "em análise",
    "REJECTED": "reprovado",
    "REGISTERED": "cadastrada",
}
ROLE_LABELS = {
    "customer": "cliente",
    "technician": "responsável técnico",
    "analyst": "analista",
    "supervisor": "supervisor",
    "inspector": "vistoriador",
    "system": "sistema",
}
EMAIL_STATUS = {"sent": "enviado", "duplicate": "já enviado (repetição)", "refused": "recusado"}
DOCUMENT_KINDS = {
    "commercial_id": "identificação do cliente",
    "access_form": "formulário de acesso",
    "electrical_project": "projeto elétrico",
    "art_rrt": "ART/RRT",
    "single_line_diagram": "diagrama unifilar",
    "descriptive_memorial": "memorial descritivo",
    "inverter_datasheet": "datasheet do inversor",
    "module_datasheet": "datasheet do módulo",
    "inverter_certificate": "certificado do inversor",
    "power_of_attorney": "procuração",
    "parecer": "parecer de acesso",
    "inspection_report": "relatório de vistoria",
    "correction": "correção",
    "other": "outro",
}
SYSTEM_RECIPIENTS = {"role:supervisor": "supervisão", "role:analysts": "analistas"}


@dataclass
class Document:
    kind: str
    sha256: str
    filename: str

    @property
    def kind_label(self) -> str:
        return DOCUMENT_KINDS.get(self.kind, self.kind)


@dataclass
class Email:
    at: datetime
    template: str
    recipients: list[str]
    status: str
    attachments: list[Document] = field(default_factory=list)
    detail: str | None = None


@dataclass
class Step:
    at: datetime
    action: str
    label: str
    status: str | None
    actor_id: str
    actor_role: str
    deadline: StepDeadline | None = None
    reasons: list[tuple[str, str | None]] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    run_id: str = ""

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status or "", self.status or "")

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.actor_role, self.actor_role)

    @property
    def verdict(self) -> str | None:
        return self.deadline.verdict(self.at) if self.deadline else None

    @property
    def deadline_rule_label(self) -> str | None:
        return rule_label(self.deadline.before_rule) if self.deadline and self.deadline.before_rule else None

    @property
    def next_rule_label(self) -> str | None:
        if not self.deadline or not self.deadline.after_rule:
            return None
        return rule_label(self.deadline.after_rule)

    @property
    def opens_deadline(self) -> bool:
        d = self.deadline
        return bool(d and d.after_due and (d.after_rule != d.before_rule or d.after_due != d.before_due))


@dataclass
class Timeline:
    workflow_id: str
    workflow_type: str
    run_ids: list[str]
    steps: list[Step]
    emails: list[Email]
    final_status: str | None
    generated_at: datetime

    @property
    def type_label(self) -> str:
        return TYPE_LABELS.get(self.workflow_type, self.workflow_type)

    def to_dict(self) -> dict[str, Any]:
        def doc(d: Document) -> dict[str, str]:
            return {"kind": d.kind, "sha256": d.sha256, "filename": d.filename}

        return {
            "workflow_id": self.workflow_id,
            "workflow_type": self.workflow_type,
            "runs": self.run_ids,
            "final_status": self.final_status,
            "steps": [
                {
                    "at": s.at.isoformat(),
                    "action": s.action,
                    "label": s.label,
                    "status": s.status,
                    "actor": {"id": s.actor_id, "role": s.actor_role},
                    "deadline": None if not s.deadline or not s.deadline.before_rule else {
                        "rule": s.deadline.before_rule,
                        "due_at": s.deadline.before_due.isoformat() if s.deadline.before_due else None,
                        "verdict": s.verdict,
                    },
                    "next_deadline": None if not s.deadline or not s.deadline.after_rule else {
                        "rule": s.deadline.after_rule,
                        "due_at": s.deadline.after_due.isoformat() if s.deadline.after_due else None,
                    },
                    "reasons": [{"code": c, "text": t} for c, t in s.reasons],
                    "documents": [doc(d) for d in s.documents],
                    "details": s.details,
                    "run_id": s.run_id,
                }
                for s in self.steps
            ],
            "emails": [
                {
                    "at": e.at.isoformat(),
                    "template": e.template,
                    "recipients": e.recipients,
                    "status": e.status,
                    "attachments": [doc(d) for d in e.attachments],
                    "detail": e.detail,
                }
                for e in self.emails
            ],
        }


# --- reading the history --------------------------------------------------------------


def local(moment: datetime | None) -> str:
    """``29/11/2026 14:05`` in the distributor's time zone."""
    if moment is None:
        return "—"
    return moment.astimezone(SAO_PAULO).strftime("%d/%m/%Y %H:%M")


def mask_recipient(recipient: str, full: bool = False) -> str:
    if recipient.startswith("technician:"):
        return f"RT {recipient.split(':', 1)[1]}"
    if recipient in SYSTEM_RECIPIENTS:
        return SYSTEM_RECIPIENTS[recipient]
    if "@" in recipient and not full:
        name, domain = recipient.split("@", 1)
        return f"{name[:1]}***@{domain}"
    return recipient


def _event_time(event) -> datetime:
    return event.event_time.ToDatetime(tzinfo=timezone.utc)


def _documents(refs) -> list[Document]:
    return [Document(kind=r.kind, sha256=r.sha256, filename=r.filename) for r in refs]


def _details(action: str, data: dict[str, Any], previous_note: str | None) -> list[str]:
    details: list[str] = []
    note = data.get("service_note")
    if note and note != previous_note:
        details.append(f"NS {note}")
    if data.get("reproved_service_note"):
        details.append(f"NS reprovada {data['reproved_service_note']}")
    for key, label in (("notes", "observações"), ("answer", "resposta"), ("reason", "motivo")):
        if data.get(key):
            details.append(f"{label}: {data[key]}")
    if data.get("requires_works"):
        details.append("parecer com obras")
    if data.get("paused_s"):
        days = f"{float(data['paused_s']) / 86400:.1f}".replace(".", ",")
        details.append(f"prazo suspenso por {days} dia(s)")
    if data.get("effective_from"):
        details.append(f"vigência a partir de {data['effective_from']}")
    for problem in data.get("problems") or []:
        field_name = problem.get("field") or ""
        details.append(f"{field_name}: {problem.get('message')}" if field_name else str(problem.get("message")))
    return details


async def build(export: Export, *, full_recipients: bool = False) -> Timeline:
    """Read every run of ``export`` into one timeline."""
    import worker
    from models.activities import CredentialsRequest, EmailRequest, EmailResult, Transition

    converter = worker.data_converter()

    async def decode(payloads, hint):
        values = await converter.decode(list(payloads), [hint])
        return values[0] if values else None

    workflow_type = export.workflow_type or ""
    process = PROCESS_OF_TYPE.get(workflow_type, "access")
    tracker = DeadlineTracker(export.workflow_id, process)
    steps: list[Step] = []
    emails: list[Email] = []
    final_status: str | None = None
    service_note: str | None = None

    for run in export.runs:
        scheduled: dict[int, tuple[str, Any, datetime]] = {}
        for event in run.history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = event.activity_task_scheduled_event_attributes
                name = attrs.activity_type.name
                payloads = attrs.input.payloads
                if name == Activities.RECORD_TRANSITION:
                    t: Transition = await decode(payloads, Transition)
                    deadline = tracker.feed(t.at, t.action, t.status, t.data)
                    label = (ACCESS_ACTION_LABELS if process == "access" else {}).get(t.action) or ACTION_LABELS.get(
                        t.action, t.action
                    )
                    steps.append(
                        Step(
                            at=t.at,
                            action=t.action,
                            label=label,
                            status=t.status,
                            actor_id=t.actor.id if t.actor else SYSTEM_ACTOR_ID,
                            actor_role=t.actor.role if t.actor else "system",
                            deadline=deadline,
                            reasons=[(r.code, r.text) for r in t.reasons],
                            documents=_documents(t.documents),
                            details=_details(t.action, t.data, service_note),
                            run_id=run.run_id,
                        )
                    )
                    service_note = t.data.get("service_note") or service_note
                elif name == Activities.SEND_EMAIL:
                    request: EmailRequest = await decode(payloads, EmailRequest)
                    scheduled[event.event_id] = (name, request, _event_time(event))
                elif name == Activities.SEND_TECHNICIAN_CREDENTIALS:
                    request = await decode(payloads, CredentialsRequest)
                    scheduled[event.event_id] = (name, request, _event_time(event))
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attrs = event.activity_task_completed_event_attributes
                found = scheduled.pop(attrs.scheduled_event_id, None)
                if found is None:
                    continue
                name, request, at = found
                if name == Activities.SEND_EMAIL:
                    result: EmailResult = await decode(attrs.result.payloads, EmailResult)
                    emails.append(_email(request, at, EMAIL_STATUS.get(result.status, result.status),
                                         result.detail, full_recipients))
                else:
                    results = await decode(attrs.result.payloads, list[EmailResult])
                    for result in results or []:
                        emails.append(
                            Email(at=at, template=result.template or "technician_credentials",
                                  recipients=[f"RT {request.technician}"],
                                  status=EMAIL_STATUS.get(result.status, result.status), detail=result.detail)
                        )
            elif kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
                attrs = (
                    event.activity_task_failed_event_attributes
                    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                    else event.activity_task_timed_out_event_attributes
                )
                found = scheduled.get(attrs.scheduled_event_id)
                if found is not None and found[0] == Activities.SEND_EMAIL:
                    scheduled.pop(attrs.scheduled_event_id)
                    emails.append(_email(found[1], found[2], "falhou", attrs.failure.message or None, full_recipients))
            elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                attrs = event.start_child_workflow_execution_initiated_event_attributes
                steps.append(_system_step(event, "child_started", run.run_id,
                                          [f"{attrs.workflow_type.name} {attrs.workflow_id}"]))
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attrs = event.workflow_execution_continued_as_new_event_attributes
                steps.append(_system_step(event, "continued_as_new", run.run_id,
                                          [f"nova execução {attrs.new_execution_run_id}"]))
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                result = await decode(event.workflow_execution_completed_event_attributes.result.payloads, dict)
                final_status = (result or {}).get("status")
                steps.append(_system_step(event, "completed", run.run_id, [], status=final_status))
        for name, request, at in scheduled.values():
            if name == Activities.SEND_EMAIL:  # still running when exported
                emails.append(_email(request, at, "pendente", None, full_recipients))

    return Timeline(
        workflow_id=export.workflow_id,
        workflow_type=workflow_type,
        run_ids=[r.run_id for r in export.runs],
        steps=steps,
        emails=emails,
        final_status=final_status,
        generated_at=datetime.now(timezone.utc),
    )


def _email(request, at: datetime, status: str, detail: str | None, full: bool) -> Email:
    return Email(
        at=at,
        template=request.template,
        recipients=[mask_recipient(r, full) for r in [*request.to, *request.cc]],
        status=status,
        attachments=_documents(request.attachments),
        detail=detail,
    )


def _system_step(event, action: str, run_id: str, details: list[str], status: str | None = None) -> Step:
    return Step(
        at=_event_time(event),
        action=action,
        label=ACTION_LABELS[action],
        status=status,
        actor_id=SYSTEM_ACTOR_ID,
        actor_role="system",
        details=details,
        run_id=run_id,
    )


# --- output ---------------------------------------------------------------------------


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local
    env.filters["rule_label"] = rule_label
    return env


def render_html(timeline: Timeline) -> str:
    return environment().get_template("timeline.html.j2").render(t=timeline)


def rich_tables(timeline: Timeline):
    """Two rich tables (steps, e-mails) for the terminal, readable at 100 columns."""
    from rich.table import Table

    steps = Table(title=f"Linha do tempo — {timeline.type_label} {timeline.workflow_id}", show_lines=True)
    steps.add_column("quando", no_wrap=True)
    steps.add_column("etapa", overflow="fold", ratio=3)
    steps.add_column("quem", overflow="fold", ratio=1)
    steps.add_column("prazo", overflow="fold", ratio=2)
    for s in timeline.steps:
        what = [f"[bold]{s.label}[/bold]"]
        if s.status_label:
            what.append(f"situação: {s.status_label}")
        what += [f"{c}: {t}" if t else c for c, t in s.reasons]
        what += s.details
        what += [f"{d.kind_label} {d.sha256[:16]}…" for d in s.documents]
        steps.add_row(local(s.at), _plain("\n".join(what)), f"{s.actor_id}\n({s.role_label})",
                      _plain(_deadline_text(s)))
    mails = Table(title="E-mails", show_lines=True)
    mails.add_column("quando", no_wrap=True)
    for column in ("modelo", "destinatários", "situação", "anexos"):
        mails.add_column(column, overflow="fold")
    for e in timeline.emails:
        mails.add_row(
            local(e.at),
            e.template,
            ", ".join(e.recipients),
            e.status if not e.detail else f"{e.status}: {e.detail}",
            "\n".join(f"{d.kind_label} {d.sha256[:16]}…" for d in e.attachments),
        )
    return steps, mails


def _deadline_text(step: Step) -> str:
    d = step.deadline
    if d is None:
        return ""
    lines = []
    if d.before_rule and d.before_due:
        lines.append(f"{rule_label(d.before_rule)} até {local(d.before_due)}: {step.verdict}")
    if step.opens_deadline:
        lines.append(f"novo: {step.next_rule_label} até {local(d.after_due)}")
    return "\n".join(lines) or "—"


def _plain(text: str):
    """Rich markup only where we put it: reasons and notes are people's text."""
    from rich.markup import escape
    from rich.text import Text

    return Text.from_markup(escape(text).replace("\\[bold]", "[bold]").replace("\\[/bold]", "[/bold]"))
