"""The state a review workflow keeps (``TechnicianRegistration``, ``BeneficiaryRegistration``).

Both wait in PENDING_REVIEW for an analyst's decision; the RT's review runs under a
deadline (reminder, then breach), the beneficiaries' under none. Here, not in the workflow
modules, for the reason models/access_state.py gives (built once per process).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Union

from domain.policies import Deadline
from models.activities import CredentialsRequest, EmailRequest, Transition
from models.common import Decision, DeadlineRecord, Model, Notification, Problem, SlaBreach

ReviewEffect = Union[Transition, EmailRequest, CredentialsRequest]


class ReviewState(Model):
    # Until intake answers, nobody may decide yet (CONTRACT extension: "RECEIVED").
    status: str = "RECEIVED"
    refusal: list[Problem] = []
    seq: int = 0
    deadline: Deadline | None = None
    reminded: bool = False
    breached: bool = False
    sla_breaches: list[SlaBreach] = []
    decisions: list[Decision] = []
    deadlines: list[DeadlineRecord] = []
    notifications: list[Notification] = []
    pending: list[ReviewEffect] = []
    search_attributes: dict[str, Any] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None
