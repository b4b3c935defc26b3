"""Deadline policies as data: which rule lasts how long, and what happens when it lapses.

Two policies ship (DOMAIN.md policy table): "seed", the distributor's guide, is the default;
"ren1000-2023" is REN 1000/2021 as amended by REN 1.059/2023. The numbers live in
data/policies.json so that a policy change is a data change, reviewed on its own.

Used from Temporal workflows (imports_passed_through): pure functions, no clock, no randomness.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from domain.calendar import BusinessCalendar, default_calendar, due_in_hours

POLICIES = ("seed", "ren1000-2023")
DEFAULT_POLICY = "seed"
RULES = (
    "technician_review",
    "apr_window",
    "inquiry_answer",
    "parecer",
    "pendencies_answer",
    "inspection_request_window",
    "inspection",
)
GENERATION_CLASSES = ("micro", "mini")
REMINDER_BUSINESS_DAYS = 2

Unit = Literal["days", "business_days", "hours"]
OnLapse = Literal["escalate", "lapse", "cancel"]
Side = Literal["distributor", "requester"]

# Spellings an analyst or another system may send for the two GD classes.
_CLASS_ALIASES = {
    "micro": "micro",
    "microgeracao": "micro",
    "microgeração": "micro",
    "mini": "mini",
    "minigeracao": "mini",
    "minigeração": "mini",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _ClassAmounts(_Frozen):
    without_works: int
    with_works: int


class _VoltageBand(_Frozen):
    below_kv: float | None  # None: no upper bound
    amount: int


class _RawRule(_Frozen):
    """One rule as stored: a fixed amount, or amounts by class/works, or by voltage band."""

    unit: Unit
    on_lapse: OnLapse
    side: Side
    source: str
    amount: int | None = None
    by_class: dict[str, _ClassAmounts] | None = None
    by_voltage: tuple[_VoltageBand, ...] | None = None

    @model_validator(mode="after")
    def _exactly_one_amount_source(self) -> _RawRule:
        given = [x is not None for x in (self.amount, self.by_class, self.by_voltage)]
        if sum(given) != 1:
            raise ValueError("a rule needs exactly one of amount, by_class, by_voltage")
        return self


class _RawPolicy(_Frozen):
    description: str
    rules: dict[str, _RawRule]


class RuleSpec(_Frozen):
    rule: str
    policy: str
    unit: Unit
    amount: int
    on_lapse: OnLapse
    side: Side


class Deadline(_Frozen):
    rule: str
    policy: str
    start: datetime
    due_at: datetime
    remind_at: datetime | None
    unit: str
    amount: int
    on_lapse: str


@cache
def _policies() -> dict[str, _RawPolicy]:
    text = resources.files("domain").joinpath("data", "policies.json").read_text("utf-8")
    loaded = {name: _RawPolicy.model_validate(raw) for name, raw in json.loads(text).items()}
    _check_complete(loaded)
    return loaded


def _check_complete(loaded: dict[str, _RawPolicy]) -> None:
    # A policy missing a rule would only fail when a process reaches that step: fail at load.
    if tuple(loaded) != POLICIES:
        raise ValueError(f"policies.json must define exactly {POLICIES}, found {tuple(loaded)}")
    for name, policy in loaded.items():
        if set(policy.rules) != set(RULES):
            raise ValueError(f"policy {name!r} must define exactly the rules {RULES}")


def _raw_rule(policy: str, rule: str) -> _RawRule:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; known policies: {', '.join(POLICIES)}")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; known rules: {', '.join(RULES)}")
    return _policies()[policy].rules[rule]


def _normalise_class(generation_class: str | None) -> str:
    if generation_class is None:
        raise ValueError("rule 'parecer' needs generation_class ('micro' or 'mini')")
    normalised = _CLASS_ALIASES.get(generation_class.strip().lower())
    if normalised is None:
        raise ValueError(
            f"unknown generation_class {generation_class!r}; expected 'micro' or 'mini'"
        )
    return normalised


def _amount_by_class(raw: _RawRule, generation_class: str | None, works: bool) -> int:
    amounts = raw.by_class[_normalise_class(generation_class)]
    return amounts.with_works if works else amounts.without_works


def _amount_by_voltage(raw: _RawRule, voltage_kv: float | None) -> int:
    if voltage_kv is None:
        raise ValueError("rule 'inspection' needs voltage_kv (the connection voltage in kV)")
    if math.isnan(voltage_kv) or voltage_kv < 0:
        raise ValueError(f"voltage_kv must be a non-negative number, got {voltage_kv!r}")
    # Bands are ordered; REN art. 91 bounds are "below 2.3 kV", "2.3 up to below 69", ">= 69".
    for band in raw.by_voltage:
        if band.below_kv is None or voltage_kv < band.below_kv:
            return band.amount
    raise ValueError(f"no voltage band covers {voltage_kv} kV")  # data error: no open band


def _amount(
    raw: _RawRule, generation_class: str | None, works: bool, voltage_kv: float | None
) -> int:
    if raw.by_class is not None:
        return _amount_by_class(raw, generation_class, works)
    if raw.by_voltage is not None:
        return _amount_by_voltage(raw, voltage_kv)
    return raw.amount


def rule_spec(
    policy: str,
    rule: str,
    *,
    generation_class: str | None = None,
    works: bool = False,
    voltage_kv: float | None = None,
) -> RuleSpec:
    """The resolved rule: its unit and amount for this request's context."""
    raw = _raw_rule(policy, rule)
    return RuleSpec(
        rule=rule,
        policy=policy,
        unit=raw.unit,
        amount=_amount(raw, generation_class, works, voltage_kv),
        on_lapse=raw.on_lapse,
        side=raw.side,
    )


