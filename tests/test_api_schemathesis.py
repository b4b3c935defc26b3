"""Schemathesis against the running API's /api/v1/openapi.json, with valid tokens of
every role: at least 500 generated calls (positive and negative data), no 5xx, and every
error an application/problem+json with the fields API.md names.

Bounded: MAX_EXAMPLES per operation and mode; the generation runs in a thread so the
in-process worker keeps serving on the event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter

import hypothesis
import hypothesis.errors
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from tests.api_stack import running_stack

MAX_EXAMPLES = 25
MIN_CALLS = 500


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    async with running_stack(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def fuzz(stack) -> tuple[Counter, list[str]]:
    iss = stack.issuer
    tokens = itertools.cycle([
        iss.token("ana.analista", ["analyst"]),
        iss.token("cliente.maria", ["customer"], document="52998224725"),
        iss.token("rt.joao", ["technician"], council_key="CREA-MG-123456", kid="ec-1"),
        iss.token("aud.ita", ["auditor"]),
        iss.token("portal", ["system"]),
        iss.token("sup", ["supervisor", "analyst"]),
        iss.token("vis", ["inspector"]),
    ])
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/api/v1/openapi.json")
    statuses: Counter = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def call(case) -> None:
                headers = {"Authorization": f"Bearer {next(tokens)}"}
                response = case.call(base_url=stack.base_url, headers=headers, timeout=60)
                statuses[response.status_code] += 1
                where = f"{case.method} {case.formatted_path} ({mode.value})"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code} {response.text[:300]}")
                elif response.status_code >= 400:
                    ctype = response.headers.get("content-type", "")
                    ctype = ctype[0] if isinstance(ctype, list) else ctype
                    if not ctype.startswith("application/problem+json"):
                        failures.append(f"{where}: {response.status_code} with {ctype}")
                        return
                    body = json.loads(response.text)
                    if not {"type", "title", "status", "detail"} <= set(body) or body["status"] != response.status_code:
                        failures.append(f"{where}: problem without its fields: {response.text[:200]}")

            try:
                call()
            except hypothesis.errors.Unsatisfiable:
                pass  # negative data for an operation with nothing to break (e.g. /healthz)
    return statuses, failures


async def test_schemathesis_no_5xx_and_every_error_a_problem(stack):
    statuses, failures = await asyncio.to_thread(fuzz, stack)
    total = sum(statuses.values())
    print(f"schemathesis: {total} calls, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:20])
    assert total >= MIN_CALLS, statuses
    assert any(200 <= s < 300 for s in statuses), "valid tokens reach real answers too"
