"""What the inbox's pages show, computed: the queue (from the store), deadlines as people
say them, masks for personal data, and the pt-BR labels of statuses and actions.

Times are shown in America/Sao_Paulo, dates dd/mm/aaaa, time left in business days of
the distributor's calendar (domain/calendar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from domain.calendar import TZ, default_calendar, local_date
from domain.rules import ACCESS, DISTRIBUTOR_TURN

PAGE_SIZE = 25
CLASSES = {"micro": "Microgeração", "mini": "Minigeração"}
KINDS = {"request": "Solicitação de acesso", "inquiry": "Consulta de acesso"}
ROLES = {
    "analyst": "analista", "supervisor": "supervisor(a)", "inspector": "inspetor(a)",
    "auditor": "auditor(a)", "technician": "RT", "customer": "cliente", "system": "sistema",
}
STATUS_TEXT = {
    "RECEIVED": "Em triagem",
    "REFUSED": "Recusada na triagem",
    "AWAITING_APR": "Aguardando cadastro no APR Web",
    "LAPSED": "Reprovada por decurso de prazo",
    "UNDER_ANALYSIS": "Em análise",
    "SUSPENDED": "Suspensa",
    "REPROVED": "Reprovada",
    "APPROVED": "Parecer de acesso emitido",
    "INSPECTION_REQUESTED": "Vistoria solicitada",
    "INSPECTION_REPROVED": "Vistoria reprovada",
    "CONNECTED": "Conectada",
    "AWAITING_ANSWER": "Consulta aguardando resposta",
    "ANSWERED": "Consulta respondida",
    "CANCELLED": "Cancelada",
}
ACTION_TEXT = {
    "assign": "Assumir",
    "approve": "Aprovar e emitir parecer",
    "suspend": "Suspender com pendências",
    "reprove": "Reprovar",
    "declare_works": "Declarar obras",
    "pause_clock": "Suspender o prazo",
    "resume_clock": "Retomar o prazo",
    "answer_inquiry": "Responder a consulta",
    "record_inspection": "Registrar a vistoria",
}
RULE_TEXT = {
    "apr_window": "cadastro no APR Web",
    "pendencies_answer": "resposta às pendências",
    "parecer": "emissão do parecer de acesso",
    "inspection_request_window": "pedido de vistoria",
    "inspection": "realização da vistoria",
    "inquiry_answer": "resposta à consulta",
    "technician_review": "análise do cadastro do RT",
}
EVENT_TEXT = {
    "received": "Solicitação recebida",
    "accepted": "Solicitação aceita na triagem",
    "refused": "Recusada na triagem",
    "apr_registered": "Cadastro no APR Web",
    "apr_registered_after_lapse": "NS reprovada cadastrada no APR Web",
    "approved": "Parecer de acesso emitido",
    "suspend": "Suspensa com pendências",
    "reprove": "Reprovada",
    "corrections_attached": "Correções anexadas",
    "reanalysis_requested": "Reanálise solicitada",
    "works_declared": "Obras declaradas",
    "clock_paused": "Prazo suspenso",
    "clock_resumed": "Prazo retomado",
    "answered": "Consulta respondida",
    "inspection_requested": "Vistoria solicitada",
    "inspection_reproved": "Vistoria reprovada",
    "connected": "Conectada",
    "withdrawn": "Desistência",
    "assigned": "Atribuída",
    "lapsed": "Reprovada por decurso de prazo",
    "cancelled": "Cancelada",
    "sla_breached": "Prazo descumprido",
    "approve": "Aprovada: parecer de acesso emitido",
    "declare_works": "Obras declaradas",
    "pause_clock": "Prazo suspenso",
    "resume_clock": "Prazo retomado",
    "answer_inquiry": "Consulta respondida",
    "inspection_approved": "Vistoria aprovada",
    "withdraw": "Desistência",
    "lapse": "NS reprovada por decurso de prazo (24 h sem cadastro no APR Web)",
    "cancel_lapse": "Cancelada por decurso de prazo",
    "email_change_requested": "Troca do e-mail do RT pedida (código enviado ao novo endereço)",
    "email_changed": "E-mail do RT trocado (código confirmado)",
}

# The e-mails by template, as their subjects say them (templates/email/*.subject.j2).
EMAIL_TEXT = {
    "analysis_started": "Em análise", "apr_lapsed": "Reprovada por decurso de prazo (APR Web)",
    "beneficiaries_received": "Cadastramento de UC recebedora recebido",
    "beneficiaries_registered": "UC recebedora cadastrada", "beneficiaries_rejected": "Cadastramento de UC recebedora não aceito",
    "cancelled": "Solicitação cancelada", "clock_paused": "Prazo suspenso", "clock_resumed": "Prazo retomado",
    "connected": "Micro/minigeração conectada", "deadline_reminder": "Lembrete de prazo",
    "inquiry_answered": "Resposta à consulta de acesso", "inquiry_received": "Consulta de acesso recebida",
    "inspection_reproved": "Vistoria reprovada", "inspection_requested": "Vistoria solicitada",
    "parecer_issued": "Parecer de acesso emitido", "reanalysis_started": "Reanálise iniciada",
    "reproved": "Reprovada", "request_received": "Solicitação de acesso recebida",
    "sla_escalation": "Prazo descumprido (supervisão)", "suspended": "Suspensa com pendências",
    "technician_agv_credentials": "AGV: login e senha inicial", "technician_apr_approved": "APR Web: cadastro de RT aprovado",
    "technician_apr_set_password": "APR Web: registre a sua senha", "technician_received": "Cadastro de RT recebido",
    "technician_rejected": "Cadastro de RT não aprovado", "technician_credentials": "Credenciais do RT",
    "technician_email_change_code": "Código para confirmar o novo e-mail do RT",
    "technician_email_change_notice": "Aviso de troca do e-mail do RT",
}


def now() -> datetime:
    return datetime.now(timezone.utc)


def to_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def fmt_date(value: Any) -> str:
    """dd/mm/aaaa; a calendar date (``2027-01-01``) as is, a moment in São Paulo time."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return "—"
    moment = to_dt(value)
    return moment.astimezone(TZ).strftime("%d/%m/%Y") if moment else "—"


