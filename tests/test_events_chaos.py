"""Webhook deliveries while the worker (its own process, on a dev server) is SIGKILLed
again and again, the receiver is slow and answers 500 now and then: every event arrives,
signed, in order, each id at least once and exactly once after the receiver's dedupe;
the subscription workflow continues as new (bounded history) and the feed gives the
same ids."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from activities import events, webhooks
from activities.blobs import BlobStore
from activities.records import RecordActivities
from models.webhooks import SubscriptionProgress
from tests.reliability_helpers import ChaosStack
from tests.test_events import ANALYST, Receiver, _t, check_delivered

STATUSES = ("AWAITING_APR", "UNDER_ANALYSIS", "SUSPENDED", "UNDER_ANALYSIS", "APPROVED")


async def test_worker_killed_during_deliveries_loses_nothing(tmp_path):
    receiver = Receiver().up()
    receiver.delay_s = 0.15
    t0 = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)
    async with ChaosStack(tmp_path, fast_restarts=True) as stack:
        records = RecordActivities(stack.store, BlobStore(stack.settings.blob_dir))
        row, secret = webhooks.create_subscription(stack.store, "sys-portal", receiver.url, None, dev=True)
        sub = await webhooks.start_delivery(stack.client, row, stack.task_queue,
                                            poll_wait_s=2.0, history_limit=120)
        try:
            for seq, status in enumerate(STATUSES, start=1):
                for n in range(6):
                    at = t0 + timedelta(hours=seq, minutes=n)
                    actor = ANALYST if status in ("SUSPENDED", "APPROVED") else None
                    records.record_transition(_t(seq, status.lower(), status, at,
                                                 at + timedelta(days=1), actor, request_id=f"REQ-K-{n}"))
            expected, _ = events.read_after(stack.store, row.start_after, 500)
            assert len(expected) >= 60
            kills = 0
            give_up = time.monotonic() + 240
            while receiver.deduped_ids() != [e.event_id for e in expected]:
                assert time.monotonic() < give_up, (len(receiver.deduped_ids()), len(expected))
                if kills < 3 and len(receiver.deduped_ids()) >= 15 * (kills + 1):
                    receiver.fail_next = 1  # and a 500 around the crash
                    await stack.kill_worker()
                    kills += 1
                    await asyncio.sleep(0.5)
                    await stack.start_worker()
                await asyncio.sleep(0.05)
            for _ in range(100):  # the last attempt completes after the receiver answered
                progress = await sub.query("status", result_type=SubscriptionProgress)
                if progress.pending == 0 and progress.cursor >= expected[-1].position:
                    break
                await asyncio.sleep(0.1)
            await sub.signal("stop")
            await sub.result()
        finally:
            receiver.down()
    assert kills == 3 and len(stack.kills) == 3
    check_delivered(receiver, secret, expected)
    # at least once: a kill after the receiver answered but before the attempt completed
    # resends the same id (the dedupe above keeps one); never a different body for an id.
    bodies: dict[str, bytes] = {}
    for r in receiver.accepted():
        bodies.setdefault(r["headers"]["webhook-id"], r["body"])
        assert bodies[r["headers"]["webhook-id"]] == r["body"]
    assert progress.runs > 1, "the subscription workflow should have continued as new"
    assert progress.delivered >= len(expected) and progress.dead_lettered == 0
