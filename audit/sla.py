"""SLA compliance report: for each deadline rule, how often it was met, and how long it took.

Source: the store's event log (``EventRecord``), not Temporal: it holds every step of every
process (append-only, one row per step, written by ``record_transition``), with the
deadline in force after each step in ``data`` (``rule``, ``due_at``), and it answers for
closed and archived workflows alike. ``audit.windows`` turns each process's steps into
deadline windows (the same reading the timeline makes from history).

Definitions (what the figures mean):

* the period is ``--from`` to ``--to``, whole local days (America/Sao_Paulo), both
  included; events after the period are ignored, so a report on a past period is the
  same whenever it is run;
* a rule's **count** is the number of its windows that closed within the period;
* **on time**: closed at or before its final due date (after works were declared and
  paused time was added back), with no SLA breach recorded; **% on time** = on time ÷
  count;
* **duration** (days): closing − opening, clock pauses excluded; **mean** is the
  arithmetic mean, **p90** the nearest-rank 90th percentile (the smallest duration
  that at least 90 % of the windows do not exceed);
* **breaches**: the windows closed late within the period, plus those still open at
  the end of the period — or now, for a period not over yet — whose due date had passed
  ("em aberto"): a window due later this month is not a breach today;
* for requester-side rules (APR Web registration, answer to pendências, inspection
  request) a breach is the requester's lapse, not the distributor's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import groupby
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from domain.policies import RULES
from audit.windows import SIDE_LABELS, DeadlineTracker, Window, rule_label, rule_side

SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@dataclass
class Breach:
    workflow_id: str
    rule: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    delay_days: float  # past the due date, at closing (or at the end of the period)

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class RuleStats:
    rule: str
    count: int = 0
    on_time: int = 0
    durations: list[float] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    open_windows: int = 0

    @property
    def label(self) -> str:
        return rule_label(self.rule)

    @property
    def side(self) -> str:
        return rule_side(self.rule)

    @property
    def side_label(self) -> str:
        return SIDE_LABELS[self.side]

    @property
    def late(self) -> int:
        return self.count - self.on_time

    @property
    def pct_on_time(self) -> float | None:
        return 100.0 * self.on_time / self.count if self.count else None

    @property
    def mean_days(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None

    @property
    def p90_days(self) -> float | None:
        return percentile(self.durations, 90)

    @property
    def open_overdue(self) -> int:
        return sum(1 for b in self.breaches if b.open)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "label": self.label,
            "side": self.side,
            "count": self.count,
            "on_time": self.on_time,
            "late": self.late,
            "pct_on_time": self.pct_on_time,
            "mean_days": self.mean_days,
            "p90_days": self.p90_days,
            "open": self.open_windows,
            "open_overdue": self.open_overdue,
            "breaches": [
                {
                    "workflow_id": b.workflow_id,
                    "opened_at": b.opened_at.isoformat(),
                    "due_at": b.due_at.isoformat(),
                    "closed_at": b.closed_at.isoformat() if b.closed_at else None,
                    "closed_by": b.closed_by,
                    "delay_days": b.delay_days,
                }
                for b in self.breaches
            ],
        }


@dataclass
class SlaReport:
    first_day: date
    last_day: date
    start: datetime
    end: datetime
    rules: list[RuleStats]
    processes: int
    generated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "processes": self.processes,
            "generated_at": self.generated_at.isoformat(),
            "rules": [r.to_dict() for r in self.rules],
        }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: the value at rank ceil(pct/100 × n) of the sorted list."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def period(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """[start, end): local midnight of ``first_day`` to local midnight after ``last_day``."""
    if last_day < first_day:
        raise ValueError("--to: a data final é anterior à inicial")
    start = datetime.combine(first_day, time(0), SAO_PAULO)
    end = datetime.combine(last_day + timedelta(days=1), time(0), SAO_PAULO)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def windows_from_events(events: Iterable[Any]) -> list[Window]:
    """Deadline windows of every process, from event rows grouped by workflow in order."""
    found: list[Window] = []
    for workflow_id, rows in groupby(events, key=lambda e: e.workflow_id):
        rows = list(rows)
        tracker = DeadlineTracker(workflow_id, rows[0].process)
        for row in rows:
            tracker.feed(row.at, row.action, row.status, row.data)
        found.extend(tracker.windows)
    return found


def compute(
    windows: Iterable[Window], start: datetime, end: datetime, now: datetime | None = None
) -> list[RuleStats]:
    """The figures for [start, end), from windows read as of ``end`` — or as of ``now``
    when the period is not over yet (an open window is late only once its due date passed)."""
    as_of = end if now is None else min(now, end)
    stats = {rule: RuleStats(rule) for rule in RULES}
    for window in windows:
        rule = stats.setdefault(window.rule, RuleStats(window.rule))
        if window.opened_at >= end:
            continue
        if window.closed_at is not None and window.closed_at < end:
            if window.closed_at < start:
                continue
            rule.count += 1
            rule.durations.append(window.duration_days())
            if window.on_time:
                rule.on_time += 1
            else:
                rule.breaches.append(_breach(window, window.closed_at))
        else:
            rule.open_windows += 1
            if window.due_at < as_of:
                rule.breaches.append(_breach(window, as_of, still_open=True))
    for rule in stats.values():
        rule.breaches.sort(key=lambda b: (b.due_at, b.workflow_id))
    return list(stats.values())


def _breach(window: Window, moment: datetime, still_open: bool = False) -> Breach:
    return Breach(
        workflow_id=window.workflow_id,
        rule=window.rule,
        opened_at=window.opened_at,
        due_at=window.due_at,
        closed_at=None if still_open else window.closed_at,
        closed_by=None if still_open else window.closed_by,
        delay_days=max((moment - window.due_at).total_seconds(), 0.0) / 86400,
    )


def report(store, first_day: date, last_day: date) -> SlaReport:
    """Read the event log up to the end of the period and compute the report."""
    import sqlalchemy as sa

    from activities.tables import EventRecord

    start, end = period(first_day, last_day)
    if not sa.inspect(store.engine).has_table(EventRecord.__tablename__):
        raise ValueError(
            f"o banco {store.url.render_as_string(hide_password=True)} não tem o registro de "
            "eventos (event_record): aponte GD_DATABASE_URL para o banco do worker"
        )
    # Core rows of the columns the windows need: no ORM instances, and the two JSON
    # columns nobody reads here (reasons, documents) are not decoded (bench.scale: 1,684
    # events took 1.1 s as ORM rows, most of it decoding JSON).
    ev = EventRecord.__table__
    with store.connection(write=False) as conn:
        rows = conn.execute(
            sa.select(ev.c.workflow_id, ev.c.process, ev.c.at, ev.c.action, ev.c.status, ev.c.data)
            .where(ev.c.at < end)
            .order_by(ev.c.workflow_id, ev.c.id)
        ).all()
    windows = windows_from_events(rows)
    now = datetime.now(timezone.utc)
    return SlaReport(
        first_day=first_day,
        last_day=last_day,
        start=start,
        end=end,
        rules=compute(windows, start, end, now),
        processes=len({r.workflow_id for r in rows}),
        generated_at=now,
    )


# --- output ---------------------------------------------------------------------------


def fmt_days(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}".replace(".", ",")


def fmt_pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %".replace(".", ",")


def chart_bars(report: SlaReport, width: int = 420) -> list[dict[str, Any]]:
    """Geometry of the inline SVG chart: per rule, on-time and late bar widths."""
    bars = []
    for index, rule in enumerate(report.rules):
        pct = rule.pct_on_time
        on = 0.0 if pct is None else width * pct / 100
        bars.append(
            {
                "y": 10 + index * 30,
                "label": rule.label,
                "on": round(on, 1),
                "late": round(width - on, 1) if pct is not None else 0.0,
                "text": fmt_pct(pct) + (f" de {rule.count}" if rule.count else ""),
                "empty": pct is None,
            }
        )
    return bars


def render_html(report: SlaReport) -> str:
    from audit.timeline import environment

    env = environment()
    env.filters["days"] = fmt_days
    env.filters["pct"] = fmt_pct
    return env.get_template("sla.html.j2").render(r=report, bars=chart_bars(report), chart_width=420)


# Below this terminal width the summary is one block per rule instead of a 10-column table
# (at 80 columns that table wrapped every header into one-word lines).
WIDE_MIN_WIDTH = 130
# Header, justification of the wide summary table: short, never wrapped.
SUMMARY_COLUMNS = (
    ("regra", "left"), ("lado", "left"), ("concluídos", "right"), ("no prazo", "right"),
    ("% no prazo", "right"), ("média (d)", "right"), ("p90 (d)", "right"), ("violações", "right"),
    ("abertos", "right"), ("vencidos", "right"),
)  # fmt: skip
# The same figures in the narrow layout, where a label has a line of its own.
NARROW_LABELS = (
    "concluídos", "no prazo", "% no prazo", "duração média (dias)", "p90 (dias)", "violações",
    "em aberto", "vencidos em aberto",
)  # fmt: skip


def _summary_values(r: RuleStats) -> list[str]:
    return [
        f"{r.label} ({r.rule})", r.side_label, str(r.count), str(r.on_time), fmt_pct(r.pct_on_time),
        fmt_days(r.mean_days), fmt_days(r.p90_days), str(len(r.breaches)), str(r.open_windows),
        str(r.open_overdue),
    ]


def rich_tables(report: SlaReport, width: int | None = None):
    """The summary and the breaches for a terminal ``width`` columns wide (None: wide)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from audit.timeline import local

    title = (
        f"Cumprimento de prazos — {report.first_day.strftime('%d/%m/%Y')} a "
        f"{report.last_day.strftime('%d/%m/%Y')} ({report.processes} processos)"
    )
    narrow = width is not None and width < WIDE_MIN_WIDTH
    if not narrow:
        summary = Table(title=title)
        for column, justify in SUMMARY_COLUMNS:
            summary.add_column(column, justify=justify, no_wrap=column != "regra", overflow="fold")
        for r in report.rules:
            summary.add_row(*(Text(v) for v in _summary_values(r)))
        breaches = Table(title="Violações")
        for column in ("regra", "processo", "vencimento", "concluído em", "atraso (d)"):
            breaches.add_column(column, no_wrap=column != "processo", overflow="fold")
        for r in report.rules:
            for b in r.breaches:
                breaches.add_row(*(Text(v) for v in (
                    r.rule, b.workflow_id, local(b.due_at),
                    local(b.closed_at) if b.closed_at else "em aberto", fmt_days(b.delay_days),
                )))  # fmt: skip
        return summary, breaches

    # Narrow: one block per rule (name: value), then one block per breach.
    blocks: list[Any] = [Text(title, style="bold")]
    for r in report.rules:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="cyan")
        grid.add_column(overflow="fold")
        values = _summary_values(r)
        grid.add_row(Text(values[0], style="bold"), Text(values[1]))
        for column, value in zip(NARROW_LABELS, values[2:]):
            grid.add_row(Text(column), Text(value))
        blocks += [Text(""), grid]
    listed: list[Any] = [Text(""), Text("Violações", style="bold")]
    for r in report.rules:
        for b in r.breaches:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(no_wrap=True, style="cyan")
            grid.add_column(overflow="fold")
            for column, value in (
                ("processo", b.workflow_id), ("regra", r.rule), ("vencimento", local(b.due_at)),
                ("concluído em", local(b.closed_at) if b.closed_at else "em aberto"),
                ("atraso (d)", fmt_days(b.delay_days)),
            ):  # fmt: skip
                grid.add_row(Text(column), Text(value))
            listed += [Text(""), grid]
    if len(listed) == 2:
        listed.append(Text("nenhuma"))
    return Group(*blocks), Group(*listed)
