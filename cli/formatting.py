"""How the `gd` command line shows things to people: pt-BR labels, dates in the
distributor's time zone, "time left" counted in business days, and rich panels/tables.

Pure functions of the status models (no Temporal, no I/O), so they are tested alone.

Text that callers typed (reasons, notes, file names, findings, ids) is never read as rich
markup: every cell and title goes in as a ``rich.text.Text`` (``plain``), so a
``[bold red]`` or ``[link=…]`` in a reason prints as typed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from domain.calendar import TZ, BusinessCalendar, default_calendar, local_date
from models.access import AccessStatus
from models.technician import TechnicianStatus

STATUS_LABELS = {
    "RECEIVED": "recebida (em triagem)",
    "REFUSED": "recusada na triagem",
    "AWAITING_APR": "aguardando registro no APR Web",
    "LAPSED": "NS reprovada por decurso de prazo",
    "UNDER_ANALYSIS": "em análise",
    "SUSPENDED": "suspensa (pendências)",
    "REPROVED": "reprovada",
    "APPROVED": "aprovada (parecer de acesso emitido)",
    "INSPECTION_REQUESTED": "vistoria solicitada",
    "INSPECTION_REPROVED": "vistoria reprovada",
    "CONNECTED": "conectada",
    "AWAITING_ANSWER": "aguardando resposta",
    "ANSWERED": "respondida",
    "CANCELLED": "cancelada",
    "PENDING_REVIEW": "em análise",
    "REJECTED": "reprovado",
    "REGISTERED": "cadastrado",
}
STATUS_STYLES = {
    "REFUSED": "red", "LAPSED": "red", "REPROVED": "red", "INSPECTION_REPROVED": "red",
    "REJECTED": "red", "CANCELLED": "red", "SUSPENDED": "yellow", "AWAITING_APR": "yellow",
    "CONNECTED": "green", "ANSWERED": "green", "APPROVED": "green", "REGISTERED": "green",
}  # fmt: skip
ACTOR_LABELS = {
    "technician": "responsável técnico (RT)",
    "analyst": "analista",
    "customer": "cliente",
    "inspector": "vistoriador",
    "supervisor": "supervisor",
    "system": "sistema",
}
RULE_LABELS = {
    "apr_window": "registro no APR Web (24 h)",
    "parecer": "emissão do parecer de acesso",
    "pendencies_answer": "resposta às pendências",
    "inspection_request_window": "pedido de vistoria",
    "inspection": "realização da vistoria",
    "inquiry_answer": "resposta à consulta",
    "technician_review": "análise do cadastro do RT",
}
ACTION_LABELS = {
    "approve": "aprovação",
    "suspend": "suspensão",
    "reprove": "reprovação",
    "lapse": "reprovação por decurso de prazo",
    "cancel_lapse": "cancelamento por decurso de prazo",
    "declare_works": "obras declaradas",
    "pause_clock": "prazo suspenso",
    "resume_clock": "prazo retomado",
    "answer_inquiry": "resposta à consulta",
    "inspection_approved": "vistoria aprovada",
    "inspection_reproved": "vistoria reprovada",
    "withdraw": "desistência",
    "reject": "reprovação do cadastro",
    "confirm": "confirmação",
}
# The RT and beneficiary registrations are masculine ("cadastro"), requests feminine.
REGISTRATION_STATUS_LABELS = {
    "RECEIVED": "recebido (em triagem)",
    "REFUSED": "recusado na triagem",
    "PENDING_REVIEW": "em análise",
    "APPROVED": "aprovado",
    "REJECTED": "reprovado",
    "REGISTERED": "cadastrado",
}
ACTOR_SHORT = {
    "technician": "RT",
    "analyst": "analista",
    "customer": "cliente",
    "inspector": "vistoriador",
    "supervisor": "supervisor",
    "system": "sistema",
}
KIND_SHORT = {"request": "solic.", "inquiry": "consulta", "technician": "RT", "beneficiaries": "UCs"}
KIND_LABELS = {
    "request": "solicitação",
    "inquiry": "consulta",
    "technician": "cadastro de RT",
    "beneficiaries": "UCs recebedoras",
}


def label(table: dict[str, str], key: str | None, empty: str = "—") -> str:
    if not key:
        return empty
    return table.get(key, key)


def status_label(status: str | None, kind: str | None = None) -> str:
    """pt-BR words for a status; ``kind`` technician/beneficiaries reads it as a "cadastro"."""
    if kind in ("technician", "beneficiaries") and status in REGISTRATION_STATUS_LABELS:
        return REGISTRATION_STATUS_LABELS[status]
    return label(STATUS_LABELS, status)


def status_text(status: str | None, kind: str | None = None) -> Text:
    if not status:
        return Text("—")
    return Text.assemble(
        (status, f"bold {STATUS_STYLES.get(status, 'cyan')}"), f"  {status_label(status, kind)}"
    )


def fmt_dt(moment: datetime | None) -> str:
    """``22/04/2026 23:59`` in America/Sao_Paulo."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(TZ).strftime("%d/%m/%Y %H:%M")


