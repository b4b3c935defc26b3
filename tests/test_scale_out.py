"""Scale-out, proven on this machine (issue 20, item 5).

Three worker processes and two API processes (``python -m worker`` and ``python -m api``,
what ``gd worker`` and ``gd api`` run), each started in a working
directory of its own with its own ``GD_*`` environment and nothing shared on disk, against
one Temporal dev server (the venv's ``temporal`` binary) and the machine's PostgreSQL (a
schema of its own, migrated by ``gd db upgrade``; documents in the store's
``document_blob`` table, the default with PostgreSQL). Payloads are encrypted
(``GD_CODEC_KEYS``) and the processes run as in production (no ``GD_ENV=dev``).

This process is the outside world: a reverse proxy in front of the two API instances
(round robin; a request that cannot reach an instance, or gets 503, goes to the next,
with the same Idempotency-Key), the customer, the RT, the analyst and the inspector
(tokens signed by the tests' JWKS issuer), and the e-mail relay (aiosmtpd sink).

It drives 40 complete lifecycles through the HTTP API while one worker is SIGKILLed (and
started again later) and one API process is restarted, then checks what a user would:
every request reached CONNECTED, every e-mail arrived once (by Message-ID, by template and
request; a second copy is tolerated only where activities/mail.py says it can happen: the
outbox shows a second attempt of that key), every uploaded document reads back with the
same SHA-256 from every API process, each of the three workers did part of the work, and
no worker or API directory holds a file.

Tokens come from the tests' JWKS issuer (served over HTTP to both API processes), not
from the dev issuer, whose private key is a file in each API's directory.

    .venv/bin/pytest -q tests/test_scale_out.py
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from codec import new_key_entry
from models import search_attributes as sa_keys
from tests.oidc_issuer import Issuer
from tests.pdf_fixture import make_pdf
from tests.servers import SERVER_STARTUP
from tests.smtp_sink import SmtpSink
from tests.store_fixtures import PG_URL

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GD = [PYTHON, "-c", "import starter_cli; starter_cli.main()"]
TEMPORAL = str(Path(PYTHON).parent / "temporal")

LIFECYCLES = int(os.environ.get("GD_TEST_SCALE_LIFECYCLES", "40"))  # fewer: a quicker look
WORKERS = 3
APIS = 2
CPF = "52998224725"  # holder of installation 3001234567 in the demo customer base
RT_KEY = "CREA-MG-123456"
APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")
# What one lifecycle sends (DOMAIN.md): intake answered, analysis started, parecer issued,
# inspection requested, connected.
LIFECYCLE_TEMPLATES = ["analysis_started", "connected", "inspection_requested",
                       "parecer_issued", "request_received"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def key_of(message: Any) -> str:
    """The outbox key a message carries (X-GD-Key; a long one arrives folded)."""
    return "".join(str(message["X-GD-Key"]).split())


def pdf(label: str) -> bytes:
    return make_pdf(f"{label} {uuid.uuid4().hex}")


# --- the processes ---------------------------------------------------------------------


@dataclass
class Process:
    """One ``gd`` process in its own directory (``cwd``), its log outside it."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> "Process":
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids.append(self.proc.pid)
        return self

    @property
    def identity(self) -> str:
        """The Temporal client identity the SDK gives the process (pid@host)."""
        assert self.proc is not None
        return f"{self.proc.pid}@{socket.gethostname()}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def base_env(**gd: str) -> dict[str, str]:
    """This machine's environment without any GD_* (or OTEL_*) of the caller's, plus ``gd``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GD_", "OTEL_"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(gd)
    return env


async def pollers(client: Any, task_queue: str) -> set[str]:
    """Identities polling ``task_queue`` for workflow tasks and for activities (both)."""
    seen = []
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind))
        seen.append({p.identity for p in answer.pollers})
    return seen[0] & seen[1]


async def wait_worker(client: Any, task_queue: str, worker: Process, timeout: float = 90.0) -> None:
    give_up = time.monotonic() + timeout
    while worker.identity not in await pollers(client, task_queue):
        assert worker.proc is not None and worker.proc.poll() is None, \
            f"{worker.name} saiu ({worker.proc.returncode}): {worker.tail()}"
        assert time.monotonic() < give_up, f"{worker.name} não começou a consultar a fila: {worker.tail()}"
        await asyncio.sleep(0.3)


async def wait_api(api: Process, base_url: str, timeout: float = 90.0) -> None:
    give_up = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=3.0) as http:
        while True:
            assert api.proc is not None and api.proc.poll() is None, \
                f"{api.name} saiu ({api.proc.returncode}): {api.tail()}"
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < give_up, f"{api.name} não ficou pronta: {api.tail()}"
            await asyncio.sleep(0.3)


# --- the reverse proxy and the people --------------------------------------------------


class Proxy:
    """What a reverse proxy with retries does in front of the API instances: round robin;
    a request that could not reach an instance, or got 502/503/504, goes to the next one
    (the caller's Idempotency-Key makes a repeated action the same action)."""

    def __init__(self, urls: list[str]):
        self.clients = [httpx.AsyncClient(base_url=u, timeout=60.0) for u in urls]
        self.turn = 0
        self.retries = 0

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def request(self, method: str, path: str, *, budget: float = 150.0, **kwargs: Any) -> httpx.Response:
        give_up = time.monotonic() + budget
        failed = 0
        while True:
            client = self.clients[self.turn % len(self.clients)]
            self.turn += 1
            try:
                answer = await client.request(method, path, **kwargs)
                if answer.status_code not in (502, 503, 504):
                    return answer
                last = f"{answer.status_code} {answer.text[:200]}"
            except httpx.TransportError as error:
                last = f"{type(error).__name__}"
            self.retries += 1
            failed += 1
            assert time.monotonic() < give_up, f"{method} {path}: sem resposta útil em {budget:.0f} s ({last})"
            if failed % len(self.clients) == 0:  # every instance refused: wait a little
                await asyncio.sleep(0.5)


class People:
    def __init__(self, issuer: Issuer):
        tokens = {
            "customer": issuer.token("cliente.maria", ["customer"], document=CPF),
            "rt": issuer.token("rt.joao", ["technician"], council_key=RT_KEY),
            "analyst": issuer.token("ana.analista", ["analyst"]),
            "inspector": issuer.token("carlos.vistoria", ["inspector"]),
        }
        self.headers = {who: {"Authorization": f"Bearer {t}"} for who, t in tokens.items()}

    def __getitem__(self, who: str) -> dict[str, str]:
        return self.headers[who]


@dataclass
class Progress:
    """Steps done by all lifecycles; the chaos waits on these."""

    total: int
    done: int = 0
    reached: dict[float, asyncio.Event] = field(default_factory=dict)

    def at(self, fraction: float) -> asyncio.Event:
        event = self.reached.setdefault(fraction, asyncio.Event())
        if self.done >= fraction * self.total:
            event.set()
        return event

    def step(self) -> None:
        self.done += 1
        for fraction, event in self.reached.items():
            if self.done >= fraction * self.total:
                event.set()


STEPS_PER_LIFECYCLE = 11  # 6 uploads, intake, 4 actions


async def lifecycle(proxy: Proxy, who: People, n: int, progress: Progress, uploaded: dict[str, bytes]) -> str:
    rid = f"scale-{n:02d}-{uuid.uuid4().hex[:8]}"

    async def upload(person: str, kind: str) -> dict[str, Any]:
        content = pdf(f"{rid} {kind}")
        r = await proxy.request("POST", "/api/v1/documents", headers=who[person],
                                data={"kind": kind, "request_id": rid},
                                files={"file": (f"{kind}.pdf", content, "application/pdf")})
        assert r.status_code == 201, f"{rid} upload {kind}: {r.status_code} {r.text[:300]}"
        assert r.json()["sha256"] == hashlib.sha256(content).hexdigest()
        uploaded[r.json()["sha256"]] = content
        progress.step()
        return r.json()

    async def act(person: str, update: str, body: dict[str, Any], expect: str) -> dict[str, Any]:
        key = uuid.uuid4().hex  # one action, however many times the proxy has to send it
        r = await proxy.request("POST", f"/api/v1/requests/{rid}/actions/{update}", json=body,
                                headers={**who[person], "Idempotency-Key": key})
        if r.status_code == 409 and r.json().get("code") == "process_closed":
            # the action went through, the answer was lost, and the process has closed since
            r = await proxy.request("GET", f"/api/v1/requests/{rid}", headers=who[person])
        assert r.status_code == 200 and r.json()["status"] == expect, \
            f"{rid} {update}: {r.status_code} {r.text[:300]}"
        progress.step()
        return r.json()

    commercial = await upload("customer", "commercial_id")
    body = {
        "request_id": rid, "kind": "request",
        "customer": {"name": "Maria das Graças Souza", "document": CPF,
                     "email": "maria.souza@example.com.br", "phone": "(31) 99876-5432"},
        "installation_number": "3001234567",
        "technician": {"council": "CREA", "uf": "MG", "registration": "123456"},
        "generation": {"source": "solar", "installed_power_kw": 8.5, "voltage_kv": 0.22, "modality": "local"},
        "documents": [commercial],
    }
    r = await proxy.request("POST", "/api/v1/requests", json=body, headers=who["customer"])
    # 200: a retry found it opened by the first attempt (request_id is the idempotency key),
    # perhaps before the intake was answered: then read it until it is.
    assert r.status_code in (200, 201), f"{rid} intake: {r.status_code} {r.text[:300]}"
    give_up = time.monotonic() + 120
    while r.json()["status"] == "RECEIVED" and time.monotonic() < give_up:
        await asyncio.sleep(0.5)
        r = await proxy.request("GET", f"/api/v1/requests/{rid}", headers=who["customer"])
        assert r.status_code == 200, f"{rid}: {r.status_code} {r.text[:300]}"
    assert r.json()["status"] == "AWAITING_APR", f"{rid} intake: {r.text[:300]}"
    progress.step()
    st = r.json()
    apr = [await upload("rt", kind) for kind in APR_KINDS]
    await act("rt", "register_apr", {"service_note": st["service_note"], "protocol": st["protocol"],
                                     "documents": apr}, "UNDER_ANALYSIS")
    parecer = await upload("analyst", "parecer")
    await act("analyst", "approve", {"parecer": parecer}, "APPROVED")
    await act("customer", "request_inspection", {}, "INSPECTION_REQUESTED")
    await act("inspector", "record_inspection", {"result": "approved"}, "CONNECTED")
    return rid


# --- the test --------------------------------------------------------------------------


async def test_three_workers_two_apis_lose_nothing_when_a_worker_dies_and_an_api_restarts(tmp_path: Path):
    started = time.monotonic()
    schema = f"gd_scale_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # fails (never skips) when PostgreSQL is unreachable
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    database_url = f"{PG_URL}?options={quote('-csearch_path=' + schema)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    smtp = SmtpSink().start()
    issuer = Issuer().start()
    processes: list[Process] = []
    proxy: Proxy | None = None
    env: WorkflowEnvironment | None = None
    try:
        env = await WorkflowEnvironment.start_local(
            dev_server_startup_timeout=SERVER_STARTUP, dev_server_existing_path=TEMPORAL,
            search_attributes=list(sa_keys.ALL_KEYS), dev_server_log_level="error", ui=False)
        common = {
            "GD_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "GD_NAMESPACE": env.client.namespace,
            "GD_TASK_QUEUE": f"gd-scale-{uuid.uuid4().hex[:8]}",
            "GD_DATABASE_URL": database_url,
            "GD_CODEC_KEYS": new_key_entry("k2026a"),
            # the customer-document digest's key, the same in every process (production rule)
            "GD_DOCUMENT_KEY": secrets.token_urlsafe(32),
        }
        # An operator's machine: the schema to head, the customer base in.
        ops = tmp_path / "ops"
        ops.mkdir()
        for argv in (["db", "upgrade"],
                     ["installations", "import", str(ROOT / "domain/data/installations-demo.csv")]):
            done = subprocess.run(GD + argv, cwd=ops, env=base_env(**common), capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr

        workers = [Process(f"worker-{i}", [PYTHON, "-m", "worker"], tmp_path / f"worker-{i}",
                           base_env(**common, GD_SMTP_HOST=smtp.host, GD_SMTP_PORT=str(smtp.port)),
                           logs / f"worker-{i}.log") for i in range(WORKERS)]
        ports = [free_port() for _ in range(APIS)]
        apis = [Process(f"api-{i}", [PYTHON, "-m", "api"], tmp_path / f"api-{i}",
                        base_env(**common, GD_API_HOST="127.0.0.1", GD_API_PORT=str(port), GD_AUTH_MODE="oidc",
                                 GD_AUTH_ISSUER=issuer.url, GD_AUTH_JWKS_URL=issuer.jwks_url),
                        logs / f"api-{i}.log") for i, port in enumerate(ports)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for process in workers + apis:
            processes.append(process.start())
        await asyncio.gather(*(wait_worker(env.client, common["GD_TASK_QUEUE"], w) for w in workers),
                             *(wait_api(a, u) for a, u in zip(apis, urls)))
        up = time.monotonic()

        proxy = Proxy(urls)
        who = People(issuer)
        # The RT every request names: registered by the RT, approved by an analyst.
        rt = {"name": "João Engenheiro", "cpf": "111.444.777-35", "email": "rt.123456@engenharia.example.com",
              "phone": "31 98888-7777", "council": "CREA", "uf": "MG", "registration": "123456"}
        r = await proxy.request("POST", "/api/v1/technicians", json=rt, headers=who["rt"])
        assert r.status_code == 201, r.text
        r = await proxy.request("POST", f"/api/v1/technicians/{RT_KEY}/actions/approve", json={},
                                headers={**who["analyst"], "Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.text

        progress = Progress(total=LIFECYCLES * STEPS_PER_LIFECYCLE)
        uploaded: dict[str, bytes] = {}
        chaos_log: list[str] = []

        def note(what: str) -> None:
            chaos_log.append(f"{what} em {progress.done}/{progress.total} passos")

        async def kill_a_worker() -> None:
            victim = workers[0]
            await progress.at(0.2).wait()
            victim.kill()  # mid-activity, mid-workflow-task: no goodbye
            note("worker-0 SIGKILL")
            await progress.at(0.45).wait()
            victim.start()  # the same directory, a new process
            await wait_worker(env.client, common["GD_TASK_QUEUE"], victim)
            note("worker-0 de volta")

        async def restart_an_api() -> None:
            await progress.at(0.35).wait()
            apis[1].stop()  # what a rolling deploy does: SIGTERM, then the new process
            note("api-1 parada")
            apis[1].start()
            await wait_api(apis[1], urls[1])
            note("api-1 de volta")

        chaos = asyncio.gather(kill_a_worker(), restart_an_api())
        rids = await asyncio.gather(*(lifecycle(proxy, who, n, progress, uploaded) for n in range(LIFECYCLES)))
        await chaos
        driven = time.monotonic()
        assert len(chaos_log) == 4, chaos_log
        assert len(workers[0].pids) == 2 and len(apis[1].pids) == 2  # killed and restarted, restarted

        # Nothing lost: every request closed CONNECTED, as each API process reads it. The
        # workflow says so at once (a strong read); the stored status follows once the queued
        # record_transition has run, which a send or a store write cut by the SIGKILL holds up
        # until its timeout (30-60 s) and a retry.
        async def final_status(index: int, rid: str, strong: bool) -> str:
            r = await proxy.clients[index].get(f"/api/v1/requests/{rid}", headers=who["customer"],
                                               params={"consistency": "strong"} if strong else None)
            assert r.status_code == 200, f"api-{index} {rid}: {r.status_code} {r.text[:300]}"
            if strong:
                assert r.headers["Gd-Status-Source"] == "workflow", r.headers
            return r.json()["status"]

        strong = await asyncio.gather(*(final_status(i, rid, True) for i in range(APIS) for rid in rids))
        assert strong == ["CONNECTED"] * (APIS * len(rids)), strong
        lagging = [(i, rid) for i in range(APIS) for rid in rids]
        give_up = time.monotonic() + 150
        behind = 0
        while lagging and time.monotonic() < give_up:
            stored = await asyncio.gather(*(final_status(i, rid, False) for i, rid in lagging))
            lagging = [pair for pair, status in zip(lagging, stored) if status != "CONNECTED"]
            behind = max(behind, len(lagging))
            if lagging:
                await asyncio.sleep(0.5)
        assert lagging == [], f"stored status still behind the workflow after 150 s: {lagging}"
        caught_up = time.monotonic() - driven

        # Every worker process took part: the first three (the killed one before its death)
        # each completed workflow tasks or ran activities of these requests.
        identities: collections.Counter[str] = collections.Counter()
        for rid in rids:
            history = await env.client.get_workflow_handle(f"gd-request-{rid}").fetch_history()
            for event in history.events:
                if event.HasField("workflow_task_completed_event_attributes"):
                    identities[event.workflow_task_completed_event_attributes.identity] += 1
                elif event.HasField("activity_task_started_event_attributes"):
                    identities[event.activity_task_started_event_attributes.identity] += 1
        host = socket.gethostname()
        share = {w.name: [identities[f"{pid}@{host}"] for pid in w.pids] for w in workers}
        assert all(counts[0] > 0 for counts in share.values()), share

        # Each e-mail once: the RT's registration (received + the credentials) and five per
        # request, each template once per request; a copy would carry the same Message-ID.
        expected = 4 + 5 * LIFECYCLES
        give_up = time.monotonic() + 150  # a send cut by the SIGKILL is retried after its timeout (60 s)
        while len({m["Message-ID"] for m in smtp.messages}) < expected and time.monotonic() < give_up:
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # a late copy or a surplus message would arrive now
        messages = list(smtp.messages)
        by_id = collections.Counter(m["Message-ID"] for m in messages)
        distinct = {m["Message-ID"]: m for m in reversed(messages)}.values()
        per_request = collections.defaultdict(list)
        for message in distinct:
            workflow_id = key_of(message).split(":")[0]
            per_request[workflow_id].append(message["X-GD-Template"])
        for rid in rids:
            assert sorted(per_request.pop(f"gd-request-{rid}", [])) == LIFECYCLE_TEMPLATES, (rid, dict(per_request))
        assert {w: sorted(t) for w, t in per_request.items()} == {
            f"gd-technician-{RT_KEY}": ["technician_agv_credentials", "technician_apr_approved",
                                        "technician_apr_set_password", "technician_received"]}
        assert len(by_id) == expected
        # A second copy (same Message-ID) is only possible for a message whose worker died
        # between the relay's 250 and the outbox's "sent" (activities/mail.py): then the
        # outbox shows a second attempt. None other.
        copies = {mid for mid, count in by_id.items() if count > 1}
        store = sa.create_engine(database_url)
        try:
            with store.connect() as conn:
                attempts = dict(conn.execute(sa.text("SELECT key, attempts FROM outbox")).all())
                blobs = conn.execute(sa.text("SELECT count(*) FROM document_blob")).scalar()
        finally:
            store.dispose()
        for message in messages:
            if message["Message-ID"] in copies:
                assert attempts[key_of(message)] >= 2, f"cópia sem nova tentativa: {key_of(message)}"
        assert len(attempts) == expected and all(
            key_of(m) in attempts for m in messages)

        # Every document reads back, the same bytes, from every API process.
        assert len(uploaded) == 6 * LIFECYCLES
        assert blobs >= len(uploaded)

        async def read_back(index: int, digest: str) -> None:
            r = await proxy.clients[index].get(f"/api/v1/documents/{digest}", headers=who["customer"])
            assert r.status_code == 200, f"api-{index} {digest[:12]}: {r.status_code} {r.text[:200]}"
            assert hashlib.sha256(r.content).hexdigest() == digest, f"api-{index} {digest[:12]}"

        for start in range(0, len(uploaded), 20):
            batch = list(uploaded)[start:start + 20]
            await asyncio.gather(*(read_back(i, d) for i in range(APIS) for d in batch))
        checked = time.monotonic()

        # No process wrote a file in its own directory (documents, mail copies, keys…).
        for process in workers + apis:
            files = [str(p.relative_to(process.cwd)) for p in process.cwd.rglob("*") if p.is_file()]
            assert files == [], f"{process.name}: {files}"
        print(f"\n[scale-out] {LIFECYCLES} ciclos; processos prontos em {up - started:.1f} s; "
              f"ciclos em {driven - up:.1f} s; status guardado em dia após {caught_up:.1f} s "
              f"({behind} leituras atrasadas); verificações em {checked - driven:.1f} s; "
              f"total {time.monotonic() - started:.1f} s; "
              f"{proxy.retries} reenvios pelo proxy; {len(messages)} e-mails, {len(copies)} cópia(s); "
              f"tarefas por worker (processo original, reiniciado) {share}; "
              + "; ".join(chaos_log))
    finally:
        if proxy is not None:
            await proxy.close()
        for process in processes:
            process.stop()
        issuer.stop()
        smtp.stop()
        if env is not None:
            await env.shutdown()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
