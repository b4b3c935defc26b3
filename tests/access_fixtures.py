"""Fixtures of the AccessRequest workflow tests on fake activities: the fakes, a worker
that runs them, and ``refused`` (an update that must be refused without writing history).

Import them by name into a test module (pytest finds fixtures in its namespace)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from tests.access_helpers import FakeActivities, fake_worker, history_facts, quiet, terminate_started, update


@pytest.fixture
def fakes() -> FakeActivities:
    return FakeActivities()


@pytest.fixture
async def worker(client, task_queue, fakes):
    async with fake_worker(client, task_queue, fakes) as running:
        yield running
        await terminate_started(client)


@pytest.fixture
def refused(time_skipping):
    async def run(handle, name: str, args: dict) -> str:
        """Run an update that must be refused; return its message; history must not grow."""
        await quiet(handle)
        before = await history_facts(handle, exact=not time_skipping)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await update(handle, name, args)
        after = await history_facts(handle, exact=not time_skipping)
        assert after == before, f"{name} refusal wrote history"
        return caught.value.cause.message

    return run
