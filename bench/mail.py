"""CPU and wall time of one ``send_email``, end to end, outside Temporal.

    python -m bench.mail [--n 300]

A real SQLite store (temporary file), the tests' SMTP sink in its own process (its CPU is
not counted) and ``MailActivities.send_email`` called directly with the e-mails of a real
lifecycle (the templates a request goes through, RT recipient resolved from the store):
the outbox read, the claim, rendering and MIME, the SMTP conversation and the ``sent``
mark. Then the same keys again: the ``duplicate`` path.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = ("request_received", "analysis_started", "parecer_issued", "inspection_requested", "connected")


def requests(n: int) -> list:
    from activities.mail import sample_context
    from models.activities import EmailRequest

    out = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        out.append(EmailRequest(
            key=f"bench-mail-{i}:{template}", template=template,
            to=["maria.souza@example.com.br", "technician:CREA-MG-123456"],
            context=sample_context(template),
        ))
    return out


async def measure(n: int) -> dict[str, float]:
    from activities.blobs import BlobStore
    from activities.mail import MailActivities
    from bench.lifecycle import wait_port
    from activities.store import Store
    from activities.tables import TechnicianRecord, utcnow
    from models.settings import GdSettings
    from tests.smtp_sink import free_port

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "tests.smtp_sink", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = GdSettings(database_url=f"sqlite:///{tmp}/gd.db", blob_dir=Path(tmp, "blobs"),
                                  smtp_port=port)
            store = Store(settings.database_url)
            store.create_schema()
            with store.session() as s:
                s.add(TechnicianRecord(key="CREA-MG-123456", workflow_id="gd-technician-bench",
                                       status="APPROVED", email="joao.pereira@example.com.br",
                                       updated_at=utcnow()))
            mail = MailActivities(store, BlobStore(settings.blob_dir), settings)
            await wait_port(port)
            for req in requests(20):  # warm-up: imports, templates, connection pool
                await mail.send_email(req.model_copy(update={"key": "warm-" + req.key}))
            batch = requests(n)
            cpu, wall = time.process_time(), time.perf_counter()
            for req in batch:
                assert (await mail.send_email(req)).status == "sent"
            sent_cpu, sent_wall = time.process_time() - cpu, time.perf_counter() - wall
            cpu = time.process_time()
            for req in batch:
                assert (await mail.send_email(req)).status == "duplicate"
            dup_cpu = time.process_time() - cpu
            store.dispose()
    finally:
        sink.terminate()
        sink.wait(5)
    return {"n": n, "sent_cpu_ms": 1000 * sent_cpu / n, "sent_wall_ms": 1000 * sent_wall / n,
            "duplicate_cpu_ms": 1000 * dup_cpu / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mail", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="e-mails measured (default 300)")
    args = parser.parse_args(argv)
    r = asyncio.run(measure(args.n))
    print(f"send_email, {r['n']} e-mails: {r['sent_cpu_ms']:.2f} ms CPU and {r['sent_wall_ms']:.2f} ms wall "
          f"each; duplicate: {r['duplicate_cpu_ms']:.2f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
