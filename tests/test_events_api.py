"""The HTTP side of issue 19 against the real stack (`gd api` process, dev server, worker,
OIDC issuer, codec keys on): subscribing, signatures with rotation overlap, deliveries,
the long-poll feed with the webhooks' ids, deletion."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timedelta, timezone

from activities.blobs import BlobStore
from activities.records import RecordActivities
from activities.webhooks import workflow_id
from codec import new_key_entry
from tests.api_stack import running_stack
from tests.test_events import ANALYST, Receiver, _t, spec_verify, wait_until

T0 = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)


async def test_subscribe_receive_feed_rotate_delete(tmp_path):
    saved = os.environ.get("GD_CODEC_KEYS")
    os.environ["GD_CODEC_KEYS"] = new_key_entry("kapi")
    receiver = Receiver().up()
    try:
        async with running_stack(tmp_path) as stack:
            i = stack.issuer
            system = {"Authorization": f"Bearer {i.token('portal-cemig', ['system'])}"}
            other = {"Authorization": f"Bearer {i.token('crm-integrador', ['system'])}"}
            analyst = {"Authorization": f"Bearer {i.token('ana.analista', ['analyst'])}"}
            records = RecordActivities(stack.deps.store, BlobStore(stack.settings.blob_dir))
            async with stack.http() as http:
                r = await http.post("/api/v1/subscriptions", headers=analyst, json={"url": receiver.url})
                assert r.status_code == 403
                r = await http.post("/api/v1/subscriptions", headers=system,
                                    json={"url": "http://example.com/x"})
                assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", r.text
                r = await http.post("/api/v1/subscriptions", headers=system,
                                    json={"url": receiver.url, "types": ["br.gd.request.nope"]})
                assert r.status_code == 422 and r.json()["errors"][0]["field"] == "types"
                r = await http.post("/api/v1/subscriptions", headers=system, json={"url": receiver.url})
                assert r.status_code == 201, r.text
                created = r.json()
                secret, sub_id = created["secret"], created["id"]
                assert secret.startswith("whsec_") and r.headers["location"].endswith(sub_id)
                listed = (await http.get("/api/v1/subscriptions", headers=system)).json()["items"]
                assert [s["id"] for s in listed] == [sub_id] and "secret" not in listed[0]
                assert (await http.get(f"/api/v1/subscriptions/{sub_id}", headers=other)).status_code == 404

                for seq, status in enumerate(("AWAITING_APR", "UNDER_ANALYSIS"), start=1):
                    records.record_transition(_t(seq, status.lower(), status, T0 + timedelta(hours=seq),
                                                 T0 + timedelta(days=seq)))
                await wait_until(lambda: len(receiver.deduped_ids()) >= 4, 60, "webhooks")
                feed = (await http.get("/api/v1/events?after=0", headers=system)).json()
                assert [e["id"] for e in feed["events"]] == receiver.deduped_ids()
                assert all(spec_verify(secret, r["headers"], r["body"]) for r in receiver.received)

                # long-poll: answers as soon as the next event is written
                started = time.monotonic()
                poll = asyncio.create_task(http.get(
                    f"/api/v1/events?after={feed['next_cursor']}&wait=10", headers=system))
                await asyncio.sleep(1.0)
                records.record_transition(_t(3, "approved", "APPROVED", T0 + timedelta(days=3), None, ANALYST))
                answer = (await poll).json()
                elapsed = time.monotonic() - started
                assert 0.9 <= elapsed < 8, elapsed
                assert [e["type"] for e in answer["events"]] == [
                    "br.gd.request.status_changed", "br.gd.request.decided"]
                empty = await http.get(f"/api/v1/events?after={answer['next_cursor']}&wait=0", headers=system)
                assert empty.json()["events"] == []
                bad = await http.get("/api/v1/events?after=abc", headers=system)
                assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "after"

                # rotation with overlap: both signatures, each verifies
                r = await http.post(f"/api/v1/subscriptions/{sub_id}/rotate", headers=system,
                                    json={"overlap_hours": 1})
                assert r.status_code == 200, r.text
                new_secret = r.json()["secret"]
                assert new_secret != secret and r.json()["previous_secret_expires_at"]
                seen = len(receiver.received)
                records.record_transition(_t(4, "suspended", "SUSPENDED", T0 + timedelta(days=4), None, ANALYST))
                await wait_until(lambda: len(receiver.received) > seen, 60, "a delivery after rotation")
                last = receiver.received[-1]
                assert len(last["headers"]["webhook-signature"].split(" ")) == 2
                assert spec_verify(new_secret, last["headers"], last["body"])
                assert spec_verify(secret, last["headers"], last["body"])

                deliveries = (await http.get(f"/api/v1/subscriptions/{sub_id}/deliveries",
                                             headers=system)).json()["items"]
                assert deliveries and {d["outcome"] for d in deliveries} == {"delivered"}
                assert {d["status_code"] for d in deliveries} == {200}

                r = await http.delete(f"/api/v1/subscriptions/{sub_id}", headers=system)
                assert r.status_code == 204
                assert (await http.get(f"/api/v1/subscriptions/{sub_id}", headers=system)).status_code == 404
            handle = stack.env.client.get_workflow_handle(workflow_id(sub_id))
            await asyncio.wait_for(handle.result(), 30)
            history = (await handle.fetch_history()).to_json()
            log = stack.api_log.read_text(errors="replace")
            for text in (history, log):
                assert secret[6:] not in text and new_secret[6:] not in text
    finally:
        receiver.down()
        if saved is None:
            os.environ.pop("GD_CODEC_KEYS", None)
        else:
            os.environ["GD_CODEC_KEYS"] = saved
