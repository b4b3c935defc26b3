"""Who may do what, and when: the state machine of every process, as data.

One table per process (``ACCESS``, ``TECHNICIAN``, ``BENEFICIARIES``):

* per update: the statuses where it is allowed and the status each leads to (``moves``),
  the roles that may send it, and whether a ``customer``/``technician`` actor must be a
  party of the request (CONTRACT.md "Parties"; API.md roles table);
* per status: the deadline rule it runs under (domain/policies), the next actor, and what
  its timer does when the deadline passes (``lapse``, ``escalate``, ``cancel``).

The workflows' validators call ``check`` (status, then role, then party: the typed
refusals of models/common), their ``status`` query lists ``actions``, and
``python -m domain.rules --markdown`` draws docs/STATES.md. Handlers keep only the checks
that are not about who and when (the NS matches, the documents are complete...).

Pure: no Temporal import, no clock; passed through the workflow sandbox.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from models.common import PartyRefused, RoleRefused, StatusRefused
from models.names import SYSTEM_ACTOR_ID, Updates, Workflows

ANALYSTS = ("analyst", "supervisor")
REQUESTERS = ("customer", "technician")
# Roles that act for one request only, and only as its party.
PARTY_ROLES = ("customer", "technician")

TIMER_EFFECTS = ("lapse", "escalate", "cancel")


@dataclass(frozen=True)
class UpdateRule:
    update: str
    # status where the update is allowed -> the status(es) it may lead to (the same
    # status when it only records something).
    moves: Mapping[str, tuple[str, ...]]
    roles: tuple[str, ...]
    # A customer/technician actor must be this request's customer/RT.
    party: bool = False
    label: str = ""

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(self.moves)


@dataclass(frozen=True)
class StatusRule:
    status: str
    label: str
    deadline: str | None = None  # rule of domain/policies
    next_actor: str | None = None
    timer: str | None = None  # what the deadline does: lapse, escalate, cancel
    timer_to: str | None = None  # status the timer leads to (lapse, cancel)
    terminal: bool = False


@dataclass(frozen=True)
class Process:
    name: str
    workflow: str
    statuses: Mapping[str, StatusRule]
    updates: Mapping[str, UpdateRule]
    # Automatic steps that are no update: (from, to, label); "[*]" is the start.
    automatic: tuple[tuple[str, str, str], ...] = field(default=())
    # Shown while intake runs: no update is possible yet.
    intake_status: str = "RECEIVED"

    def actions(self, status: str) -> list[dict[str, Any]]:
        """The updates ``status`` accepts and who may send them (CONTRACT ``actions``)."""
        return [
            {"update": rule.update, "roles": list(rule.roles)}
            for rule in self.updates.values()
            if status in rule.moves
        ]

    def next_actor(self, status: str) -> str | None:
        rule = self.statuses.get(status)
        return rule.next_actor if rule else None

    def deadline(self, status: str) -> str | None:
        rule = self.statuses.get(status)
        return rule.deadline if rule else None

    def terminal(self) -> tuple[str, ...]:
        return tuple(s for s, r in self.statuses.items() if r.terminal)


@dataclass(frozen=True)
class Parties:
    """Who the request's parties are: its RT's council key, its customer's document."""

    technician: str | None = None
    customer: str | None = None


def _statuses(*rules: StatusRule) -> dict[str, StatusRule]:
    return {r.status: r for r in rules}


def _updates(*rules: UpdateRule) -> dict[str, UpdateRule]:
    return {r.update: r for r in rules}


def _same(*statuses: str) -> dict[str, tuple[str, ...]]:
    return {s: (s,) for s in statuses}


_ACCESS_OPEN = (
    "AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED", "REPROVED", "APPROVED",
    "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "AWAITING_ANSWER",
)
# Statuses with a running distributor deadline (pause_clock / resume_clock).
PAUSABLE = ("UNDER_ANALYSIS", "INSPECTION_REQUESTED", "AWAITING_ANSWER")
# Statuses where the request waits for the distributor (its analysts' queue).
DISTRIBUTOR_TURN = PAUSABLE

