"""What crosses between the WebhookSubscription workflow and its activities: ids,
positions and outcomes only — never a secret, a URL's credentials or an event body."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from models.common import Model

# A long-lived subscription continues as new past this many history events.
DEFAULT_HISTORY_LIMIT = 2000
# Give an event up (dead letter) when it has failed for this long.
RETRY_FOR_S = 3 * 24 * 3600.0
FIRST_BACKOFF_S = 5.0
MAX_BACKOFF_S = 3600.0


class SubscriptionRun(Model):
    """The workflow's input, and what it carries over a continue-as-new."""

    subscription_id: str
    cursor: int = 0  # every event at or before this position is done (delivered or dead)
    pending: list[int] = []  # positions after the cursor still to deliver, in order
    through: int = 0  # the position the last scan reached (the cursor once pending is done)
    attempt: int = 0  # failed attempts of pending[0] so far
    first_failure_at: datetime | None = None
    delivered: int = 0
    dead_lettered: int = 0
    runs: int = 1
    history_limit: int = DEFAULT_HISTORY_LIMIT
    poll_wait_s: float = 20.0  # how long one scan waits for new events
    # A timer between empty scans (0: none, the scan's own wait is enough). Tests on the
    # time-skipping server set one: a timer lets time skip, a waiting activity does not.
    idle_sleep_s: float = 0.0
    batch: int = 50


class AwaitEvents(Model):
    subscription_id: str
    after: int
    limit: int = 50
    wait_s: float = 20.0


class FoundEvents(Model):
    active: bool
    positions: list[int] = []
    through: int = 0


class DeliveryRequest(Model):
    subscription_id: str
    position: int
    attempt: int


class DeliveryResult(Model):
    outcome: Literal["delivered", "failed", "gone", "inactive"]
    status_code: int | None = None
    error: str | None = None


class DeadLetter(Model):
    subscription_id: str
    position: int
    attempts: int


class SubscriptionProgress(Model):
    """The ``status`` query of a subscription workflow."""

    subscription_id: str
    cursor: int
    pending: int
    attempt: int
    delivered: int
    dead_lettered: int
    runs: int