def fmt_date(day: Any) -> str:
    return day.strftime("%d/%m/%Y") if day is not None else "—"


def _duration(delta: timedelta) -> str:
    minutes = max(1, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes:02d} min"
    return f"{hours} h" if hours else f"{minutes} min"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def time_left(
    due_at: datetime | None,
    now: datetime | None = None,
    *,
    paused: bool = False,
    calendar: BusinessCalendar | None = None,
) -> str:
    """"faltam 3 dias úteis", "faltam 5 h 12 min", "vencido há 2 dias úteis", "prazo suspenso".

    Days are business days of the distributor's calendar, counted from today's local date
    (the due day counts, today does not); under a day left, hours and minutes.
    """
    if paused:
        return "prazo suspenso"
    if due_at is None:
        return "sem prazo em curso"
    now = now or datetime.now(timezone.utc)
    cal = calendar or default_calendar()
    today, due_day = local_date(now), local_date(due_at)
    delta = due_at - now
    if delta >= timedelta(0):
        days = cal.business_days_between(today, due_day)
        if days == 0 or delta < timedelta(hours=24):
            text = _duration(delta)
            return f"{'falta' if text in ('1 h', '1 min') else 'faltam'} {text}"
        calendar_days = (due_day - today).days
        extra = f" ({_plural(calendar_days, 'dia corrido', 'dias corridos')})" if calendar_days != days else ""
        return f"{'falta' if days == 1 else 'faltam'} {_plural(days, 'dia útil', 'dias úteis')}{extra}"
    days = cal.business_days_between(due_day, today)
    if days == 0:
        return f"vencido há {_duration(-delta)}"
    return f"vencido há {_plural(days, 'dia útil', 'dias úteis')}"


def time_left_short(due_at: datetime | None, now: datetime | None = None) -> str:
    """The table form: "3 dias úteis", "23 h 59 min", "vencido há 2 dias úteis"."""
    if due_at is None:
        return "—"
    text = time_left(due_at, now).split(" (")[0]
    return text.removeprefix("faltam ").removeprefix("falta ")


def deadline_text(due_at: datetime | None, paused: bool = False, now: datetime | None = None) -> str:
    if due_at is None:
        return "—"
    return f"{fmt_dt(due_at)} — {time_left(due_at, now, paused=paused)}"


def actor_text(actor: Any) -> str:
    return f"{label(ACTOR_LABELS, actor.role)} {actor.id}"


def reasons_text(reasons: Iterable[Any]) -> str:
    return "; ".join(f"{r.code}: {r.text}" if r.text else r.code for r in reasons)


# --- JSON ---------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, indent=2, default=str)


# --- panels -------------------------------------------------------------------------------


def plain(value: Any) -> Text:
    """A cell or title shown as it is: never parsed as rich markup."""
    return value if isinstance(value, Text) else Text(str(value))


def add_plain_row(table: Table, *cells: Any) -> None:
    table.add_row(*(plain(cell) for cell in cells))


def titled(title: str) -> Text:
    return Text(title, style="bold")