ACCESS = Process(
    name="access",
    workflow=Workflows.ACCESS_REQUEST,
    statuses=_statuses(
        StatusRule("RECEIVED", "triagem em andamento", next_actor=None),
        StatusRule("REFUSED", "recusada na triagem", terminal=True),
        StatusRule("AWAITING_APR", "aguardando cadastro no APR Web", "apr_window",
                   "technician", "lapse", "LAPSED"),
        StatusRule("LAPSED", "NS reprovada por decurso de prazo", "pendencies_answer",
                   "technician", "cancel", "CANCELLED"),
        StatusRule("UNDER_ANALYSIS", "em análise", "parecer", "analyst", "escalate"),
        StatusRule("SUSPENDED", "suspensa com pendências", "pendencies_answer",
                   "technician", "cancel", "CANCELLED"),
        StatusRule("REPROVED", "reprovada", "pendencies_answer", "technician", "cancel",
                   "CANCELLED"),
        StatusRule("APPROVED", "parecer de acesso emitido", "inspection_request_window",
                   "customer", "cancel", "CANCELLED"),
        StatusRule("INSPECTION_REQUESTED", "vistoria solicitada", "inspection", "inspector",
                   "escalate"),
        StatusRule("INSPECTION_REPROVED", "vistoria reprovada", "inspection_request_window",
                   "customer", "cancel", "CANCELLED"),
        StatusRule("CONNECTED", "conectada", terminal=True),
        StatusRule("AWAITING_ANSWER", "consulta aguardando resposta", "inquiry_answer",
                   "analyst", "escalate"),
        StatusRule("ANSWERED", "consulta respondida", terminal=True),
        StatusRule("CANCELLED", "cancelada", terminal=True),
    ),
    updates=_updates(
        UpdateRule(Updates.REGISTER_APR,
                   {"AWAITING_APR": ("UNDER_ANALYSIS",), "LAPSED": ("LAPSED",)},
                   ("technician",), party=True, label="cadastro no APR Web"),
        UpdateRule(Updates.APPROVE, {"UNDER_ANALYSIS": ("APPROVED",)}, ANALYSTS,
                   label="parecer de acesso"),
        UpdateRule(Updates.SUSPEND, {"UNDER_ANALYSIS": ("SUSPENDED",)}, ANALYSTS,
                   label="suspensão"),
        UpdateRule(Updates.REPROVE, {"UNDER_ANALYSIS": ("REPROVED",)}, ANALYSTS,
                   label="reprovação"),
        UpdateRule(Updates.ATTACH_CORRECTIONS, _same("SUSPENDED", "REPROVED"),
                   ("technician",), party=True, label="correções anexadas"),
        UpdateRule(Updates.REQUEST_REANALYSIS,
                   {s: ("UNDER_ANALYSIS",) for s in ("SUSPENDED", "REPROVED", "LAPSED")},
                   REQUESTERS, party=True, label="reanálise"),
        UpdateRule(Updates.DECLARE_WORKS, _same("UNDER_ANALYSIS"), ANALYSTS,
                   label="obras declaradas"),
        UpdateRule(Updates.PAUSE_CLOCK, _same(*PAUSABLE), ANALYSTS, label="prazo suspenso"),
        UpdateRule(Updates.RESUME_CLOCK, _same(*PAUSABLE), ANALYSTS, label="prazo retomado"),
        UpdateRule(Updates.ANSWER_INQUIRY, {"AWAITING_ANSWER": ("ANSWERED",)}, ANALYSTS,
                   label="resposta à consulta"),
        UpdateRule(Updates.REQUEST_INSPECTION,
                   {s: ("INSPECTION_REQUESTED",) for s in ("APPROVED", "INSPECTION_REPROVED")},
                   REQUESTERS, party=True, label="vistoria solicitada"),
        UpdateRule(Updates.RECORD_INSPECTION,
                   {"INSPECTION_REQUESTED": ("CONNECTED", "INSPECTION_REPROVED")},
                   ("inspector",), label="resultado da vistoria"),
        UpdateRule(Updates.WITHDRAW, {s: ("CANCELLED",) for s in _ACCESS_OPEN},
                   REQUESTERS, party=True, label="desistência"),
        # The distributor's turn: an analyst claims, a supervisor reassigns.
        UpdateRule(Updates.ASSIGN, _same(*DISTRIBUTOR_TURN), ANALYSTS, label="atribuição"),
    ),
    automatic=(
        ("[*]", "RECEIVED", "início"),
        ("RECEIVED", "REFUSED", "triagem recusa"),
        ("RECEIVED", "AWAITING_APR", "solicitação aceita"),
        ("RECEIVED", "AWAITING_ANSWER", "consulta aceita"),
    ),
)

