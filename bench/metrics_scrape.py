"""`python -m bench.metrics_scrape URL N`: the time the API's store gauges take per scrape.

    python -m bench.metrics_scrape sqlite:////tmp/scrape.db 20000
    python -m bench.metrics_scrape "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dscrape" 20000

Fills ``request_record`` with N rows (random statuses and due dates) and ``outbox`` with 3N
(1 % still ``sending``) — REPLACING what those tables hold, so point it at a scratch
database — then times ``api.metrics.StoreCollector.collect()`` (mean of 20).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta, timezone


def main(argv: list[str]) -> None:
    import sqlalchemy as sa

    from activities.store import Store
    from activities.tables import Outbox, RequestRecord
    from api.metrics import StoreCollector
    from domain.policies import RULES
    from domain.rules import ACCESS

    url, n = argv[0], int(argv[1])
    store = Store(url)
    store.create_schema()
    now = datetime.now(timezone.utc)
    rng = random.Random(1)
    statuses = list(ACCESS.statuses)
    with store.connection() as conn:
        conn.execute(sa.delete(RequestRecord.__table__))
        conn.execute(sa.delete(Outbox.__table__))
        conn.execute(sa.insert(RequestRecord.__table__), [dict(
            workflow_id=f"w{i}", request_id=f"r{i}", kind="request", status=rng.choice(statuses),
            due_at=now + timedelta(days=rng.randint(-10, 30)), due_rule=rng.choice(RULES),
            sla_breaches=rng.randint(0, 1), clock_paused=False, cycle=0, created_at=now,
            updated_at=now) for i in range(n)])
        conn.execute(sa.insert(Outbox.__table__), [dict(
            key=f"k{i}", template="request_received", status="sent" if i % 100 else "sending",
            attempts=1, recipients_count=1, created_at=now) for i in range(3 * n)])
    collector = StoreCollector(store)
    list(collector.collect())
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        list(collector.collect())
    per = (time.perf_counter() - started) / rounds * 1000
    print(f"{store.engine.dialect.name}: {n} requests, {3 * n} outbox rows: {per:.1f} ms per scrape")
    store.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