def rule_source(policy: str, rule: str) -> str:
    """Where the number comes from (seed, REN, Lei), for audit and user-facing text."""
    return _raw_rule(policy, rule).source


def _due_at(spec: RuleSpec, start: datetime, calendar: BusinessCalendar) -> datetime:
    if spec.unit == "hours":
        return due_in_hours(start, spec.amount)
    if spec.unit == "business_days":
        return calendar.due_in_business_days(start, spec.amount)
    return calendar.due_in_days(start, spec.amount)


def _remind_at(
    spec: RuleSpec, start: datetime, due_at: datetime, calendar: BusinessCalendar
) -> datetime | None:
    # Reminders nudge the distributor only; a reminder that would fire before the clock
    # started is pointless (short rules), and hour windows are too short for one.
    if spec.side != "distributor" or spec.unit == "hours":
        return None
    remind_at = calendar.reminder_before(due_at, REMINDER_BUSINESS_DAYS)
    return remind_at if remind_at > start else None


def deadline_from_spec(
    spec: RuleSpec, start: datetime, calendar: BusinessCalendar | None = None
) -> Deadline:
    """The deadline of an already resolved rule (e.g. a recorded spec being recomputed)."""
    cal = calendar or default_calendar()
    due_at = _due_at(spec, start, cal)
    return Deadline(
        rule=spec.rule,
        policy=spec.policy,
        start=start,
        due_at=due_at,
        remind_at=_remind_at(spec, start, due_at, cal),
        unit=spec.unit,
        amount=spec.amount,
        on_lapse=spec.on_lapse,
    )


def compute_deadline(
    policy: str,
    rule: str,
    start: datetime,
    *,
    generation_class: str | None = None,
    works: bool = False,
    voltage_kv: float | None = None,
    calendar: BusinessCalendar | None = None,
) -> Deadline:
    """Resolve the rule and compute when it ends; record the result, never recompute history."""
    spec = rule_spec(
        policy, rule, generation_class=generation_class, works=works, voltage_kv=voltage_kv
    )
    return deadline_from_spec(spec, start, calendar)


# Load and validate at import (outside any workflow): a broken data file fails the worker's
# start, not a running process.
_policies()
