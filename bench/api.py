"""`python -m bench.api`: what the HTTP API adds to a status read and to an action.

One run, one stack, every part its own process: the Temporal dev server, the worker
with the real activities (``python -m bench.lifecycle --serve-worker real``: SQLite
store, blob store, an aiosmtpd sink), ``gd api`` (uvicorn) with a local JWKS issuer.
This process only drives: CLIENTS concurrent clients each own requests
UNDER_ANALYSIS (a fresh one every 18 rounds: pauses are capped per request) and make,
in turn, each call through both paths:

* status: ``GET /api/v1/requests/{id}``  vs  ``handle.query("status")``;
* action: ``POST …/actions/pause_clock`` / ``resume_clock`` (alternating, so each is a
  real decision)  vs  ``handle.execute_update`` + ``handle.query("status")`` (the API
  answers with the status query, so the direct path pays it too).

Both paths run from the same event loop at the same time, so they share the load; each
client alternates which path goes first in a round (API first in even rounds, directly
first in odd ones), so neither always pays for the previous action's effects.
Prints p50/p99 of each path and the API's overhead (target: ≤ 10 ms at p50, ≤ 1.2× at
p99), with the machine's load average (the figures mean little on a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from models.ids import access_request_id
from models.names import Queries, Updates

PATHS = ("api_get", "direct_get", "api_post", "direct_post")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


# domain/limits.py caps pause_clock at 20 per request; a round pauses once (through one
# path) and resumes once (through the other), so a request serves this many rounds.
ROUNDS_PER_REQUEST = 18


async def prepare(http, who, clients: int, rounds: int) -> list[list[str]]:
    """Requests UNDER_ANALYSIS for each client: enough for its rounds under the cap."""
    from tests.test_api import _under_analysis

    per_client = -(-rounds // ROUNDS_PER_REQUEST)
    return [[await _under_analysis(http, who) for _ in range(per_client)] for _ in range(clients)]


async def run(clients: int, rounds: int, warmup: int,
              strong: bool = False) -> tuple[dict[str, list[float]], dict[str, float]]:
    import httpx

    from tests.api_stack import running_stack
    from tests.test_api import Who

    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), worker_process=True) as stack:
            async with stack.http() as http:
                owned = await prepare(http, Who(stack.issuer), clients, warmup + rounds)
            analyst = {"Authorization": f"Bearer {stack.issuer.token('ana.bench', ['analyst'])}"}
            client = stack.env.client
            timings: dict[str, list[float]] = {k: [] for k in PATHS}
            actor = {"id": "ana.bench", "role": "analyst"}
            # --strong: the API asks the workflow (the same query as the direct path)
            # instead of answering from the status the store keeps (API.md, README).
            read = {"consistency": "strong"} if strong else None

            async def one(rids: list[str], http: httpx.AsyncClient) -> None:
                for n in range(warmup + rounds):
                    if n % ROUNDS_PER_REQUEST == 0:  # the next request (starts unpaused)
                        rid = rids[n // ROUNDS_PER_REQUEST]
                        handle = client.get_workflow_handle(access_request_id(rid))
                        paused = False
                    sample: dict[str, float] = {}

                    async def api_get() -> None:
                        t = time.perf_counter()
                        r = await http.get(f"/api/v1/requests/{rid}", headers=analyst, params=read)
                        sample["api_get"] = time.perf_counter() - t
                        assert r.status_code == 200, r.text

                    async def direct_get() -> None:
                        t = time.perf_counter()
                        await handle.query(Queries.STATUS)
                        sample["direct_get"] = time.perf_counter() - t

                    async def api_post() -> None:
                        nonlocal paused
                        update = Updates.RESUME_CLOCK if paused else Updates.PAUSE_CLOCK
                        body = {} if paused else {"reason": "aguardando dados do cliente"}
                        t = time.perf_counter()
                        r = await http.post(f"/api/v1/requests/{rid}/actions/{update}", json=body, headers=analyst)
                        sample["api_post"] = time.perf_counter() - t
                        assert r.status_code == 200, r.text
                        paused = not paused

                    async def direct_post() -> None:
                        nonlocal paused
                        update = Updates.RESUME_CLOCK if paused else Updates.PAUSE_CLOCK
                        args = {"actor": actor} if paused else {"actor": actor, "reason": "aguardando dados"}
                        t = time.perf_counter()
                        await handle.execute_update(update, args, id=str(uuid.uuid4()))
                        await handle.query(Queries.STATUS)
                        sample["direct_post"] = time.perf_counter() - t
                        paused = not paused

                    # Alternate which path goes first: the first read of a round follows
                    # the previous round's action, whose effects (stored step, e-mail) the
                    # worker is still running, and a query waits for the workflow task in
                    # flight. Always API first charged that wait to the API.
                    steps = ((api_get, direct_get, api_post, direct_post) if n % 2 == 0
                             else (direct_get, api_get, direct_post, api_post))
                    for step in steps:
                        await step()
                    if n >= warmup:  # the first rounds open connections, fetch the JWKS…
                        for key, value in sample.items():
                            timings[key].append(value)

            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, limits=limits) as http:
                await asyncio.gather(*(one(rids, http) for rids in owned))
            machine = {"load_before": load_before, "load_after": os.getloadavg()[0],
                       "seconds": time.perf_counter() - started, "cpus": float(os.cpu_count() or 0)}
            return timings, machine


def report(timings: dict[str, list[float]], clients: int, machine: dict[str, float] | None = None) -> str:
    ms = {k: [v * 1000 for v in vals] for k, vals in timings.items()}
    lines = [f"{clients} clientes concorrentes, {len(ms['api_get'])} amostras por caminho"]
    if machine:
        lines.append(f"máquina: {machine['cpus']:.0f} núcleos, carga (1 min) {machine['load_before']:.1f} antes e "
                     f"{machine['load_after']:.1f} depois; medição em {machine['seconds']:.0f} s")
    lines.append(f"{'caminho':<28}{'p50 ms':>10}{'p99 ms':>10}{'média ms':>10}")
    for label, key in (("GET status — API", "api_get"), ("GET status — Temporal direto", "direct_get"),
                       ("POST ação — API", "api_post"), ("POST ação — Temporal direto", "direct_post")):
        vals = ms[key]
        lines.append(f"{label:<28}{pct(vals, 50):>10.1f}{pct(vals, 99):>10.1f}{statistics.mean(vals):>10.1f}")
    for what, api, direct in (("GET", "api_get", "direct_get"), ("POST", "api_post", "direct_post")):
        add50 = pct(ms[api], 50) - pct(ms[direct], 50)
        ratio99 = pct(ms[api], 99) / pct(ms[direct], 99)
        verdict = "metas atingidas" if add50 <= 10 and ratio99 <= 1.2 else "meta NÃO atingida"
        lines.append(f"{what}: API acrescenta {add50:+.1f} ms no p50 (meta ≤ 10) e {ratio99:.2f}× no p99 "
                     f"(meta ≤ 1,2×): {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20, help="chamadas medidas de cada tipo por cliente")
    parser.add_argument("--warmup", type=int, default=2, help="rodadas iniciais não medidas por cliente")
    parser.add_argument("--strong", action="store_true",
                        help="GET com ?consistency=strong: a API consulta o workflow em vez do status guardado")
    args = parser.parse_args()
    timings, machine = asyncio.run(run(args.clients, args.rounds, args.warmup, args.strong))
    print(("GET com ?consistency=strong (consulta ao workflow)\n" if args.strong else
           "GET do status guardado no banco (padrão da API)\n") + report(timings, args.clients, machine))


if __name__ == "__main__":
    main()