TECHNICIAN = Process(
    name="technician",
    workflow=Workflows.TECHNICIAN_REGISTRATION,
    statuses=_statuses(
        StatusRule("RECEIVED", "triagem em andamento"),
        StatusRule("REFUSED", "recusado na triagem", terminal=True),
        StatusRule("PENDING_REVIEW", "aguardando análise do cadastro", "technician_review",
                   "analyst", "escalate"),
        StatusRule("APPROVED", "RT cadastrado", terminal=True),
        StatusRule("REJECTED", "cadastro rejeitado", terminal=True),
    ),
    updates=_updates(
        UpdateRule(Updates.APPROVE, {"PENDING_REVIEW": ("APPROVED",)}, ANALYSTS,
                   label="aprovação"),
        UpdateRule(Updates.REJECT, {"PENDING_REVIEW": ("REJECTED",)}, ANALYSTS,
                   label="rejeição"),
        # The RT's e-mail corrected (issue 17 item 4): effective once the code sent to the
        # new address is confirmed. Served by the TechnicianEmailChange workflow (the
        # registration itself ends at approval); the status is the registration's.
        UpdateRule(Updates.CHANGE_EMAIL, _same("PENDING_REVIEW", "APPROVED"),
                   ("technician", *ANALYSTS), party=True, label="troca de e-mail pedida"),
        UpdateRule(Updates.CONFIRM_EMAIL, _same("PENDING_REVIEW", "APPROVED"),
                   ("technician", *ANALYSTS), party=True, label="troca de e-mail confirmada"),
    ),
    automatic=(
        ("[*]", "RECEIVED", "início"),
        ("RECEIVED", "REFUSED", "triagem recusa"),
        ("RECEIVED", "PENDING_REVIEW", "cadastro aceito"),
    ),
)

BENEFICIARIES = Process(
    name="beneficiaries",
    workflow=Workflows.BENEFICIARY_REGISTRATION,
    statuses=_statuses(
        StatusRule("RECEIVED", "triagem em andamento"),
        StatusRule("REFUSED", "recusado na triagem", terminal=True),
        # No regulatory deadline applies to this review: no timer runs.
        StatusRule("PENDING_REVIEW", "aguardando análise das UCs recebedoras",
                   next_actor="analyst"),
        StatusRule("REGISTERED", "UCs recebedoras cadastradas", terminal=True),
        StatusRule("REJECTED", "cadastramento rejeitado", terminal=True),
    ),
    updates=_updates(
        UpdateRule(Updates.CONFIRM, {"PENDING_REVIEW": ("REGISTERED",)}, ANALYSTS,
                   label="confirmação"),
        UpdateRule(Updates.REJECT, {"PENDING_REVIEW": ("REJECTED",)}, ANALYSTS,
                   label="rejeição"),
    ),
    automatic=(
        ("[*]", "RECEIVED", "início"),
        ("RECEIVED", "REFUSED", "triagem recusa"),
        ("RECEIVED", "PENDING_REVIEW", "cadastramento aceito"),
    ),
)

PROCESSES: dict[str, Process] = {p.name: p for p in (ACCESS, TECHNICIAN, BENEFICIARIES)}


# --- the one check every validator runs ---------------------------------------------------


def check(
    process: Process,
    update: str,
    status: str,
    actor: Any,
    parties: Parties | None = None,
    *,
    identity: bool = True,
) -> UpdateRule:
    """Refuse ``update`` by ``actor`` in ``status`` unless the table allows it.

    Order: the status (409), then the role (403), then who the actor is (403): the
    orchestrator's own id is never a caller's, and a customer/technician must be the
    request's party. ``identity=False`` leaves the last two out (histories written
    before the party-check patch). ``actor`` is anything with ``id``, ``role``,
    ``council_key`` and ``document``.
    """
    rule = process.updates[update]
    if status not in rule.moves:
        if status == process.intake_status:
            raise StatusRefused(f"{update}: o processo ainda está em triagem; tente novamente")
        raise StatusRefused(
            f"{update}: não permitido no status {status} "
            f"(permitido em: {', '.join(rule.statuses)})"
        )
    return check_actor(process, update, actor, parties, identity=identity)


