"""``WebhookSubscription``: one long-lived workflow per subscription delivers its events.

The loop: scan the store for the subscription's next events (an activity that waits a
little for new ones), then deliver them one at a time, in the order of the event table
— so in order per request —, each until the receiver answers 2xx. A failed attempt (non
2xx, no answer, a worker killed mid-request) is retried after a backoff that doubles
from 5 s up to 1 h (with ±10 % jitter); an event still failing 3 days after its first
failure is dead-lettered (recorded) and the next one goes. A 410 answer closes the
subscription, as does a DELETE (signal ``stop``, and the store's status).

History carries positions, attempt numbers and outcomes only: the secret, the URL and
the event bodies are read inside the activities. The history stays bounded: past
``history_limit`` events (or when the server suggests it) the workflow continues as new
with its cursor, pending positions and the current event's attempt count.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.names import WebhookNames
    from models.webhooks import (
        FIRST_BACKOFF_S,
        MAX_BACKOFF_S,
        RETRY_FOR_S,
        AwaitEvents,
        DeadLetter,
        DeliveryRequest,
        DeliveryResult,
        FoundEvents,
        SubscriptionProgress,
        SubscriptionRun,
    )

STORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def backoff_s(attempt: int, jitter: float) -> float:
    """Seconds before attempt ``attempt + 1`` (``attempt`` failures so far)."""
    base = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * (2 ** max(0, attempt - 1)))
    return base * (0.9 + 0.2 * jitter)


@workflow.defn(name=WebhookNames.WORKFLOW)
class WebhookSubscriptionWorkflow:
    def __init__(self) -> None:
        self.run_state: SubscriptionRun | None = None
        self.stopping = False

    @workflow.signal(name=WebhookNames.STOP_SIGNAL)
    def stop(self) -> None:
        self.stopping = True

    @workflow.query(name=WebhookNames.STATUS_QUERY)
    def status(self) -> SubscriptionProgress:
        st = self.run_state
        assert st is not None
        return SubscriptionProgress(
            subscription_id=st.subscription_id, cursor=st.cursor, pending=len(st.pending),
            attempt=st.attempt, delivered=st.delivered, dead_lettered=st.dead_lettered, runs=st.runs)

    @workflow.run
    async def run(self, raw: dict) -> SubscriptionProgress:
        st = self.run_state = SubscriptionRun.model_validate(raw)
        while not self.stopping:
            info = workflow.info()
            if info.get_current_history_length() >= st.history_limit or info.is_continue_as_new_suggested():
                st.runs += 1
                workflow.continue_as_new(st.model_dump(mode="json"))
            if not st.pending:
                found = await workflow.execute_activity(
                    WebhookNames.AWAIT_EVENTS,
                    AwaitEvents(subscription_id=st.subscription_id, after=st.cursor,
                                limit=st.batch, wait_s=st.poll_wait_s),
                    result_type=FoundEvents,
                    start_to_close_timeout=timedelta(seconds=st.poll_wait_s + 60),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=STORE_RETRY,
                )
                if not found.active:
                    break
                st.pending = [p for p in found.positions if p > st.cursor]
                st.through = max(st.through, found.through)
                if not st.pending:
                    st.cursor = max(st.cursor, st.through)
                    if st.idle_sleep_s > 0:
                        await self._pause(st.idle_sleep_s)
                continue
            if not await self._deliver_head(st):
                break
        return self.status()

    async def _deliver_head(self, st: SubscriptionRun) -> bool:
        """One attempt at the first pending event; False when the subscription ended."""
        position = st.pending[0]
        try:
            result = await workflow.execute_activity(
                WebhookNames.DELIVER,
                DeliveryRequest(subscription_id=st.subscription_id, position=position,
                                attempt=st.attempt + 1),
                result_type=DeliveryResult,
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=5),
                # One try per activity: the workflow owns the backoff and the 3-day limit
                # (a worker killed mid-request times out on its heartbeat and counts as
                # a failed attempt).
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            result = DeliveryResult(outcome="failed", error="activity")
        if result.outcome in ("gone", "inactive"):
            return False
        if result.outcome == "delivered":
            self._done(st, position)
            st.delivered += 1
            return True
        st.attempt += 1
        now = workflow.now()
        if st.first_failure_at is None:
            st.first_failure_at = now
        if (now - st.first_failure_at).total_seconds() >= RETRY_FOR_S:
            await workflow.execute_activity(
                WebhookNames.DEAD_LETTER,
                DeadLetter(subscription_id=st.subscription_id, position=position, attempts=st.attempt),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=STORE_RETRY,
            )
            self._done(st, position)
            st.dead_lettered += 1
            return True
        await self._pause(backoff_s(st.attempt, workflow.random().random()))
        return True

    async def _pause(self, seconds: float) -> None:
        """A timer that a ``stop`` signal cuts short."""
        try:
            await workflow.wait_condition(lambda: self.stopping, timeout=timedelta(seconds=seconds))
        except asyncio.TimeoutError:
            pass

    @staticmethod
    def _done(st: SubscriptionRun, position: int) -> None:
        st.pending.pop(0)
        st.attempt = 0
        st.first_failure_at = None
        st.cursor = position if st.pending else max(position, st.through)
