"""The two shipped policies match the DOMAIN.md table, and deadlines come out right."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.calendar import BusinessCalendar
from domain.policies import (
    DEFAULT_POLICY,
    POLICIES,
    RULES,
    Deadline,
    RuleSpec,
    compute_deadline,
    deadline_from_spec,
    rule_source,
    rule_spec,
)

MG = BusinessCalendar()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Rules whose amount does not depend on context: same in both policies.
FIXED = {
    "technician_review": ("business_days", 3, "escalate", "distributor"),
    "apr_window": ("hours", 24, "lapse", "requester"),
    "inquiry_answer": ("days", 30, "escalate", "distributor"),
    "pendencies_answer": ("days", 30, "cancel", "requester"),
    "inspection_request_window": ("days", 120, "cancel", "requester"),
}


def test_names() -> None:
    assert POLICIES == ("seed", "ren1000-2023")
    assert DEFAULT_POLICY == "seed"
    assert set(RULES) == set(FIXED) | {"parecer", "inspection"}
    assert len(RULES) == 7


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("rule", sorted(FIXED))
def test_fixed_rules(policy: str, rule: str) -> None:
    unit, amount, on_lapse, side = FIXED[rule]
    spec = rule_spec(policy, rule)
    assert spec == RuleSpec(
        rule=rule, policy=policy, unit=unit, amount=amount, on_lapse=on_lapse, side=side
    )


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("rule", RULES)
def test_every_rule_resolves_with_context(policy: str, rule: str) -> None:
    spec = rule_spec(policy, rule, generation_class="micro", voltage_kv=0.22)
    assert spec.amount > 0
    assert rule_source(policy, rule)


@pytest.mark.parametrize(
    "policy, generation_class, works, amount",
    [
        ("seed", "micro", False, 15),
        ("seed", "micro", True, 30),
        ("seed", "mini", False, 30),
        ("seed", "mini", True, 45),
        ("ren1000-2023", "micro", False, 15),
        ("ren1000-2023", "micro", True, 30),
        ("ren1000-2023", "mini", False, 45),
        ("ren1000-2023", "mini", True, 45),
    ],
)
def test_parecer(policy: str, generation_class: str, works: bool, amount: int) -> None:
    spec = rule_spec(policy, "parecer", generation_class=generation_class, works=works)
    assert (spec.unit, spec.amount, spec.on_lapse, spec.side) == (
        "days",
        amount,
        "escalate",
        "distributor",
    )


def test_parecer_class_aliases() -> None:
    assert rule_spec("seed", "parecer", generation_class="Minigeração").amount == 30
    assert rule_spec("seed", "parecer", generation_class="MICRO").amount == 15


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "voltage_kv, amount",
    [
        (0.127, 5),
        (0.38, 5),
        (2.29, 5),
        (2.3, 10),  # boundary belongs to the middle band
        (13.8, 10),
        (34.5, 10),
        (68.99, 10),
        (69, 15),  # boundary belongs to the top band
        (138.0, 15),
    ],
)
def test_inspection_voltage_bands(policy: str, voltage_kv: float, amount: int) -> None:
    spec = rule_spec(policy, "inspection", voltage_kv=voltage_kv)
    assert (spec.unit, spec.amount, spec.on_lapse, spec.side) == (
        "business_days",
        amount,
        "escalate",
        "distributor",
    )


# --- errors ------------------------------------------------------------------------------


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match=r"unknown policy 'ren482'.*seed, ren1000-2023"):
        rule_spec("ren482", "parecer", generation_class="micro")


def test_unknown_rule() -> None:
    with pytest.raises(ValueError, match=r"unknown rule 'vistoria'.*technician_review"):
        rule_spec("seed", "vistoria")


def test_parecer_needs_generation_class() -> None:
    with pytest.raises(ValueError, match="parecer.*generation_class"):
        rule_spec("seed", "parecer")


def test_parecer_rejects_unknown_class() -> None:
    with pytest.raises(ValueError, match="unknown generation_class 'macro'"):
        rule_spec("seed", "parecer", generation_class="macro")


def test_inspection_needs_voltage() -> None:
    with pytest.raises(ValueError, match="inspection.*voltage_kv"):
        rule_spec("seed", "inspection")


@pytest.mark.parametrize("voltage_kv", [-1.0, float("nan")])
def test_inspection_rejects_bad_voltage(voltage_kv: float) -> None:
    with pytest.raises(ValueError, match="voltage_kv"):
        rule_spec("seed", "inspection", voltage_kv=voltage_kv)


def test_compute_deadline_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline("seed", "inquiry_answer", datetime(2026, 4, 6, 10, 0))


# --- compute_deadline --------------------------------------------------------------------


def test_parecer_micro_deadline_and_reminder() -> None:
    start = at("2026-04-06T10:00:00-03:00")
    deadline = compute_deadline("seed", "parecer", start, generation_class="micro", calendar=MG)
    assert deadline == Deadline(
        rule="parecer",
        policy="seed",
        start=start,
        due_at=at("2026-04-22T23:59:59-03:00"),  # 21 Apr is Tiradentes
        remind_at=at("2026-04-17T08:00:00-03:00"),  # Mon 20 (1), Fri 17 (2)
        unit="days",
        amount=15,
        on_lapse="escalate",
    )
    assert deadline.due_at.isoformat().endswith("-03:00")


def test_works_declared_recomputes_from_same_start() -> None:
    start = at("2026-04-06T10:00:00-03:00")
    without = compute_deadline("seed", "parecer", start, generation_class="mini", calendar=MG)
    with_works = compute_deadline(
        "seed", "parecer", start, generation_class="mini", works=True, calendar=MG
    )
    assert without.due_at == at("2026-05-06T23:59:59-03:00")
    assert with_works.due_at == at("2026-05-21T23:59:59-03:00")
    assert with_works.start == without.start


def test_ren_policy_mini_without_works_is_45_days() -> None:
    start = at("2026-04-06T10:00:00-03:00")
    deadline = compute_deadline(
        "ren1000-2023", "parecer", start, generation_class="mini", calendar=MG
    )
    assert (deadline.amount, deadline.due_at) == (45, at("2026-05-21T23:59:59-03:00"))


def test_technician_review() -> None:
    start = at("2026-04-17T23:59:00-03:00")
    deadline = compute_deadline("seed", "technician_review", start, calendar=MG)
    assert deadline.due_at == at("2026-04-23T23:59:59-03:00")
    assert deadline.remind_at == at("2026-04-20T08:00:00-03:00")


def test_inspection_deadline() -> None:
    start = at("2026-04-01T10:00:00-03:00")
    deadline = compute_deadline("seed", "inspection", start, voltage_kv=13.8, calendar=MG)
    # Thu 2, (Good Friday), Mon 6 ... 10th business day is Thu 16 Apr
    assert (deadline.amount, deadline.due_at) == (10, at("2026-04-16T23:59:59-03:00"))
    assert deadline.remind_at == at("2026-04-14T08:00:00-03:00")


def test_apr_window_is_wall_clock_without_reminder() -> None:
    start = at("2026-03-06T23:30:00-03:00")
    deadline = compute_deadline("seed", "apr_window", start)
    assert deadline.due_at == start + timedelta(hours=24)
    assert deadline.due_at.isoformat() == "2026-03-07T23:30:00-03:00"
    assert (deadline.remind_at, deadline.on_lapse, deadline.unit) == (None, "lapse", "hours")


@pytest.mark.parametrize("rule", ["pendencies_answer", "inspection_request_window"])
def test_requester_side_rules_have_no_reminder(rule: str) -> None:
    deadline = compute_deadline("seed", rule, at("2026-03-02T10:00:00-03:00"))
    assert deadline.remind_at is None
    assert deadline.on_lapse == "cancel"


def test_pendencies_answer_due() -> None:
    deadline = compute_deadline(
        "seed", "pendencies_answer", at("2026-03-04T09:00:00-03:00"), calendar=MG
    )
    assert deadline.due_at == at("2026-04-06T23:59:59-03:00")  # 3 Apr is Good Friday


def test_reminder_dropped_when_not_after_start() -> None:
    # A one-business-day rule: the reminder would fall on or before the start.
    spec = RuleSpec(
        rule="technician_review",
        policy="seed",
        unit="business_days",
        amount=1,
        on_lapse="escalate",
        side="distributor",
    )
    deadline = deadline_from_spec(spec, at("2026-03-09T10:00:00-03:00"), MG)
    assert deadline.due_at == at("2026-03-10T23:59:59-03:00")
    assert deadline.remind_at is None


def test_deadline_round_trips_through_json() -> None:
    deadline = compute_deadline(
        "seed", "inquiry_answer", at("2026-03-02T02:30:00+00:00"), calendar=MG
    )
    restored = Deadline.model_validate_json(deadline.model_dump_json())
    assert restored == deadline
    assert restored.due_at.utcoffset() == timedelta(hours=-3)


def test_default_calendar_used_when_none_given() -> None:
    # 31 Jul 2025 + 15 days = Fri 15 Aug, a Belo Horizonte holiday in the data file
    deadline = compute_deadline(
        "seed", "parecer", at("2025-07-31T10:00:00-03:00"), generation_class="micro"
    )
    assert deadline.due_at == at("2025-08-18T23:59:59-03:00")
