"""What an update answers, and the ``actions`` item of every ``status`` query.

An update answers a small acknowledgement, not the whole status: every accepted update
stores its result in history (``WorkflowExecutionUpdateCompleted``), and a full snapshot
there grows with the request, so a long request's history grew quadratically. Whoever
needs the status after an update asks the ``status`` query (its ``sequence`` equals the
ack's).
"""

from __future__ import annotations

from models.common import Model


class UpdateAck(Model):
    id: str  # the request id (AccessRequest, BeneficiaryRegistration) or the RT's key
    update: str
    status: str  # the status once the update's decision is recorded
    sequence: int  # the status' sequence (the ETag of the HTTP API)


class Action(Model):
    """One update the current status accepts, and the roles that may send it."""

    update: str
    roles: list[str]
