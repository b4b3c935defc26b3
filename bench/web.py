"""`python -m bench.web`: how long the web inbox's queue and request page take to render,
with OPEN (default 5,000) open requests in the store (issue 18: queue p95 ≤ 300 ms,
request page p95 ≤ 200 ms).

One stack, every part its own process: the Temporal dev server, the worker with the real
activities (SQLite store), ``gd api`` (dev mode) serving ``/ui``. A few real requests are
filed through the HTTP API and taken to UNDER_ANALYSIS (their pages query the workflow);
then OPEN synthetic open requests are written to the store's read model as the worker
writes them (``request_record`` and three ``event_record`` steps each; 40 % claimed,
5 % with the clock paused, 10 % breached, due dates from 10 days late to 30 ahead), so the
queue has OPEN rows to filter, count, order and page.

This process only drives, as a logged-in analyst (the dev persona), one page at a time:
the queue as it opens, filtered (mine, overdue, minigeração, due within 5 business days),
a far page; and the real requests' pages. Times are end to end on loopback (request sent
to the last byte of the HTML), so they include the server's rendering and nothing of a
browser. Prints p50/p95/p99 per page and the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

PAGES = {
    "fila": "/ui/caixa",
    "fila_minhas": "/ui/caixa?minhas=1",
    "fila_vencidas": "/ui/caixa?vencidas=1",
    "fila_mini": "/ui/caixa?classe=mini",
    "fila_vence_em_5": "/ui/caixa?vence_em=5",
    "fila_pagina_150": "/ui/caixa?pagina=150",
}


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def seed(database_url: str, count: int, rng: random.Random) -> None:
    """``count`` open requests in the read model, as record_transition writes them."""
    import sqlalchemy as sa

    from activities.store import Store
    from activities.tables import EventRecord, RequestRecord

    store = Store(database_url)
    now = datetime.now(timezone.utc)
    requests, events = [], []
    for i in range(count):
        wid = f"gd-request-bench-{i:05d}"
        status = rng.choices(["UNDER_ANALYSIS", "INSPECTION_REQUESTED", "AWAITING_ANSWER"], [70, 20, 10])[0]
        created = now - timedelta(days=rng.uniform(1, 40))
        due = now + timedelta(days=rng.uniform(-10, 30))
        requests.append({
            "workflow_id": wid, "request_id": f"bench-{i:05d}",
            "kind": "inquiry" if status == "AWAITING_ANSWER" else "request", "status": status,
            "generation_class": rng.choice(["micro", "micro", "micro", "mini"]),
            "installation_number": f"30{i:08d}", "service_note": f"9{i:09d}", "protocol": f"2026{i:06d}",
            "due_at": due, "due_rule": {"UNDER_ANALYSIS": "parecer", "INSPECTION_REQUESTED": "inspection",
                                        "AWAITING_ANSWER": "inquiry_answer"}[status],
            "sla_breaches": 1 if rng.random() < 0.10 else 0, "technician": f"CREA-MG-{100000 + i % 50}",
            "cycle": 1, "clock_paused": rng.random() < 0.05, "created_at": created, "updated_at": created,
        })
        steps = [("0001-received", "received", "AWAITING_APR", {}),
                 ("0002-apr_registered", "apr_registered", status, {"rule": "parecer", "due_at": due.isoformat()})]
        if rng.random() < 0.40:
            steps.append(("0003-assigned", "assigned", status,
                          {"analyst": rng.choice(["ana.analista", "bruno.analista"])}))
        for n, (key, action, st, data) in enumerate(steps):
            events.append({
                "workflow_id": wid, "event_key": key, "process": "access", "action": action, "status": st,
                "at": created + timedelta(minutes=n), "actor_id": "bench", "actor_role": "system",
                "reasons": [], "documents": [], "data": data, "recorded_at": created,
            })
    with store.connection() as conn:
        conn.execute(sa.insert(RequestRecord.__table__), requests)
        for start in range(0, len(events), 2000):
            conn.execute(sa.insert(EventRecord.__table__), events[start:start + 2000])


async def login(http, persona: str) -> None:
    page = await http.get("/ui/entrar")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = await http.post("/ui/entrar", data={"csrf": csrf, "persona": persona}, follow_redirects=False)
    assert r.status_code == 303, r.text


async def time_page(http, path: str, rounds: int, warmup: int) -> list[float]:
    found: list[float] = []
    for i in range(warmup + rounds):
        began = time.perf_counter()
        r = await http.get(path)
        elapsed = (time.perf_counter() - began) * 1000
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        if i >= warmup:
            found.append(elapsed)
    return found


async def run(open_requests: int, real: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    from tests.test_api import Who
    from tests.test_web import under_analysis
    from tests.web_stack import DevTokens, web_stack

    with tempfile.TemporaryDirectory(prefix="gd-bench-web-") as tmp_name:
        tmp = Path(tmp_name)
        key = tmp / "dev-key.pem"
        async with web_stack(tmp, {"GD_AUTH_MODE": "dev", "GD_AUTH_DEV_KEY": str(key)},
                             worker_process=True) as stack:
            who = Who(DevTokens(key))
            async with stack.http() as http:
                ids = [(await under_analysis(http, who))["request_id"] for _ in range(real)]
            seed(stack.settings.database_url, open_requests, random.Random(18))
            timings: dict[str, list[float]] = {}
            async with stack.http() as http:
                await login(http, "ana.analista")
                page = await http.get("/ui/caixa")
                total = re.search(r"(\d+) solicitaç", page.text).group(1)
                assert int(total) >= open_requests, total
                for name, path in PAGES.items():
                    timings[name] = await time_page(http, path, rounds, warmup)
                timings["solicitacao"] = []
                for rid in ids:
                    timings["solicitacao"] += await time_page(http, f"/ui/solicitacoes/{rid}",
                                                              max(1, rounds // len(ids)), warmup)
            return timings


def report(timings: dict[str, list[float]], open_requests: int) -> str:
    lines = [f"{open_requests} solicitações abertas no armazenamento · carga média {os.getloadavg()[0]:.2f} "
             f"({os.cpu_count()} núcleos)",
             f"{'página':<20} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
    for name, values in timings.items():
        lines.append(f"{name:<20} {len(values):>5} {pct(values, 50):>8.1f} {pct(values, 95):>8.1f} {pct(values, 99):>8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open", type=int, default=5000, help="solicitações abertas semeadas (padrão 5000)")
    parser.add_argument("--real", type=int, default=5, help="solicitações reais cujas páginas são medidas")
    parser.add_argument("--rounds", type=int, default=200, help="pedidos medidos por página")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    timings = asyncio.run(run(args.open, args.real, args.rounds, args.warmup))
    print(report(timings, args.open))


if __name__ == "__main__":
    main()