def facts(rows: Sequence[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    for name, value in rows:
        add_plain_row(grid, name, value)
    return grid


def _decisions_table(decisions: Sequence[Any], with_ns: bool = True) -> Table:
    table = Table(title="Decisões", box=box.SIMPLE, title_justify="left", expand=False)
    table.add_column("quando", no_wrap=True)
    table.add_column("quem")
    table.add_column("ação")
    table.add_column("motivos / texto")
    if with_ns:
        table.add_column("NS", no_wrap=True)
    for d in decisions:
        detail = "; ".join(x for x in (reasons_text(d.reasons), getattr(d, "text", None) or "") if x)
        row = [fmt_dt(d.at), actor_text(d.actor), label(ACTION_LABELS, d.action), detail or "—"]
        if with_ns:
            row.append(getattr(d, "service_note", None) or "—")
        add_plain_row(table, *row)
    return table


def _documents_table(documents: Sequence[Any]) -> Table:
    table = Table(title="Documentos", box=box.SIMPLE, title_justify="left")
    table.add_column("tipo")
    table.add_column("arquivo")
    table.add_column("sha256", no_wrap=True)
    table.add_column("tamanho", justify="right")
    for d in documents:
        add_plain_row(table, d.kind, d.filename, d.sha256[:12], f"{d.size:,}".replace(",", "."))
    return table


def _breaches_table(breaches: Sequence[Any]) -> Table:
    table = Table(title="Prazos da distribuidora descumpridos (SLA)", box=box.SIMPLE,
                  title_justify="left", title_style="bold red")  # fmt: skip
    table.add_column("etapa")
    table.add_column("prazo")
    table.add_column("registrado em")
    for b in breaches:
        add_plain_row(table, label(RULE_LABELS, b.step), fmt_dt(b.due_at), fmt_dt(b.breached_at))
    return table


def _problems_table(problems: Sequence[Any]) -> Table:
    table = Table(title="Motivos da recusa", box=box.SIMPLE, title_justify="left", title_style="bold red")
    table.add_column("campo")
    table.add_column("regra")
    for p in problems:
        add_plain_row(table, p.field or "—", p.message)
    return table


def access_panel(st: Any, workflow_id: str, now: datetime | None = None) -> Panel:
    """`gd request status`: everything a person asks about one consulta or solicitação."""
    kind = label(KIND_LABELS, st.kind)
    title = f"{kind.capitalize()} {st.request_id or workflow_id}"
    if st.status == "REFUSED":  # nothing else happened: the reasons are the whole story
        refused = Group(facts([("Situação", status_text(st.status))]), _problems_table(st.refusal_reasons))
        return Panel(refused, title=titled(title), subtitle=plain(workflow_id), expand=False)
    shown: list[tuple[str, Any]] = [
        ("Situação", status_text(st.status)),
        ("Próximo a agir", label(ACTOR_LABELS, st.next_actor, "ninguém (encerrada)")),
    ]
    if st.due_at is not None:
        shown.append(
            ("Prazo", f"{label(RULE_LABELS, st.due_rule)}: {deadline_text(st.due_at, st.clock_paused, now)}")
        )
    cls = st.generation_class or "—"
    shown.append(("Tipo", f"{kind} · {'microgeração' if cls == 'micro' else 'minigeração' if cls == 'mini' else cls}"
                  f" · política {st.policy}"))  # fmt: skip
    if st.kind == "request":
        shown += [
            ("NS", st.service_note or "—"),
            ("Protocolo", st.protocol or "—"),
            ("Histórico de NS", " → ".join(st.service_notes) or "—"),
            ("RT", st.technician or "—"),
            ("Ciclo de análise", str(st.cycle) + (" (com obras)" if st.works_declared else "")),
        ]
    if st.inspection_findings:
        shown.append(("Constatações da vistoria", "; ".join(st.inspection_findings)))
    if st.beneficiaries_workflow_id:
        shown.append(("UCs recebedoras", st.beneficiaries_workflow_id))
    sla = Text("nenhuma", style="green") if not st.sla_breaches else Text(
        f"{len(st.sla_breaches)} prazo(s) descumprido(s)", style="bold red"
    )
    shown.append(("Violações de SLA", sla))
    if st.pending_effects:
        shown.append(("Efeitos pendentes", f"{st.pending_effects} (registro/e-mails na fila)"))
    shown.append(("Criada / atualizada", f"{fmt_dt(st.created_at)} / {fmt_dt(st.updated_at)}"))
    parts: list[RenderableType] = [facts(shown)]
    if st.refusal_reasons:
        parts.append(_problems_table(st.refusal_reasons))
    if st.sla_breaches:
        parts.append(_breaches_table(st.sla_breaches))
    if st.decisions:
        parts.append(_decisions_table(st.decisions))
    if st.documents:
        parts.append(_documents_table(st.documents))
    return Panel(Group(*parts), title=titled(title), subtitle=plain(workflow_id), expand=False)


def technician_panel(st: Any, workflow_id: str, now: datetime | None = None) -> Panel:
    shown: list[tuple[str, Any]] = [
        ("Situação", status_text(st.status, "technician")),
        ("Próximo a agir", label(ACTOR_LABELS, st.next_actor, "ninguém (encerrado)")),
    ]
    if st.due_at is not None:
        shown.append(("Prazo", f"{label(RULE_LABELS, 'technician_review')}: {deadline_text(st.due_at, now=now)}"))
    sent = [n for n in st.notifications if n.status in ("sent", "duplicate")]
    shown.append(("E-mails enviados", str(len(sent))))
    shown.append(("Violações de SLA", str(len(st.sla_breaches)) if st.sla_breaches else "nenhuma"))
    parts: list[RenderableType] = [facts(shown)]
    if st.refusal_reasons:
        parts.append(_problems_table(st.refusal_reasons))
    if st.sla_breaches:
        parts.append(_breaches_table(st.sla_breaches))
    if st.decisions:
        parts.append(_decisions_table(st.decisions, with_ns=False))
    return Panel(Group(*parts), title=titled(f"Responsável técnico {st.technician}"),
                 subtitle=plain(workflow_id), expand=False)  # fmt: skip


def beneficiaries_panel(st: Any, workflow_id: str, now: datetime | None = None) -> Panel:
    shown: list[tuple[str, Any]] = [
        ("Situação", status_text(st.status, "beneficiaries")),
        ("Próximo a agir", label(ACTOR_LABELS, st.next_actor, "ninguém (encerrado)")),
        ("UC geradora", st.generator_installation or "—"),
        ("Modalidade", st.modality or "—"),
    ]
    if st.effective_from is not None:
        shown.append(("Vale a partir de", fmt_date(st.effective_from)))
    parts: list[RenderableType] = [facts(shown)]
    if st.allocation is not None:
        units = Table(title=plain(f"Rateio ({st.allocation.mode})"), box=box.SIMPLE, title_justify="left")
        units.add_column("UC recebedora")
        units.add_column("percentual / prioridade", justify="right")
        for u in st.allocation.units:
            add_plain_row(units, u.installation_number, f"{u.percent} %" if u.percent is not None else str(u.priority))
        parts.append(units)
    if st.refusal_reasons:
        parts.append(_problems_table(st.refusal_reasons))
    if st.decisions:
        parts.append(_decisions_table(st.decisions, with_ns=False))
    return Panel(Group(*parts), title=titled(f"UCs recebedoras de {st.request_id}"),
                 subtitle=plain(workflow_id), expand=False)  # fmt: skip


def status_panel(st: Any, workflow_id: str, now: datetime | None = None) -> Panel:
    if isinstance(st, AccessStatus):
        return access_panel(st, workflow_id, now)
    if isinstance(st, TechnicianStatus):
        return technician_panel(st, workflow_id, now)
    return beneficiaries_panel(st, workflow_id, now)


# --- lists --------------------------------------------------------------------------------


def fmt_short(moment: datetime | None) -> str:
    """``22/04/26 23:59`` (tables)."""
    if moment is None:
        return "—"
    return moment.astimezone(TZ).strftime("%d/%m/%y %H:%M")


def summary_table(
    rows: Sequence[Any],
    title: str,
    now: datetime | None = None,
    *,
    show_next: bool = True,
    width: int | None = None,
) -> Table:
    """`gd request list` / `gd analyst queue`: one line per process, by due date. On a
    narrow terminal the least needed columns go first (RT, NS, SLA, tipo), never the id."""
    width = width or 160
    wanted = ["prazo", "falta", "id", "tipo", "situação", "NS", "RT", "próximo", "SLA"]
    if not show_next:
        wanted.remove("próximo")
    for column, below in (("RT", 130), ("NS", 115), ("SLA", 100), ("tipo", 90), ("falta", 70)):
        if width < below and column in wanted:
            wanted.remove(column)
    table = Table(title=plain(title), box=box.SIMPLE_HEAD, title_justify="left")
    for column in wanted:
        table.add_column(column, overflow="fold", no_wrap=column != "id")
    for r in rows:
        left = time_left_short(r.due_at, now)
        kind = label(KIND_SHORT, r.kind)
        if r.generation_class:
            kind = f"{kind} {r.generation_class}"
        cells: dict[str, Any] = {
            "prazo": fmt_short(r.due_at),
            "falta": Text(left, style="red" if left.startswith("vencido") else ""),
            "id": r.request_id,
            "tipo": kind,
            "situação": Text(r.status or "—", style=STATUS_STYLES.get(r.status or "", "")),
            "NS": r.service_note or "—",
            "RT": "—" if r.kind == "technician" else (r.technician or "—"),
            "próximo": label(ACTOR_SHORT, r.next_actor),
            "SLA": Text("violado", style="bold red") if r.sla_breached else Text("ok", style="green"),
        }
        add_plain_row(table, *(cells[c] for c in wanted))
    return table
