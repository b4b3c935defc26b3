"""Deterministic workflow ids: one small mapping, used by workflows and clients alike, and
the parsing of an id as a person types it (``req-1``, ``gd-request-req-1``,
``CREA-MG-12.345-d``).

The parsers raise ``InputRefused`` (models.common) with one pt-BR line naming the rule;
``gd_client`` turns it into its own ``GdRefused``, the HTTP API into a 422.
"""

from __future__ import annotations

import re
from typing import Final

from models.common import InputRefused, Problem, Technician, parse_or_problems
from models.names import Workflows

ACCESS_PREFIX: Final = "gd-request-"
TECHNICIAN_PREFIX: Final = "gd-technician-"
BENEFICIARIES_PREFIX: Final = "gd-beneficiaries-"
# TechnicianEmailChange, one per RT at a time (not a request: not in PREFIXES).
EMAIL_CHANGE_PREFIX: Final = "gd-rt-email-"
# Which workflow type an id belongs to, by its prefix.
PREFIXES: Final = {
    ACCESS_PREFIX: Workflows.ACCESS_REQUEST,
    TECHNICIAN_PREFIX: Workflows.TECHNICIAN_REGISTRATION,
    BENEFICIARIES_PREFIX: Workflows.BENEFICIARY_REGISTRATION,
}
REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")


def email_change_id(technician: str) -> str:
    """``gd-rt-email-CREA-MG-12345``: the correction of that RT's e-mail."""
    return f"{EMAIL_CHANGE_PREFIX}{technician}"


def access_request_id(request_id: str) -> str:
    return f"{ACCESS_PREFIX}{request_id}"


def technician_id(council: str, uf: str, registration: str) -> str:
    return f"{TECHNICIAN_PREFIX}{council}-{uf}-{registration}"


def beneficiaries_id(request_id: str) -> str:
    return f"{BENEFICIARIES_PREFIX}{request_id}"


# --- parsing what a person types ----------------------------------------------------------


def parse_technician_key(value: str) -> Technician:
    """``CREA-MG-12.345-d`` (or the workflow id) → Technician with the normalised registration."""
    text = value.strip().removeprefix(TECHNICIAN_PREFIX)
    parts = text.split("-", 2)
    if len(parts) != 3:
        raise InputRefused(
            f"responsável técnico deve ter a forma CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345), "
            f"não {value!r}"
        )
    raw = {"council": parts[0].upper(), "uf": parts[1], "registration": parts[2]}
    parsed, problems = parse_or_problems(Technician, raw, "technician")
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise InputRefused([Problem(field="", code="technician", message=f"responsável técnico inválido: {listed}")])
    assert parsed is not None
    return parsed


def check_request_id(value: str) -> str:
    if not REQUEST_ID_PATTERN.fullmatch(value):
        raise InputRefused(
            f"request_id inválido: {value!r} (1 a 64 caracteres A-Z, a-z, 0-9, '.', '_' ou '-')"
        )
    return value


def workflow_type_of(workflow_id: str) -> str:
    for prefix, kind in PREFIXES.items():
        if workflow_id.startswith(prefix):
            return kind
    raise InputRefused(
        f"id de processo desconhecido: {workflow_id} (esperado {ACCESS_PREFIX}…, "
        f"{TECHNICIAN_PREFIX}… ou {BENEFICIARIES_PREFIX}…)"
    )


def request_workflow_id(request: str) -> str:
    """A request_id or the full ``gd-request-…`` id → the workflow id."""
    value = request.strip()
    if value.startswith(ACCESS_PREFIX):
        return value
    return access_request_id(check_request_id(value))


def beneficiaries_workflow_id(request: str) -> str:
    """A request_id, ``gd-request-…`` or ``gd-beneficiaries-…`` → the beneficiaries id."""
    value = request.strip()
    if value.startswith(BENEFICIARIES_PREFIX):
        return value
    return beneficiaries_id(check_request_id(value.removeprefix(ACCESS_PREFIX)))


def technician_workflow_id(technician: str | Technician) -> str:
    tech = technician if isinstance(technician, Technician) else parse_technician_key(technician)
    return technician_id(tech.council, tech.uf, tech.registration)


def any_workflow_id(value: str) -> str:
    """An id as a person types it: a full workflow id, else a request_id."""
    value = value.strip()
    if any(value.startswith(prefix) for prefix in PREFIXES):
        return value
    return request_workflow_id(value)


def short_id(workflow_id: str) -> str:
    """The id without its prefix: the request_id, or the RT key."""
    for prefix in PREFIXES:
        workflow_id = workflow_id.removeprefix(prefix)
    return workflow_id
