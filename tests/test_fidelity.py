"""Issue 17: the rules a CEMIG analyst or RT would trip on (seed fidelity).

Workflow logic on a real Temporal server with fake activities registered under the real
names (tests/access_helpers.py); expected values come from the guide and DOMAIN.md.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from tests.access_helpers import (
    APR_KINDS,
    CUSTOMER,
    TECH,
    FakeActivities,
    doc,
    fake_worker,
    history_facts,
    quiet,
    register_apr,
    request_input,
    settle,
    start,
    status,
    terminate_started,
    update,
)


@pytest.fixture
def fakes() -> FakeActivities:
    return FakeActivities()


@pytest.fixture
async def worker(client, task_queue, fakes):
    async with fake_worker(client, task_queue, fakes) as running:
        yield running
        await terminate_started()


@pytest.fixture
def refused(time_skipping):
    async def run(handle, name: str, args: dict) -> WorkflowUpdateFailedError:
        """Run an update that must be refused; history must not grow."""
        await quiet(handle)
        before = await history_facts(handle, exact=not time_skipping)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await update(handle, name, args)
        after = await history_facts(handle, exact=not time_skipping)
        assert after == before, f"{name} refusal wrote history"
        return caught.value

    return run


# --- item 1: a lapsed NS needs the technical documents too ------------------------------


@pytest.mark.timeskip
async def test_lapsed_ns_registration_requires_the_technical_documents(
    client, env, worker, task_queue, fakes, refused
):
    """Seed: "Cadastre a NS reprovada por decurso de prazo ... no APR WEB"; the APR step
    takes the technical documents (projeto, ART/RRT, unifilar, memorial). An empty
    registration of the lapsed NS would open a parecer clock on an empty dossier."""
    handle = await start(client, request_input(), task_queue)
    st = await status(handle)
    await env.sleep(timedelta(hours=24, minutes=1))
    st = await settle(handle, lambda s: s.status == "LAPSED")
    base = {"actor": TECH, "service_note": st.service_note, "protocol": st.protocol}
    error = await refused(handle, "register_apr", {**base, "documents": []})
    message = error.cause.message
    assert message.startswith("documents: para cadastrar a NS reprovada por decurso de prazo")
    for kind in APR_KINDS:
        assert kind in message
    # Three of four is still incomplete: the diagrama unifilar is missing.
    partial = [doc(k) for k in APR_KINDS if k != "single_line_diagram"]
    error = await refused(handle, "register_apr", {**base, "documents": partial})
    assert error.cause.message.endswith("obrigatórios: single_line_diagram")
    # Complete: accepted, the NS is registered, the reanalysis can follow.
    st = await register_apr(handle, st)
    assert st.status == "LAPSED"
    st = await update(handle, "request_reanalysis", {
        "actor": CUSTOMER, "reproved_service_note": base["service_note"]})
    assert st.status == "UNDER_ANALYSIS"
    await quiet(handle)
