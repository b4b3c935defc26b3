"""The rules table alone (domain/rules.py): every status × update × role, no server.

The expectations are written here by hand from CONTRACT.md (where each update is allowed)
and API.md (the roles table, parties), not read back from the table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from domain import policies, rules
from models.common import Actor, PartyRefused, RoleRefused, StatusRefused

ROOT = Path(__file__).resolve().parent.parent
ALL_ROLES = ("customer", "technician", "analyst", "supervisor", "inspector", "auditor", "system")
RT = "CREA-MG-123456"
CPF = "52998224725"
PARTIES = rules.Parties(technician=RT, customer=CPF)

ACCESS_STATUSES = (
    "RECEIVED", "REFUSED", "AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED", "REPROVED",
    "APPROVED", "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "CONNECTED", "AWAITING_ANSWER",
    "ANSWERED", "CANCELLED",
)
OPEN = ("AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED", "REPROVED", "APPROVED",
        "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "AWAITING_ANSWER")
DECIDERS = ("analyst", "supervisor")
# update: (statuses where CONTRACT.md allows it, roles API.md allows, party required)
ACCESS_EXPECTED = {
    "register_apr": (("AWAITING_APR", "LAPSED"), ("technician",), True),
    "approve": (("UNDER_ANALYSIS",), DECIDERS, False),
    "suspend": (("UNDER_ANALYSIS",), DECIDERS, False),
    "reprove": (("UNDER_ANALYSIS",), DECIDERS, False),
    "attach_corrections": (("SUSPENDED", "REPROVED"), ("technician",), True),
    "request_reanalysis": (("SUSPENDED", "REPROVED", "LAPSED"), ("customer", "technician"), True),
    "declare_works": (("UNDER_ANALYSIS",), DECIDERS, False),
    # "a status with a running distributor deadline": parecer, vistoria, consulta.
    "pause_clock": (("UNDER_ANALYSIS", "INSPECTION_REQUESTED", "AWAITING_ANSWER"), DECIDERS, False),
    "resume_clock": (("UNDER_ANALYSIS", "INSPECTION_REQUESTED", "AWAITING_ANSWER"), DECIDERS, False),
    "answer_inquiry": (("AWAITING_ANSWER",), DECIDERS, False),
    "request_inspection": (("APPROVED", "INSPECTION_REPROVED"), ("customer", "technician"), True),
    "record_inspection": (("INSPECTION_REQUESTED",), ("inspector",), False),
    "withdraw": (OPEN, ("customer", "technician"), True),
    # issue 18: the analysts' queue (the distributor's turn): an analyst claims, a
    # supervisor reassigns.
    "assign": (("UNDER_ANALYSIS", "INSPECTION_REQUESTED", "AWAITING_ANSWER"), DECIDERS, False),
}
REVIEW_STATUSES = ("RECEIVED", "REFUSED", "PENDING_REVIEW")
TECHNICIAN_EXPECTED = {
    "approve": (("PENDING_REVIEW",), DECIDERS, False),
    "reject": (("PENDING_REVIEW",), DECIDERS, False),
    # issue 17 item 4: the RT itself (party) or an analyst, while in review or once approved.
    "change_email": (("PENDING_REVIEW", "APPROVED"), ("technician",) + DECIDERS, True),
    "confirm_email": (("PENDING_REVIEW", "APPROVED"), ("technician",) + DECIDERS, True),
}
BENEFICIARIES_EXPECTED = {
    "confirm": (("PENDING_REVIEW",), DECIDERS, False),
    "reject": (("PENDING_REVIEW",), DECIDERS, False),
}
CASES = [
    (rules.ACCESS, ACCESS_STATUSES, ACCESS_EXPECTED),
    (rules.TECHNICIAN, REVIEW_STATUSES + ("APPROVED", "REJECTED"), TECHNICIAN_EXPECTED),
    (rules.BENEFICIARIES, REVIEW_STATUSES + ("REGISTERED", "REJECTED"), BENEFICIARIES_EXPECTED),
]


def party(role: str, **overrides) -> Actor:
    """An actor who is the request's own RT or customer when the role is one of those."""
    fields = {"id": f"{role}.1", "role": role}
    if role == "technician":
        fields["council_key"] = RT
    if role == "customer":
        fields["document"] = "529.982.247-25"  # normalised to the request's digits
    fields.update(overrides)
    return Actor.model_validate(fields)


