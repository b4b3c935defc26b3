"""Names that cross processes: workflow types, updates, queries and activities.

Workers, clients (`gd_client`, the HTTP API, the CLI), benchmarks and the audit tools use
these constants instead of repeating the strings. The strings themselves are part of the
public contract (CONTRACT.md) and of every recorded history: never change one.
"""

from __future__ import annotations

from typing import Final


class Workflows:
    ACCESS_REQUEST: Final = "AccessRequest"
    TECHNICIAN_REGISTRATION: Final = "TechnicianRegistration"
    BENEFICIARY_REGISTRATION: Final = "BeneficiaryRegistration"
    # One correction of an RT's e-mail at a time (id ``gd-technician-email-{council_key}``).
    TECHNICIAN_EMAIL_CHANGE: Final = "TechnicianEmailChange"


class Queries:
    STATUS: Final = "status"


class Signals:
    # TechnicianEmailChange -> TechnicianRegistration: the confirmed new address.
    EMAIL_CHANGED: Final = "email_changed"


class Updates:
    # AccessRequest
    REGISTER_APR: Final = "register_apr"
    APPROVE: Final = "approve"
    SUSPEND: Final = "suspend"
    REPROVE: Final = "reprove"
    ATTACH_CORRECTIONS: Final = "attach_corrections"
    REQUEST_REANALYSIS: Final = "request_reanalysis"
    DECLARE_WORKS: Final = "declare_works"
    PAUSE_CLOCK: Final = "pause_clock"
    RESUME_CLOCK: Final = "resume_clock"
    ANSWER_INQUIRY: Final = "answer_inquiry"
    REQUEST_INSPECTION: Final = "request_inspection"
    RECORD_INSPECTION: Final = "record_inspection"
    WITHDRAW: Final = "withdraw"
    ASSIGN: Final = "assign"
    # TechnicianRegistration (APPROVE as above) and BeneficiaryRegistration
    REJECT: Final = "reject"
    CONFIRM: Final = "confirm"
    # The RT's e-mail, corrected (TechnicianEmailChange; rules in domain.rules.TECHNICIAN)
    CHANGE_EMAIL: Final = "change_email"
    CONFIRM_EMAIL: Final = "confirm_email"


class Activities:
    VALIDATE_INTAKE: Final = "validate_intake"
    ISSUE_NUMBERS: Final = "issue_numbers"
    RECORD_TRANSITION: Final = "record_transition"
    SEND_EMAIL: Final = "send_email"
    SEND_TECHNICIAN_CREDENTIALS: Final = "send_technician_credentials"
    COMPUTE_DEADLINE: Final = "compute_deadline"
    RESUME_DEADLINE: Final = "resume_deadline"
    TECHNICIAN_EMAIL_FACTS: Final = "technician_email_facts"
    SEND_EMAIL_CHANGE_CODE: Final = "send_email_change_code"
    CONFIRM_EMAIL_CHANGE: Final = "confirm_email_change"


ACCESS_UPDATES: Final = (
    Updates.REGISTER_APR,
    Updates.APPROVE,
    Updates.SUSPEND,
    Updates.REPROVE,
    Updates.ATTACH_CORRECTIONS,
    Updates.REQUEST_REANALYSIS,
    Updates.DECLARE_WORKS,
    Updates.PAUSE_CLOCK,
    Updates.RESUME_CLOCK,
    Updates.ANSWER_INQUIRY,
    Updates.REQUEST_INSPECTION,
    Updates.RECORD_INSPECTION,
    Updates.WITHDRAW,
    Updates.ASSIGN,
)
TECHNICIAN_UPDATES: Final = (Updates.APPROVE, Updates.REJECT, Updates.CHANGE_EMAIL, Updates.CONFIRM_EMAIL)
BENEFICIARY_UPDATES: Final = (Updates.CONFIRM, Updates.REJECT)

# The actor id the workflows use for their own automatic steps (lapse, escalation,
# cancellation by policy). Callers may never send it: it would forge an automatic entry.
SYSTEM_ACTOR_ID: Final = "gd-orchestrator"


class EventTypes:
    """CloudEvents ``type`` of the events other systems receive (webhooks and the feed)."""

    REQUEST_STATUS_CHANGED: Final = "br.gd.request.status_changed"
    REQUEST_DEADLINE_SET: Final = "br.gd.request.deadline_set"
    REQUEST_SLA_BREACHED: Final = "br.gd.request.sla_breached"
    REQUEST_DECIDED: Final = "br.gd.request.decided"
    REQUEST_EMAIL_FAILED: Final = "br.gd.request.email_failed"
    TECHNICIAN_STATUS_CHANGED: Final = "br.gd.technician.status_changed"
    BENEFICIARIES_STATUS_CHANGED: Final = "br.gd.beneficiaries.status_changed"


EVENT_TYPES: Final = (
    EventTypes.REQUEST_STATUS_CHANGED,
    EventTypes.REQUEST_DEADLINE_SET,
    EventTypes.REQUEST_SLA_BREACHED,
    EventTypes.REQUEST_DECIDED,
    EventTypes.REQUEST_EMAIL_FAILED,
    EventTypes.TECHNICIAN_STATUS_CHANGED,
    EventTypes.BENEFICIARIES_STATUS_CHANGED,
)


class WebhookNames:
    """The subscription workflow, its signal and query, and its activities."""

    WORKFLOW: Final = "WebhookSubscription"
    STOP_SIGNAL: Final = "stop"
    STATUS_QUERY: Final = "status"
    AWAIT_EVENTS: Final = "await_webhook_events"
    DELIVER: Final = "deliver_webhook"
    DEAD_LETTER: Final = "dead_letter_webhook"