def fmt_datetime(value: Any) -> str:
    moment = to_dt(value)
    return moment.astimezone(TZ).strftime("%d/%m/%Y %H:%M") if moment else "—"


def business_days_left(due: datetime, at: datetime | None = None) -> int:
    """Business days from today (São Paulo) to the due date: negative when overdue."""
    at = at or now()
    return default_calendar().business_days_between(local_date(at), local_date(due))


@dataclass
class Due:
    text: str
    overdue: bool = False
    paused: bool = False
    days: int | None = None


def due_text(value: Any, *, paused: bool = False, at: datetime | None = None) -> Due:
    """"vence em 3 dias úteis (17/12/2026 23:59)", "vencido há 2 dias úteis", "prazo suspenso"."""
    if paused:
        return Due("prazo suspenso", paused=True)
    due = to_dt(value)
    if due is None:
        return Due("sem prazo")
    at = at or now()
    days = business_days_left(due, at)
    when = fmt_datetime(due)
    if due < at:
        late = max(-days, 0)
        if late == 0:
            return Due(f"vencido hoje ({when})", overdue=True, days=days)
        return Due(f"vencido há {late} {'dia útil' if late == 1 else 'dias úteis'} ({when})", overdue=True, days=days)
    if days == 0:
        return Due(f"vence hoje ({when})", days=0)
    return Due(f"vence em {days} {'dia útil' if days == 1 else 'dias úteis'} ({when})", days=days)


def mask_document(value: str | None) -> str:
    """CPF ``***.456.789-**``; CNPJ ``**.***.333/0001-**``."""
    if not value:
        return "—"
    digits = "".join(c for c in value if c.isalnum())
    if len(digits) == 11:
        return f"***.{digits[3:6]}.{digits[6:9]}-**"
    if len(digits) == 14:
        return f"**.***.{digits[5:8]}/{digits[8:12]}-**"
    return "***"


def mask_email(value: str | None) -> str:
    if not value or "@" not in value:
        return "—"
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_recipient(value: str) -> str:
    if value.startswith("technician:"):
        return f"RT {value.split(':', 1)[1]}"
    return mask_email(value)


# --- the queue -------------------------------------------------------------------------------


@dataclass
class QueueFilters:
    status: str = ""
    klass: str = ""
    technician: str = ""
    overdue: bool = False
    due_within: int | None = None
    breached: bool = False
    mine: bool = False
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **override: Any) -> str:
        from urllib.parse import urlencode

        values = {
            "status": self.status, "classe": self.klass, "rt": self.technician,
            "vencidas": "1" if self.overdue else "", "vence_em": "" if self.due_within is None else str(self.due_within),
            "descumpridas": "1" if self.breached else "", "minhas": "1" if self.mine else "",
            "pagina": str(self.page) if self.page > 1 else "",
        }
        values.update({k: v for k, v in override.items()})
        return urlencode({k: v for k, v in values.items() if v})