def matrix():
    for process, statuses, expected in CASES:
        for update, (allowed, roles, _) in expected.items():
            for status in statuses:
                for role in ALL_ROLES:
                    yield pytest.param(process, update, status, role, allowed, roles,
                                       id=f"{process.name}-{update}-{status}-{role}")


@pytest.mark.parametrize("process,update,status,role,allowed,roles", list(matrix()))
def test_every_status_update_and_role(process, update, status, role, allowed, roles):
    actor = party(role)
    if status not in allowed:
        with pytest.raises(StatusRefused) as caught:
            rules.check(process, update, status, actor, PARTIES)
        assert caught.value.problems[0].message.startswith(f"{update}: ")
    elif role not in roles:
        with pytest.raises(RoleRefused) as caught:
            rules.check(process, update, status, actor, PARTIES)
        assert f"papel '{role}'" in str(caught.value)
    else:
        rules.check(process, update, status, actor, PARTIES)


@pytest.mark.parametrize("process,statuses,expected", CASES, ids=lambda c: getattr(c, "name", ""))
def test_the_table_names_exactly_the_contracts_updates(process, statuses, expected):
    assert set(process.updates) == set(expected)
    assert set(process.statuses) == set(statuses)


PARTY_CASES = [(u, s[0]) for u, (s, _, p) in ACCESS_EXPECTED.items() if p]


@pytest.mark.parametrize("update,status", PARTY_CASES)
def test_a_party_role_must_be_the_requests_own(update, status):
    roles = ACCESS_EXPECTED[update][1]
    if "technician" in roles:
        for other in (party("technician", council_key="CREA-MG-654321"),
                      party("technician", council_key=None)):
            with pytest.raises(PartyRefused, match="actor.council_key"):
                rules.check(rules.ACCESS, update, status, other, PARTIES)
        # An inquiry has no RT: no technician is its party.
        with pytest.raises(PartyRefused):
            rules.check(rules.ACCESS, update, status, party("technician"), rules.Parties(customer=CPF))
    if "customer" in roles:
        for other in (party("customer", document="111.444.777-35"), party("customer", document=None)):
            with pytest.raises(PartyRefused, match="actor.document"):
                rules.check(rules.ACCESS, update, status, other, PARTIES)
    # Histories written before the party check: the old behaviour (role only).
    stranger = party(roles[0], council_key=None, document=None)
    rules.check(rules.ACCESS, update, status, stranger, PARTIES, identity=False)


@pytest.mark.parametrize("update", ["change_email", "confirm_email"])
def test_only_the_rt_itself_or_an_analyst_corrects_its_email(update):
    rt = rules.Parties(technician=RT)
    for status in ("PENDING_REVIEW", "APPROVED"):
        rules.check(rules.TECHNICIAN, update, status, party("technician"), rt)
        rules.check(rules.TECHNICIAN, update, status, party("analyst"), rt)
        with pytest.raises(PartyRefused, match="actor.council_key"):
            rules.check(rules.TECHNICIAN, update, status,
                        party("technician", council_key="CREA-MG-654321"), rt)
    # check_actor: the same role and party checks, before the status is known.
    with pytest.raises(PartyRefused, match="actor.council_key"):
        rules.check_actor(rules.TECHNICIAN, update, party("technician", council_key=None), rt)
    with pytest.raises(RoleRefused):
        rules.check_actor(rules.TECHNICIAN, update, party("customer"), rt)


def test_analysts_are_never_asked_to_be_parties():
    rules.check(rules.ACCESS, "approve", "UNDER_ANALYSIS", party("analyst"), rules.Parties())


@pytest.mark.parametrize("process,update,status", [
    (rules.ACCESS, "approve", "UNDER_ANALYSIS"),
    (rules.ACCESS, "withdraw", "APPROVED"),
    (rules.TECHNICIAN, "approve", "PENDING_REVIEW"),
    (rules.BENEFICIARIES, "confirm", "PENDING_REVIEW"),
])
def test_the_orchestrators_own_id_is_refused_from_callers(process, update, status):
    role = process.updates[update].roles[0]
    forged = party(role, id="gd-orchestrator")
    with pytest.raises(RoleRefused, match="gd-orchestrator"):
        rules.check(process, update, status, forged, PARTIES)