def check_actor(
    process: Process,
    update: str,
    actor: Any,
    parties: Parties | None = None,
    *,
    identity: bool = True,
) -> UpdateRule:
    """The role and identity part of ``check`` (for a validator that learns the status
    later, as TechnicianEmailChange's, which reads the RT's status from the store)."""
    rule = process.updates[update]
    if actor.role not in rule.roles:
        raise RoleRefused(
            f"{update}: papel '{actor.role}' não pode executar esta ação "
            f"(permitido: {', '.join(rule.roles)})"
        )
    if not identity:
        return rule
    if actor.id == SYSTEM_ACTOR_ID:
        raise RoleRefused(
            f"actor.id: '{SYSTEM_ACTOR_ID}' é reservado aos passos automáticos do "
            "orquestrador e não pode ser usado por quem chama"
        )
    if rule.party and actor.role in PARTY_ROLES:
        _require_party(update, actor, parties or Parties())
    return rule


def _require_party(update: str, actor: Any, parties: Parties) -> None:
    if actor.role == "technician":
        key = getattr(actor, "council_key", None)
        if key is None or parties.technician is None or key != parties.technician:
            raise PartyRefused(
                f"{update}: actor.council_key deve ser o do responsável técnico desta "
                "solicitação"
            )
    elif actor.role == "customer":
        document = getattr(actor, "document", None)
        if document is None or parties.customer is None or document != parties.customer:
            raise PartyRefused(
                f"{update}: actor.document deve ser o CPF/CNPJ do cliente desta solicitação"
            )


# --- docs/STATES.md -------------------------------------------------------------------------


def _mermaid(process: Process) -> list[str]:
    lines = ["```mermaid", "stateDiagram-v2"]
    edges: dict[tuple[str, str], list[str]] = {}

    def edge(a: str, b: str, label: str) -> None:
        labels = edges.setdefault((a, b), [])
        if label not in labels:
            labels.append(label)

    for a, b, label in process.automatic:
        edge(a, b, label)
    for rule in process.updates.values():
        for source, targets in rule.moves.items():
            for target in targets:
                edge(source, target, rule.update)
    for status, srule in process.statuses.items():
        if srule.timer_to:
            edge(status, srule.timer_to, f"prazo {srule.deadline}: {srule.timer}")
        if srule.terminal:
            edge(status, "[*]", "")
    for (a, b), labels in edges.items():
        text = ", ".join(x for x in labels if x)
        lines.append(f"    {a} --> {b}" + (f": {text}" if text else ""))
    lines.append("```")
    return lines


def _table(process: Process) -> list[str]:
    lines = [
        "| status | deadline (timer) | next actor | update → status | roles (party) |",
        "|---|---|---|---|---|",
    ]
    for status, srule in process.statuses.items():
        timer = "—"
        if srule.deadline:
            timer = f"`{srule.deadline}` ({srule.timer}"
            timer += f" → {srule.timer_to})" if srule.timer_to else ")"
        actions = [
            (rule, rule.moves[status]) for rule in process.updates.values() if status in rule.moves
        ]
        if not actions:
            cell_u, cell_r = ("terminal" if srule.terminal else "—"), "—"
        else:
            cell_u = "<br>".join(
                f"`{r.update}` → {' / '.join(t)}" for r, t in actions
            )
            cell_r = "<br>".join(
                ", ".join(f"{role} (party)" if r.party and role in PARTY_ROLES else role
                          for role in r.roles)
                for r, _ in actions
            )
        lines.append(
            f"| `{status}` | {timer} | {srule.next_actor or '—'} | {cell_u} | {cell_r} |"
        )
    return lines


def markdown() -> str:
    out = [
        "# States of every process",
        "",
        "Generated from `domain/rules.py` by `python -m domain.rules --markdown`; do not edit",
        "by hand (`tests/test_rules.py` fails when this file is stale). The same table drives",
        "the workflows' validators and the `actions` of each `status` query.",
        "",
        "A role marked *(party)* must be the request's own: a technician's",
        "`actor.council_key` is the request's RT, a customer's `actor.document` is the",
        "request's customer document (CONTRACT.md \"Parties\"). The actor id",
        f"`{SYSTEM_ACTOR_ID}` is the orchestrator's own and refused from every caller.",
        "A timer *escalates* (records the breach, tells the supervisor, the status stays),",
        "*lapses* or *cancels* (moves the request).",
    ]
    for process in PROCESSES.values():
        out += ["", f"## {process.workflow}", ""]
        out += _mermaid(process)
        out += [""]
        out += _table(process)
    return "\n".join(out) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--markdown"]:
        print("uso: python -m domain.rules --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
