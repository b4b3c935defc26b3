"""Deadline windows: when each deadline rule ran on a process, and how it ended.

Timeline (from history) and SLA report (from the store's event log) read the same steps:
the ``Transition`` a workflow records at every step carries ``action``, ``status``, ``at``
and, in ``data``, the deadline in force *after* the step (``rule``, ``due_at``). A window
opens when a rule comes into force, follows its due date while the rule stays (works
declared, clock resumed), and closes at the first step that leaves it. The step that
closes it tells whether it was met: closed at or before the final due date, and no SLA
breach recorded meanwhile. Time with the clock paused (REN art. 64) is left out of the
window's duration.

TechnicianRegistration records the deadline only when it opens (``submitted``); its later
steps keep it while the status stays PENDING_REVIEW and drop it when the status changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from domain.policies import RULES, rule_spec

RULE_LABELS = {
    "technician_review": "análise do cadastro do RT",
    "apr_window": "registro no APR Web",
    "inquiry_answer": "resposta à consulta de acesso",
    "parecer": "emissão do parecer de acesso",
    "pendencies_answer": "resposta às pendências (solicitante)",
    "inspection_request_window": "pedido de vistoria (solicitante)",
    "inspection": "realização da vistoria",
}
SIDE_LABELS = {"distributor": "distribuidora", "requester": "solicitante"}


def rule_label(rule: str | None) -> str:
    return RULE_LABELS.get(rule or "", rule or "—")


def rule_side(rule: str) -> str:
    """Who must act within the rule: "distributor" or "requester" (same in every policy)."""
    if rule not in RULES:
        return "distributor"
    return rule_spec("seed", rule, generation_class="micro", voltage_kv=0.22).side


def as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Window:
    workflow_id: str
    process: str
    rule: str
    opened_at: datetime
    opened_by: str
    due_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    paused_s: float = 0.0
    paused_since: datetime | None = None
    breach_recorded: bool = False

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def on_time(self) -> bool | None:
        """Met (closed by its due date, no breach recorded); None while open."""
        if self.closed_at is None:
            return None
        return self.closed_at <= self.due_at and not self.breach_recorded

    def paused_until(self, moment: datetime) -> float:
        extra = (moment - self.paused_since).total_seconds() if self.paused_since else 0.0
        return self.paused_s + max(extra, 0.0)

    def duration_days(self, until: datetime | None = None) -> float:
        """Days from opening to closing (or ``until``), clock pauses left out."""
        end = self.closed_at or until
        if end is None:
            raise ValueError("an open window needs ``until``")
        seconds = (end - self.opened_at).total_seconds() - self.paused_until(end)
        return seconds / 86400

    def overdue_at(self, moment: datetime) -> bool:
        return self.closed_at is None and self.due_at < moment


@dataclass
class StepDeadline:
    """What a step saw: the deadline in force before it, and the one after it."""

    before_rule: str | None
    before_due: datetime | None
    after_rule: str | None
    after_due: datetime | None
    closes: bool  # the step ended the deadline in force before it

    def within(self, at: datetime) -> bool | None:
        return None if self.before_due is None else at <= self.before_due

    def verdict(self, at: datetime) -> str | None:
        """pt-BR: "cumprido"/"descumprido" for the step that ends the deadline in force,
        "no prazo"/"vencido" for a step taken while it keeps running; None without one."""
        within = self.within(at)
        if within is None:
            return None
        if self.closes:
            return "cumprido" if within else "descumprido"
        return "no prazo" if within else "vencido"


class DeadlineTracker:
    """Feed one process's steps in order; collects its windows."""

    def __init__(self, workflow_id: str, process: str) -> None:
        self.workflow_id = workflow_id
        self.process = process
        self.current: Window | None = None
        self.status: str | None = None
        self.windows: list[Window] = []

    def feed(self, at: datetime, action: str, status: str, data: dict[str, Any] | None) -> StepDeadline:
        data = data or {}
        at = as_datetime(at)
        assert at is not None
        before = self.current
        before_rule = before.rule if before else None
        before_due = before.due_at if before else None
        if before is not None:
            self._bookkeep(before, at, action)
        following = self._following(before, status, data)
        closes = False
        if following is None:
            if before is not None:
                self._close(before, at, action)
                closes = True
        else:
            rule, due = following
            status_changed = self.status is not None and status != self.status
            if before is None:
                self._open(rule, due, at, action)
            elif rule != before.rule or (status_changed and due != before.due_at):
                self._close(before, at, action)
                closes = True
                self._open(rule, due, at, action)
            else:
                before.due_at = due  # recomputed (works declared) or moved (clock resumed)
        self.status = status
        after = self.current
        return StepDeadline(
            before_rule=before_rule,
            before_due=before_due,
            after_rule=after.rule if after else None,
            after_due=after.due_at if after else None,
            closes=closes,
        )

    def _following(self, before: Window | None, status: str, data: dict[str, Any]):
        if "due_at" in data:
            rule, due = data.get("rule"), as_datetime(data.get("due_at"))
            return (rule, due) if rule and due else None
        if self.status is not None and status != self.status:
            return None
        return (before.rule, before.due_at) if before else None

    @staticmethod
    def _bookkeep(window: Window, at: datetime, action: str) -> None:
        if action == "clock_paused" and window.paused_since is None:
            window.paused_since = at
        elif action == "clock_resumed" and window.paused_since is not None:
            window.paused_s += max((at - window.paused_since).total_seconds(), 0.0)
            window.paused_since = None
        elif action == "sla_breach":
            window.breach_recorded = True

    def _open(self, rule: str, due: datetime, at: datetime, action: str) -> None:
        window = Window(
            workflow_id=self.workflow_id,
            process=self.process,
            rule=rule,
            opened_at=at,
            opened_by=action,
            due_at=due,
        )
        self.windows.append(window)
        self.current = window

    def _close(self, window: Window, at: datetime, action: str) -> None:
        if window.paused_since is not None:
            window.paused_s += max((at - window.paused_since).total_seconds(), 0.0)
            window.paused_since = None
        window.closed_at = at
        window.closed_by = action
        self.current = None