def test_status_is_checked_before_role_and_role_before_party():
    stranger = party("technician", council_key="CREA-MG-999999")
    with pytest.raises(StatusRefused):
        rules.check(rules.ACCESS, "register_apr", "UNDER_ANALYSIS", stranger, PARTIES)
    with pytest.raises(RoleRefused):
        rules.check(rules.ACCESS, "approve", "UNDER_ANALYSIS", stranger, PARTIES)


def test_while_intake_runs_nothing_is_possible_yet():
    with pytest.raises(StatusRefused, match="triagem"):
        rules.check(rules.TECHNICIAN, "approve", "RECEIVED", party("analyst"))


def test_actions_list_the_updates_and_roles_of_a_status():
    assert rules.ACCESS.actions("SUSPENDED") == [
        {"update": "attach_corrections", "roles": ["technician"]},
        {"update": "request_reanalysis", "roles": ["customer", "technician"]},
        {"update": "withdraw", "roles": ["customer", "technician"]},
    ]
    assert rules.ACCESS.actions("CONNECTED") == []
    rt_or_analysts = ["technician", "analyst", "supervisor"]
    assert rules.TECHNICIAN.actions("PENDING_REVIEW") == [
        {"update": "approve", "roles": ["analyst", "supervisor"]},
        {"update": "reject", "roles": ["analyst", "supervisor"]},
        {"update": "change_email", "roles": rt_or_analysts},
        {"update": "confirm_email", "roles": rt_or_analysts},
    ]
    assert rules.TECHNICIAN.actions("APPROVED") == [
        {"update": "change_email", "roles": rt_or_analysts},
        {"update": "confirm_email", "roles": rt_or_analysts},
    ]
    assert rules.TECHNICIAN.actions("REJECTED") == []
    assert rules.BENEFICIARIES.actions("REGISTERED") == []


# Per status: deadline rule, next actor, what the timer does (DOMAIN.md and the seed).
ACCESS_STATUS_EXPECTED = {
    "AWAITING_APR": ("apr_window", "technician", "lapse"),
    "LAPSED": ("pendencies_answer", "technician", "cancel"),
    "UNDER_ANALYSIS": ("parecer", "analyst", "escalate"),
    "SUSPENDED": ("pendencies_answer", "technician", "cancel"),
    "REPROVED": ("pendencies_answer", "technician", "cancel"),
    "APPROVED": ("inspection_request_window", "customer", "cancel"),
    "INSPECTION_REQUESTED": ("inspection", "inspector", "escalate"),
    "INSPECTION_REPROVED": ("inspection_request_window", "customer", "cancel"),
    "AWAITING_ANSWER": ("inquiry_answer", "analyst", "escalate"),
}


def test_each_waiting_status_has_its_deadline_next_actor_and_timer():
    for status, rule in rules.ACCESS.statuses.items():
        expected = ACCESS_STATUS_EXPECTED.get(status, (None, None, None))
        assert (rule.deadline, rule.next_actor, rule.timer) == expected, status
    review = rules.TECHNICIAN.statuses["PENDING_REVIEW"]
    assert (review.deadline, review.next_actor, review.timer) == ("technician_review", "analyst", "escalate")
    pending = rules.BENEFICIARIES.statuses["PENDING_REVIEW"]
    assert (pending.deadline, pending.next_actor, pending.timer) == (None, "analyst", None)
    assert set(rules.ACCESS.terminal()) == {"REFUSED", "CONNECTED", "ANSWERED", "CANCELLED"}


@pytest.mark.parametrize("policy", policies.POLICIES)
def test_the_timer_effects_agree_with_every_shipped_policy(policy):
    # The workflow acts on the computed deadline's on_lapse; the table must say the same.
    for process in rules.PROCESSES.values():
        for status, rule in process.statuses.items():
            if rule.deadline:
                assert policies.rule_spec(policy, rule.deadline, generation_class="micro", voltage_kv=0.22).on_lapse == rule.timer, (
                    policy, status)


def test_states_md_is_generated_from_the_table():
    generated = subprocess.run(
        [sys.executable, "-m", "domain.rules", "--markdown"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout
    assert "stateDiagram-v2" in generated and "UNDER_ANALYSIS --> SUSPENDED: suspend" in generated
    assert (ROOT / "docs" / "STATES.md").read_text("utf-8") == generated, (
        "docs/STATES.md está desatualizado: rode `python -m domain.rules --markdown > docs/STATES.md`"
    )
