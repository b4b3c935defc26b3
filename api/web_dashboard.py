"""The inbox's SLA dashboard (``/ui/prazos``): ``gd report sla`` as a page.

Every figure comes from ``audit.sla`` (period, windows, on time, breaches, percentiles,
the chart's geometry) reading the store's event log; this module only chooses the period,
groups the same windows per analyst and adds what is due soon (the queue's own reading,
``api.web_views.load_queue``). Nothing here restates a deadline rule.

Per analyst: a window closed by a person's step counts for that person (the actor of the
step that closed it); a window still open counts for the request's assignee (``assign``).
Windows closed by the system (a lapse, a timer) or open and unassigned are "sem
responsável". The figures per rule and per analyst are for supervisors and auditors (the
API's ``/reports/sla`` roles); everyone in the inbox sees what is due soon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api import web_views as views
from api.deps import AUDITORS
from api.web_common import forbidden, render, user_or_login, web_of, with_cookie
from audit import sla

router = APIRouter(include_in_schema=False)  # mounted under /ui by api/routes_web.py

NOBODY = "sem responsável"
DEFAULT_DAYS = 30
MAX_DAYS = 3660  # the API's limit for /reports/sla
SOON_DAYS = 5


@dataclass
class AnalystStats:
    analyst: str
    count: int = 0
    on_time: int = 0
    breaches: int = 0
    open_windows: int = 0
    open_overdue: int = 0
    durations: list[float] = field(default_factory=list)

    @property
    def pct_on_time(self) -> float | None:
        return 100.0 * self.on_time / self.count if self.count else None

    @property
    def mean_days(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None


@dataclass
class Dashboard:
    report: sla.SlaReport
    analysts: list[AnalystStats]


def read(store: Any, first_day: date, last_day: date) -> Dashboard:
    """The SLA report of the period and the same windows per analyst (one read of the log)."""
    import sqlalchemy as sa
    from sqlmodel import select

    from activities.tables import EventRecord

    start, end = sla.period(first_day, last_day)
    if not sa.inspect(store.engine).has_table(EventRecord.__tablename__):
        raise ValueError("o banco não tem o registro de eventos (event_record)")
    with store.session(write=False) as session:
        rows = list(session.exec(
            select(EventRecord).where(EventRecord.at < end)
            .order_by(EventRecord.workflow_id, EventRecord.id)  # type: ignore[arg-type]
        ).all())
    windows = sla.windows_from_events(rows)
    report = sla.SlaReport(
        first_day=first_day, last_day=last_day, start=start, end=end,
        rules=sla.compute(windows, start, end), processes=len({r.workflow_id for r in rows}),
        generated_at=datetime.now(timezone.utc),
    )
    # who took each step, and who holds each request at the end of the period
    actor_at: dict[tuple[str, datetime, str], str | None] = {}
    holder: dict[str, str] = {}
    for row in rows:
        at = views.to_dt(row.at)
        person = row.actor_id if row.actor_role in ("analyst", "supervisor", "inspector") else None
        actor_at[(row.workflow_id, at, row.action)] = person
        if row.action == "assigned":
            analyst = views._analyst_of(row.data)
            if analyst:
                holder[row.workflow_id] = analyst
    groups: dict[str, list[Any]] = {}
    for window in windows:
        if sla.rule_side(window.rule) != "distributor":
            continue
        if window.closed_at is not None and window.closed_at < end:
            who = actor_at.get((window.workflow_id, views.to_dt(window.closed_at), window.closed_by or "")) or NOBODY
        else:
            who = holder.get(window.workflow_id, NOBODY)
        groups.setdefault(who, []).append(window)
    analysts = []
    for who, mine in groups.items():
        stats = AnalystStats(who)
        for rule in sla.compute(mine, start, end):
            if rule.side != "distributor":
                continue
            stats.count += rule.count
            stats.on_time += rule.on_time
            stats.breaches += len(rule.breaches)
            stats.open_windows += rule.open_windows
            stats.open_overdue += rule.open_overdue
            stats.durations += rule.durations
        if stats.count or stats.open_windows:
            analysts.append(stats)
    analysts.sort(key=lambda a: (a.analyst == NOBODY, a.analyst))
    return Dashboard(report=report, analysts=analysts)


def parse_period(params: Any, today: date) -> tuple[date, date, dict[str, str]]:
    """``de``/``ate`` as typed, dd/mm/aaaa (or AAAA-MM-DD, as the preset links send them);
    default: the last 30 days up to today. Errors name the field."""
    errors: dict[str, str] = {}

    def one(name: str, default: date) -> date:
        raw = (params.get(name) or "").strip()
        if not raw:
            return default
        for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
            try:
                return datetime.strptime(raw[:10], fmt).date()
            except ValueError:
                continue
        errors[name] = "data no formato dd/mm/aaaa"
        return default

    last = one("ate", today)
    first = one("de", last - timedelta(days=DEFAULT_DAYS - 1))
    if last < first and not errors:
        errors["ate"] = "a data final é anterior à inicial"
        first, last = last - timedelta(days=DEFAULT_DAYS - 1), last
    if (last - first).days > MAX_DAYS and not errors:
        errors["de"] = "período de no máximo 10 anos"
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    return first, last, errors


def presets(today: date) -> list[tuple[str, date, date]]:
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    return [
        ("Últimos 30 dias", today - timedelta(days=29), today),
        ("Este mês", month_start, today),
        ("Mês passado", last_month_end.replace(day=1), last_month_end),
        ("Últimos 12 meses", today - timedelta(days=364), today),
    ]


@router.get("/prazos")
async def dashboard(request: Request) -> Response:
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    gd = web_of(request).gd
    today = views.today()
    first, last, errors = parse_period(request.query_params, today)
    soon = await run_in_threadpool(
        views.load_queue, gd.store, views.QueueFilters(due_within=SOON_DAYS), principal.id)
    overdue = await run_in_threadpool(
        views.load_queue, gd.store, views.QueueFilters(overdue=True), principal.id)
    full = principal.first_role(AUDITORS) is not None
    board = None
    if full:
        try:
            board = await run_in_threadpool(read, gd.store, first, last)
        except ValueError as error:
            return forbidden(request, str(error), 503)
    return render(
        request, "prazos.html", title="Prazos", board=board, full=full, first=first, last=last,
        errors=errors, presets=presets(today), soon=soon, overdue=overdue, soon_days=SOON_DAYS,
        bars=sla.chart_bars(board.report) if board else [], chart_width=420,
        days=sla.fmt_days, pct=sla.fmt_pct,
    )


@router.get("/prazos/relatorio.html")
async def report_download(request: Request) -> Response:
    """The same report as ``gd report sla --html``, for the period on the page."""
    principal = user_or_login(request)
    if isinstance(principal, Response):
        return principal
    if principal.first_role(AUDITORS) is None:
        return forbidden(request, "O relatório de prazos é da supervisão e da auditoria.")
    first, last, errors = parse_period(request.query_params, views.today())
    if errors:
        return forbidden(request, "; ".join(f"{k}: {v}" for k, v in errors.items()), 422)
    report = await run_in_threadpool(sla.report, web_of(request).gd.store, first, last)
    answer = HTMLResponse(sla.render_html(report), headers={
        "Content-Disposition": f'attachment; filename="prazos-{first.isoformat()}-a-{last.isoformat()}.html"'})
    return with_cookie(request, answer)