def parse_filters(params: Any) -> QueueFilters:
    """From the query string; a bad value is named and ignored (the rest still applies)."""
    import re

    f = QueueFilters()
    status = (params.get("status") or "").strip()
    if status:
        if status in DISTRIBUTOR_TURN:
            f.status = status
        else:
            f.errors["status"] = "status fora da caixa de entrada"
    klass = (params.get("classe") or "").strip()
    if klass:
        if klass in CLASSES:
            f.klass = klass
        else:
            f.errors["classe"] = "classe deve ser micro ou mini"
    tech = (params.get("rt") or "").strip().upper()
    if tech:
        if re.fullmatch(r"(CREA|CAU)-[A-Z]{2}-[A-Z0-9]{1,20}", tech):
            f.technician = tech
        else:
            f.errors["rt"] = "RT no formato CONSELHO-UF-REGISTRO (ex.: CREA-MG-123456)"
    f.overdue = params.get("vencidas") == "1"
    f.breached = params.get("descumpridas") == "1"
    f.mine = params.get("minhas") == "1"
    within = (params.get("vence_em") or "").strip()
    if within:
        if within.isdigit() and int(within) <= 365:
            f.due_within = int(within)
        else:
            f.errors["vence_em"] = "dias úteis: número inteiro de 0 a 365"
    page = (params.get("pagina") or "1").strip()
    f.page = int(page) if page.isdigit() and 1 <= int(page) <= 100000 else 1
    return f


@dataclass
class QueueRow:
    request_id: str
    kind: str
    service_note: str | None
    protocol: str | None
    generation_class: str | None
    status: str
    next_actor: str | None
    due_at: datetime | None
    breached: bool
    technician: str | None
    assignee: str | None
    due: Due
    paused: bool = False


@dataclass
class Queue:
    rows: list[QueueRow]
    total: int
    counts: dict[str, int]
    page: int
    pages: int


def load_queue(store: Any, f: QueueFilters, user_id: str, at: datetime | None = None) -> Queue:
    """The distributor's queue from the store: ordered by due date (overdue first, no due
    date last), with the filters, the counts per status and one page."""
    import sqlalchemy as sa

    from activities.tables import EventRecord, RequestRecord

    at = at or now()
    req = RequestRecord.__table__
    ev = EventRecord.__table__
    conditions = [req.c.status.in_(DISTRIBUTOR_TURN)]
    if f.klass:
        conditions.append(req.c.generation_class == f.klass)
    if f.technician:
        conditions.append(req.c.technician == f.technician)
    if f.overdue:  # a paused deadline is not running out (prazo suspenso)
        conditions.append(req.c.due_at < at)
        conditions.append(req.c.clock_paused.is_(False))
    if f.due_within is not None:
        from domain.calendar import end_of_day

        last_day = default_calendar().add_business_days(local_date(at), f.due_within) if f.due_within else local_date(at)
        conditions.append(req.c.due_at <= end_of_day(last_day))
        conditions.append(req.c.clock_paused.is_(False))
    if f.breached:
        conditions.append(req.c.sla_breaches > 0)
    with store.connection(write=False) as conn:
        if f.mine:
            # the latest assignment of each request (events in the order they were written)
            # names this user: one query, in the database (JSON field read by SQLite and PG)
            latest = (sa.select(sa.func.max(ev.c.id).label("id")).where(ev.c.action == "assigned")
                      .group_by(ev.c.workflow_id).subquery())
            mine = (sa.select(ev.c.workflow_id).join(latest, ev.c.id == latest.c.id)
                    .where(ev.c.data["analyst"].as_string() == user_id))
            conditions.append(req.c.workflow_id.in_(mine))
        counts = {
            status: n for status, n in conn.execute(
                sa.select(req.c.status, sa.func.count()).where(*conditions).group_by(req.c.status)
            )
        }
        if f.status:
            conditions.append(req.c.status == f.status)
        total = sum(counts.values()) if not f.status else counts.get(f.status, 0)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(f.page, pages)
        rows = conn.execute(
            sa.select(req)
            .where(*conditions)
            .order_by(req.c.due_at.is_(None), req.c.due_at, req.c.request_id)
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).mappings().all()
        assignees: dict[str, str | None] = {}
        if rows:
            for row in conn.execute(
                sa.select(ev.c.workflow_id, ev.c.data)
                .where(ev.c.action == "assigned", ev.c.workflow_id.in_([r["workflow_id"] for r in rows]))
                .order_by(ev.c.id)
            ):
                assignees[row.workflow_id] = _analyst_of(row.data)
    out = []
    for row in rows:
        due_at = to_dt(row["due_at"])
        out.append(QueueRow(
            request_id=row["request_id"], kind=row["kind"], service_note=row["service_note"],
            protocol=row["protocol"], generation_class=row["generation_class"], status=row["status"],
            next_actor=ACCESS.next_actor(row["status"]), due_at=due_at, breached=(row["sla_breaches"] or 0) > 0,
            technician=row["technician"], assignee=assignees.get(row["workflow_id"]),
            due=due_text(due_at, paused=bool(row["clock_paused"]), at=at), paused=bool(row["clock_paused"]),
        ))
    return Queue(rows=out, total=total, counts={s: counts.get(s, 0) for s in DISTRIBUTOR_TURN}, page=page, pages=pages)


def _analyst_of(data: Any) -> str | None:
    if isinstance(data, str):
        import json

        try:
            data = json.loads(data)
        except ValueError:
            return None
    return data.get("analyst") if isinstance(data, dict) else None


def today() -> date:
    return local_date(now())
