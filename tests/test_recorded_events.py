"""Pages read the store's event log only once it holds the step the workflow shows
(``api.web_common.recorded_events``): the page right after an action is never a step behind
(CI saw the portal's reanalysis page show step 1 undone right after the RT did it)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from api.web_common import recorded_events


class LaggingStore:
    """An event log whose steps become visible one read at a time (record_transition
    catching up), then stops at ``last``."""

    def __init__(self, visible: int, last: int):
        self.visible, self.last, self.reads = visible, last, 0

    def events(self, workflow_id: str) -> list:
        self.reads += 1
        shown = min(self.visible + self.reads - 1, self.last)
        keys = ["0000-refused-not"] if shown == 0 else []
        keys += [f"{n:04d}-step" for n in range(1, shown + 1)] + ["email-1-run-x"]
        return [SimpleNamespace(event_key=k, action=k[5:]) for k in keys]


def web_with(store: LaggingStore) -> SimpleNamespace:
    return SimpleNamespace(gd=SimpleNamespace(store=store))


def test_the_log_is_read_again_until_it_holds_the_shown_step() -> None:
    store = LaggingStore(visible=3, last=10)
    events = asyncio.run(recorded_events(web_with(store), "gd-request-x", 6))
    assert [e.event_key for e in events][-2:] == ["0006-step", "email-1-run-x"]
    assert store.reads == 4  # steps 3, 4, 5, then 6


def test_a_log_already_current_is_read_once() -> None:
    store = LaggingStore(visible=6, last=6)
    asyncio.run(recorded_events(web_with(store), "gd-request-x", 6))
    assert store.reads == 1


def test_a_store_that_stays_behind_gives_what_it_has_after_the_wait() -> None:
    store = LaggingStore(visible=2, last=2)
    started = time.monotonic()
    events = asyncio.run(recorded_events(web_with(store), "gd-request-x", 5, wait_s=0.3))
    waited = time.monotonic() - started
    assert [e.event_key for e in events] == ["0001-step", "0002-step", "email-1-run-x"]
    assert 0.3 <= waited < 2.0 and store.reads > 1


def test_no_sequence_in_the_status_reads_once() -> None:
    store = LaggingStore(visible=1, last=9)
    asyncio.run(recorded_events(web_with(store), "gd-request-x", None))
    assert store.reads == 1


def test_steps_past_9999_are_read_by_their_whole_number() -> None:
    # the key is f"{seq:04d}-{action}": step 10000 is "10000-…", not step 1000
    store = LaggingStore(visible=9999, last=10001)
    events = asyncio.run(recorded_events(web_with(store), "gd-request-x", 10001, wait_s=0.5))
    assert events[-2].event_key == "10001-step" and store.reads == 3
