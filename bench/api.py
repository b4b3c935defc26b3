"""`python -m bench.api`: what the HTTP API adds to a status read and to an action.

One run, one stack (the test stack of tests/api_stack.py: Temporal dev server, a worker
with the real activities, a JWKS issuer, `gd api` as its own uvicorn process). CLIENTS
concurrent clients each own one request UNDER_ANALYSIS and make, in turn:

* status: ``GET /api/v1/requests/{id}``  vs  ``handle.query("status")``;
* action: ``POST …/actions/pause_clock`` / ``resume_clock`` (alternating, so each is a
  real decision)  vs  ``handle.execute_update`` + ``handle.query("status")`` (the API
  answers with the status query, so the direct path pays it too).

Prints p50/p99 of each path and the API's overhead (target: ≤ 10 ms at p50, ≤ 1.2× at p99).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from models.ids import access_request_id


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


async def prepare(stack, http, clients: int) -> list[str]:
    from tests.test_api import Who, _under_analysis

    who = Who(stack.issuer)
    return [await _under_analysis(http, who) for _ in range(clients)]


async def run(clients: int, rounds: int) -> dict[str, list[float]]:
    import httpx

    from tests.api_stack import running_stack

    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp)) as stack:
            async with stack.http() as http:
                rids = await prepare(stack, http, clients)
            analyst = {"Authorization": f"Bearer {stack.issuer.token('ana.bench', ['analyst'])}"}
            client = stack.env.client
            timings: dict[str, list[float]] = {k: [] for k in ("api_get", "direct_get", "api_post", "direct_post")}
            actor = {"id": "ana.bench", "role": "analyst"}

            async def one(rid: str, http: httpx.AsyncClient) -> None:
                handle = client.get_workflow_handle(access_request_id(rid))
                paused = False
                for _ in range(rounds):
                    t = time.perf_counter()
                    r = await http.get(f"/api/v1/requests/{rid}", headers=analyst)
                    timings["api_get"].append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                    t = time.perf_counter()
                    await handle.query("status")
                    timings["direct_get"].append(time.perf_counter() - t)
                    update = "resume_clock" if paused else "pause_clock"
                    body = {} if paused else {"reason": "aguardando dados do cliente"}
                    t = time.perf_counter()
                    r = await http.post(f"/api/v1/requests/{rid}/actions/{update}", json=body, headers=analyst)
                    timings["api_post"].append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                    paused = not paused
                    update = "resume_clock" if paused else "pause_clock"
                    args = {"actor": actor} if paused else {"actor": actor, "reason": "aguardando dados"}
                    t = time.perf_counter()
                    await handle.execute_update(update, args, id=str(uuid.uuid4()))
                    await handle.query("status")
                    timings["direct_post"].append(time.perf_counter() - t)
                    paused = not paused

            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, limits=limits) as http:
                await asyncio.gather(*(one(rid, http) for rid in rids))
            return timings


def report(timings: dict[str, list[float]], clients: int) -> str:
    ms = {k: [v * 1000 for v in vals] for k, vals in timings.items()}
    lines = [f"{clients} clientes concorrentes, {len(ms['api_get'])} amostras por caminho"]
    lines.append(f"{'caminho':<28}{'p50 ms':>10}{'p99 ms':>10}{'média ms':>10}")
    for label, key in (("GET status — API", "api_get"), ("GET status — Temporal direto", "direct_get"),
                       ("POST ação — API", "api_post"), ("POST ação — Temporal direto", "direct_post")):
        vals = ms[key]
        lines.append(f"{label:<28}{pct(vals, 50):>10.1f}{pct(vals, 99):>10.1f}{statistics.mean(vals):>10.1f}")
    for what, api, direct in (("GET", "api_get", "direct_get"), ("POST", "api_post", "direct_post")):
        add50 = pct(ms[api], 50) - pct(ms[direct], 50)
        ratio99 = pct(ms[api], 99) / pct(ms[direct], 99)
        lines.append(f"{what}: API acrescenta {add50:+.1f} ms no p50 (meta ≤ 10) e {ratio99:.2f}× no p99 (meta ≤ 1,2×)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20, help="chamadas de cada tipo por cliente")
    args = parser.parse_args()
    timings = asyncio.run(run(args.clients, args.rounds))
    print(report(timings, args.clients))


if __name__ == "__main__":
    main()
