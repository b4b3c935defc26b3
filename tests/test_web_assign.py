"""The ``assign`` update (issue 18) on the workflow itself: an analyst claims a request
for themself, nobody else may take it from them but a supervisor, and the search
attribute ``GdAssignee`` holds the analyst's id. Real workflow code on a real server
(time-skipping or local dev server), activities faked as in test_access_request."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from models import search_attributes as sa
from tests.access_helpers import (
    ANALYST,
    FakeActivities,
    fake_worker,
    register_apr,
    request_input,
    settle,
    start,
    terminate_started,
    update,
)

OTHER = {"id": "bruno.analista", "role": "analyst"}
SUPERVISOR = {"id": "sonia.supervisora", "role": "supervisor"}


@pytest.fixture
async def worker(client, task_queue):
    async with fake_worker(client, task_queue, FakeActivities()) as running:
        yield running
        await terminate_started(client)


async def refusal(handle, args: dict) -> tuple[str, str]:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await update(handle, "assign", args)
    return caught.value.cause.type, caught.value.cause.message


async def test_claim_reassign_and_the_search_attribute(client, task_queue, worker):
    handle = await start(client, request_input(), task_queue)
    st = await settle(handle, lambda s: s.status == "AWAITING_APR")
    # not the distributor's turn yet: the RT must register the APR first
    kind, message = await refusal(handle, {"actor": ANALYST, "analyst": "ana.analista"})
    assert kind == "StatusRefused" and message.startswith("assign: não permitido no status AWAITING_APR")
    st = await register_apr(handle, st)
    assert st.status == "UNDER_ANALYSIS" and st.assignee is None

    # an analyst claims only for themself
    kind, message = await refusal(handle, {"actor": ANALYST, "analyst": "bruno.analista"})
    assert kind == "RoleRefused" and "só assume a solicitação para si" in message
    st = await update(handle, "assign", {"actor": ANALYST, "analyst": "ana.analista"})
    assert st.assignee == "ana.analista" and st.status == "UNDER_ANALYSIS"

    # a second analyst cannot take it; the same analyst again is refused too
    kind, message = await refusal(handle, {"actor": OTHER, "analyst": "bruno.analista"})
    assert (kind, message) == ("StatusRefused", "assign: a solicitação já foi assumida por ana.analista; "
                                                "só o supervisor pode reatribuí-la")
    kind, _ = await refusal(handle, {"actor": ANALYST, "analyst": "ana.analista"})
    assert kind == "InputRefused"

    # the supervisor reassigns
    st = await update(handle, "assign", {"actor": SUPERVISOR, "analyst": "bruno.analista"})
    assert st.assignee == "bruno.analista"
    described = await handle.describe()
    assert described.typed_search_attributes.get(sa.GD_ASSIGNEE) == "bruno.analista"
