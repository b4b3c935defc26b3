"""`python -m bench.scale --open N`: what analysts and operators feel with N requests open.

    python -m bench.scale --open 10000 --json /tmp/scale.json
    python -m bench.scale --open 30 --samples 5 --json /tmp/s.json      # a smoke run

Everything runs on this machine, in a temporary directory (``--keep`` keeps it), as in
``bench.lifecycle``: the Temporal dev server (``devstack.DevStack``: SQLite file with
``journal_mode=WAL``, ``synchronous=NORMAL``), the tests' SMTP sink in its own process, the
worker with the real activities in its own process (``python -m bench.lifecycle
--serve-worker real``), ``gd api`` (uvicorn) with the tests' local JWKS issuer; this
process is the outside system.

1. **Seed**: an approved RT, then N open processes spread over every waiting status a
   client can reach (``SEED_MIX``: AWAITING_APR, UNDER_ANALYSIS, SUSPENDED, REPROVED,
   APPROVED, INSPECTION_REQUESTED, INSPECTION_REPROVED, AWAITING_ANSWER and the RT
   registrations' PENDING_REVIEW; LAPSED needs the APR window to run out), each driven
   through the temporalio client (start, intake, the updates that lead there), ``--lanes``
   at a time; then wait until the worker is idle (every e-mail sent, every step stored).
2. **Measure** with them open (``--samples`` each):
   * the analysts' queue: ``GET /api/v1/requests`` (default view and three filters) and
     what ``gd analyst queue`` runs (``GdClient.analyst_queue``, in this process; one
     ``gd analyst queue --json`` subprocess is also timed, start-up included);
   * ``GET /api/v1/requests/{id}`` of random open requests, one analyst;
   * ``POST …/actions/pause_clock|resume_clock`` by 20 concurrent analysts, each on its
     own UNDER_ANALYSIS requests, each pausing ``--think`` seconds on average between two
     decisions (``--think 0``: back to back, the machine's saturation);
   * ``gd report sla --from … --to …`` (subprocess, wall time);
   * worker RSS (``VmRSS``, ``VmHWM``) and its CPU while nobody calls (idle);
   * server database bytes per open process (``temporal.db`` + WAL), the store's too;
   * resume: the worker stopped and started again; seconds from its start until every
     open request has answered a ``status`` query (``--lanes`` queries at a time);
   * ``gd audit replay --query 'ExecutionStatus="Running"'`` (``--jobs`` left to its
     default: one process per 100 histories, up to the cores), wall time.

``--json PATH`` writes every figure; the top-level keys ``open``, ``queue_p95_ms``,
``status_p95_ms``, ``action_p95_ms``, ``sla_report_s``, ``worker_rss_mib``, ``resume_s``,
``replay_s`` are the ones the targets (``TARGETS``) are about.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from bench.lifecycle import (
    ANALYST, APR_KINDS, CUSTOMER, DOC_KINDS, INSPECTOR, PROJECT_ROOT, TECH, TECHNICIAN, TECHNICIAN_INPUT,
    WorkerProcess, free_port, machine_busy_s, pdf, percentile, proc_cpu_s, request_payload, wait_port,
    wait_status,
)
from models.names import Queries, Updates, Workflows
from worker import MAX_CACHED_WORKFLOWS

# Share of the open processes in each waiting status (weights; the rest of a distributor's
# open work: most under analysis or waiting for the RT, some in the field).
SEED_MIX: dict[str, int] = {
    "AWAITING_APR": 18,
    "UNDER_ANALYSIS": 25,
    "SUSPENDED": 10,
    "REPROVED": 5,
    "APPROVED": 12,
    "INSPECTION_REQUESTED": 10,
    "INSPECTION_REPROVED": 5,
    "AWAITING_ANSWER": 13,  # inquiries
    "PENDING_REVIEW": 2,  # RT registrations
}
# Targets of issue 21 (2-core machine): key -> (limit, unit).
TARGETS: dict[str, tuple[float, str]] = {
    "queue_p95_ms": (300, "ms"),
    "status_p95_ms": (50, "ms"),
    "action_p95_ms": (300, "ms"),
    "sla_report_s": (10, "s"),
    "worker_rss_mib": (500, "MiB"),
    "replay_s": (600, "s"),
}
ANALYSTS = 20
# The API's list filters measured besides the default view, and gd analyst queue's.
API_VIEWS: dict[str, dict[str, str]] = {
    "default": {},
    "status=UNDER_ANALYSIS": {"status": "UNDER_ANALYSIS"},
    "technician": {"technician": f"{TECHNICIAN['council']}-{TECHNICIAN['uf']}-{TECHNICIAN['registration']}"},
    "due_within=5": {"due_within": "5"},
}
CLI_VIEWS: dict[str, dict[str, Any]] = {
    "default": {},
    "class=micro": {"generation_class": "micro"},
    "technician": {"technician": API_VIEWS["technician"]["technician"]},
    "due_within=5": {"due_within_days": 5},
}


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


def ms_figures(values: list[float]) -> dict[str, float]:
    """p50/p95/max in milliseconds of durations in seconds."""
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
    }


def proc_rss_mib(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


def plan(open_count: int, seed: int = 21) -> list[str]:
    """The target status of each process to open (shuffled, proportions of SEED_MIX)."""
    total = sum(SEED_MIX.values())
    targets: list[str] = []
    for status, weight in SEED_MIX.items():
        targets += [status] * (open_count * weight // total)
    statuses = list(SEED_MIX)
    while len(targets) < open_count:  # the rounding remainder, spread over the mix
        targets.append(statuses[len(targets) % len(statuses)])
    random.Random(seed).shuffle(targets)
    return targets


def inquiry_payload(request_id: str) -> dict[str, Any]:
    raw = request_payload(request_id, {"commercial_id": {}})
    raw.update(kind="inquiry", installation_number=None, technician=None, documents=[])
    return raw


def technician_payload(number: int) -> dict[str, Any]:
    return {**TECHNICIAN_INPUT, "registration": str(number)}


# The updates after intake that lead an AccessRequest to each status.
def steps_to(target: str, docs: dict[str, dict], parecer: dict | None) -> list[tuple[str, Callable[[dict], dict]]]:
    apr = (Updates.REGISTER_APR, lambda st: {
        "actor": TECH, "service_note": st.get("service_note") or "7000000000",
        "protocol": st.get("protocol") or "2026000000", "documents": [docs[k] for k in APR_KINDS],
    })
    approve = (Updates.APPROVE, lambda st: {"actor": ANALYST, "parecer": parecer, "notes": "Parecer favorável."})
    inspection = (Updates.REQUEST_INSPECTION, lambda st: {"actor": CUSTOMER})
    paths: dict[str, list] = {
        "AWAITING_APR": [],
        "UNDER_ANALYSIS": [apr],
        "SUSPENDED": [apr, (Updates.SUSPEND, lambda st: {"actor": ANALYST, "pendencies": [{"code": "DOC-ART-AUSENTE"}]})],
        "REPROVED": [apr, (Updates.REPROVE, lambda st: {"actor": ANALYST, "reasons": [{"code": "DOC-UNIFILAR-DIVERGENTE"}]})],
        "APPROVED": [apr, approve],
        "INSPECTION_REQUESTED": [apr, approve, inspection],
        "INSPECTION_REPROVED": [apr, approve, inspection, (Updates.RECORD_INSPECTION, lambda st: {
            "actor": INSPECTOR, "result": "reproved", "findings": ["Aterramento fora do padrão da distribuidora."]})],
    }
    return paths[target]


NEEDS_PARECER = ("APPROVED", "INSPECTION_REQUESTED", "INSPECTION_REPROVED")


class Scale:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tag = uuid.uuid4().hex[:6]
        self.report: dict[str, Any] = {"open": 0, "requested_open": args.open}
        self.docs: dict[str, dict] = {}
        self.opened: dict[str, str] = {}  # workflow id -> status reached
        self.failures: list[str] = []
        self.pycache = Path(tempfile.gettempdir()) / "gd-bench-pycache"

    # processes -----------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        from devstack import settings_env

        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        env.update(settings_env(self.settings))
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        return env

    def start_worker(self, name: str) -> WorkerProcess:
        options = {"max_cached_workflows": self.args.max_cached} if self.args.max_cached else {}
        return WorkerProcess("real", self.settings, options, self.work / f"worker-{name}.log", "WARNING", self.pycache)

    async def run(self) -> dict[str, Any]:
        from devstack import DevStack
        from models.settings import GdSettings

        args = self.args
        work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gd-scale-"))
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        smtp_port = free_port()
        sink = subprocess.Popen(
            [sys.executable, "-m", "tests.smtp_sink", "--port", str(smtp_port), "--save-dir", str(work / "mail")],
            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(work / "smtp.log").open("ab"), start_new_session=True,
        )
        self.settings = GdSettings(
            temporal_address=f"127.0.0.1:{free_port()}",
            task_queue=f"gd-scale-{self.tag}",
            database_url=f"sqlite:///{work / 'gd.db'}",
            blob_dir=work / "blobs",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            mail_dir=work / "devstack-mail",
            env="dev",
        )
        self.report["machine"] = {"cpus": os.cpu_count(), "load_1m_start": round(os.getloadavg()[0], 2)}
        self.report["command"] = "python -m bench.scale " + " ".join(sys.argv[1:])
        self.worker: WorkerProcess | None = None
        try:
            await wait_port(smtp_port)
            async with DevStack(
                self.settings, ui_port=free_port(), worker=False, smtp=False, var_dir=work,
                db_file=work / "temporal.db",
            ) as stack:
                self.stack = stack
                self.client = stack.client
                log(f"servidor Temporal pronto em {stack.ready_s:.1f} s; dir {work}")
                self.worker = self.start_worker("seed")
                await self.worker.ready()
                await self.setup()
                await self.seed()
                await self.settle()
                await self.count_open()
                await self.measure()
        finally:
            if self.worker is not None:
                self.worker.stop()
            sink.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sink.wait(5)
            if sink.poll() is None:
                sink.kill()
        self.report["failures"] = len(self.failures)
        self.report["failure_samples"] = sorted(set(self.failures))[:5]
        self.report["machine"]["load_1m_end"] = round(os.getloadavg()[0], 2)
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        return self.report

    # seeding -------------------------------------------------------------------------

    async def setup(self) -> None:
        import worker as gd_worker
        from activities.blobs import upload
        from models.ids import technician_id

        from activities.installations import load_demo

        deps = gd_worker.build_dependencies(self.settings)
        try:
            load_demo(deps.store)  # the customer base the requests name (GD_INSTALLATIONS_CHECK)
            for kind in DOC_KINDS:
                ref = upload(deps.store, deps.blobs, pdf(kind), kind=kind, filename=f"{kind}.pdf")
                self.docs[kind] = ref.model_dump(mode="json")
        finally:
            deps.store.dispose()
        handle = await self.client.start_workflow(
            Workflows.TECHNICIAN_REGISTRATION, TECHNICIAN_INPUT,
            id=technician_id(TECHNICIAN["council"], TECHNICIAN["uf"], TECHNICIAN["registration"]),
            task_queue=self.settings.task_queue,
        )
        await wait_status(handle, lambda s: s.get("next_actor") == "analyst")
        await handle.execute_update(Updates.APPROVE, {"actor": ANALYST})
        if (await handle.result()).get("status") != "APPROVED":
            raise RuntimeError("o RT do benchmark não foi aprovado")

    def upload_parecer(self, deps: Any, request_id: str) -> dict:
        from activities.blobs import upload
        from models.ids import access_request_id

        ref = upload(deps.store, deps.blobs, pdf(f"parecer {request_id}"), kind="parecer",
                     filename="parecer.pdf", for_workflow=access_request_id(request_id))
        return ref.model_dump(mode="json")

    async def open_one(self, index: int, target: str, deps: Any) -> None:
        from temporalio.common import WorkflowIDConflictPolicy
        from temporalio.service import RPCError

        from models.ids import access_request_id, technician_id

        request_id = f"scale-{self.tag}-{index:05d}"
        queue = self.settings.task_queue
        policy = WorkflowIDConflictPolicy.USE_EXISTING
        try:
            if target == "PENDING_REVIEW":
                number = 500000 + index
                handle = await self.client.start_workflow(
                    Workflows.TECHNICIAN_REGISTRATION, technician_payload(number),
                    id=technician_id(TECHNICIAN["council"], TECHNICIAN["uf"], str(number)),
                    task_queue=queue, id_conflict_policy=policy,
                )
                await wait_status(handle, lambda s: s.get("status") != "RECEIVED")
            else:
                workflow_id = access_request_id(request_id)
                payload = inquiry_payload(request_id) if target == "AWAITING_ANSWER" else request_payload(request_id, self.docs)
                parecer = await asyncio.to_thread(self.upload_parecer, deps, request_id) if target in NEEDS_PARECER else None
                for attempt in range(3):
                    try:
                        handle = await self.client.start_workflow(
                            Workflows.ACCESS_REQUEST, payload, id=workflow_id, task_queue=queue,
                            id_conflict_policy=policy,
                        )
                        break
                    except RPCError as error:
                        # the dev server's first seconds: "Namespace default is not found"
                        # once in 500 starts (seen with --open 500); the start is idempotent
                        if attempt == 2 or "not found" not in str(error):
                            raise
                        await asyncio.sleep(1.0)
                st = await wait_status(handle, lambda s: s.get("status") != "RECEIVED")
                for name, build in steps_to(target, self.docs, parecer) if target != "AWAITING_ANSWER" else []:
                    await handle.execute_update(name, build(st))
            self.opened[handle.id] = target
        except Exception as error:  # noqa: BLE001 - counted and reported
            self.failures.append(f"{target}: {type(error).__name__}: {error}"[:300])

    async def seed(self) -> None:
        import worker as gd_worker

        targets = plan(self.args.open)
        deps = gd_worker.build_dependencies(self.settings)
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for item in enumerate(targets):
            queue.put_nowait(item)
        began = time.perf_counter()
        busy0 = machine_busy_s()
        last = [began]
        every = max(1, len(targets) // 10)

        async def lane() -> None:
            while not queue.empty():
                index, target = queue.get_nowait()
                await self.open_one(index, target, deps)
                done = len(self.opened) + len(self.failures)
                if done % every == 0 and time.perf_counter() - last[0] > 1:
                    last[0] = time.perf_counter()
                    log(f"abertos {done}/{len(targets)} em {last[0] - began:.0f} s "
                        f"(carga {os.getloadavg()[0]:.1f})")

        await asyncio.gather(*(lane() for _ in range(self.args.lanes)))
        deps.store.dispose()
        elapsed = time.perf_counter() - began
        self.report["seed"] = {
            "seconds": round(elapsed, 1),
            "per_s": round(len(self.opened) / elapsed, 2),
            "lanes": self.args.lanes,
            "failures": len(self.failures),
            "machine_cores_busy": round((machine_busy_s() - busy0) / elapsed, 2),
        }
        log(f"semeados {len(self.opened)} em {elapsed:.0f} s; falhas {len(self.failures)}")

    async def settle(self, quiet_s: float = 3.0, limit_s: float = 900.0) -> None:
        """Until the worker has been idle (< 5 % of a core) for ``quiet_s``: effects done."""
        began = time.perf_counter()
        pid = self.worker.pid
        quiet_since = None
        while time.perf_counter() - began < limit_s:
            cpu0 = proc_cpu_s(pid)
            await asyncio.sleep(1.0)
            if proc_cpu_s(pid) - cpu0 < 0.05:
                quiet_since = quiet_since or time.perf_counter()
                if time.perf_counter() - quiet_since >= quiet_s:
                    break
            else:
                quiet_since = None
        self.report["settle_s"] = round(time.perf_counter() - began, 1)

    async def count_open(self) -> None:
        running = (await self.client.count_workflows('ExecutionStatus="Running"')).count
        by_status = {}
        for status in SEED_MIX:
            by_status[status] = (await self.client.count_workflows(
                f'ExecutionStatus="Running" AND GdStatus="{status}"')).count
        self.report["open"] = running
        self.report["open_by_status"] = by_status
        log(f"abertos no servidor: {running} {by_status}")

    # measuring -----------------------------------------------------------------------

    async def measure(self) -> None:
        from tests.api_stack import api_env, wait_ready
        from tests.oidc_issuer import Issuer

        issuer = Issuer().start()
        port = free_port()
        api_log = self.work / "api.log"
        env = {**api_env(self.settings, self.stack.target, issuer, port), "PYTHONPYCACHEPREFIX": str(self.pycache)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        with api_log.open("wb") as out:
            api = subprocess.Popen([sys.executable, "-m", "api"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=self.work, start_new_session=True)
        try:
            base_url = f"http://127.0.0.1:{port}"
            await wait_ready(base_url, api, api_log)
            self.token = issuer.token("ana.bench", ["analyst"])
            self.base_url = base_url
            await self.measure_queue()
            await self.measure_cli_queue()
            await self.measure_status()
            await self.measure_actions()
        finally:
            api.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                api.wait(10)
            if api.poll() is None:
                api.kill()
            issuer.stop()
        await self.settle()
        self.measure_sla()
        await self.measure_worker_idle()
        self.measure_db()
        await self.measure_resume()
        self.measure_replay()

    def http(self):
        import httpx

        limits = httpx.Limits(max_connections=ANALYSTS, max_keepalive_connections=ANALYSTS)
        return httpx.AsyncClient(base_url=self.base_url, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {self.token}"})

    async def measure_queue(self) -> None:
        views: dict[str, Any] = {}
        async with self.http() as http:
            await http.get("/api/v1/requests")  # warm: JWKS fetched, connection open
            for name, params in API_VIEWS.items():
                times, items = [], 0
                for _ in range(self.args.samples):
                    t = time.perf_counter()
                    r = await http.get("/api/v1/requests", params=params)
                    times.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise RuntimeError(f"GET /api/v1/requests {params}: {r.status_code} {r.text[:300]}")
                    items = len(r.json()["items"])
                views[name] = {**ms_figures(times), "items": items}
        self.report["queue_api"] = views
        self.report["queue_p95_ms"] = max(v["p95_ms"] for v in views.values())
        self.report["queue_p50_ms"] = max(v["p50_ms"] for v in views.values())
        log(f"fila (API): {json.dumps(views)}")

    async def measure_cli_queue(self) -> None:
        from gd_client import GdClient

        gd = GdClient(self.client, self.settings)
        views: dict[str, Any] = {}
        for name, kwargs in CLI_VIEWS.items():
            times, rows = [], 0
            for _ in range(self.args.samples):
                t = time.perf_counter()
                rows = len(await gd.analyst_queue(**kwargs))
                times.append(time.perf_counter() - t)
            views[name] = {**ms_figures(times), "rows": rows}
        # The command itself once: Python start-up, imports, connection, the same call.
        gd_bin = Path(sys.executable).parent / "gd"
        command = [str(gd_bin)] if gd_bin.exists() else [sys.executable, "-c", "import starter_cli; starter_cli.main()"]
        t = time.perf_counter()
        done = subprocess.run([*command, "analyst", "queue", "--json"], env=self.child_env(), cwd=self.work,
                              capture_output=True, timeout=600)
        command_s = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(f"gd analyst queue: {done.returncode} {done.stderr.decode()[-500:]}")
        self.report["queue_cli"] = views
        self.report["queue_cli_p95_ms"] = max(v["p95_ms"] for v in views.values())
        self.report["queue_cli_command_s"] = round(command_s, 2)
        log(f"fila (gd analyst queue): {json.dumps(views)}; comando inteiro {command_s:.2f} s")

    async def measure_status(self) -> None:
        ids = [w for w, s in self.opened.items() if s != "PENDING_REVIEW"]
        rng = random.Random(7)
        picks = [rng.choice(ids) for _ in range(self.args.samples * 5)]
        from models.ids import short_id

        # The default GET (the stored status, request_status), then the same picks with
        # consistency=strong (the workflow's query: what every GET did before 0010).
        sources: dict[str, int] = {}
        for mode in ("stored", "strong"):
            times = []
            async with self.http() as http:
                for workflow_id in picks:
                    t = time.perf_counter()
                    r = await http.get(f"/api/v1/requests/{short_id(workflow_id)}", params={"consistency": mode})
                    times.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise RuntimeError(f"GET status {workflow_id}: {r.status_code} {r.text[:300]}")
                    if mode == "stored":
                        source = r.headers.get("gd-status-source", "?")
                        sources[source] = sources.get(source, 0) + 1
            self.report["status_get" if mode == "stored" else "status_get_strong"] = ms_figures(times)
        self.report["status_get"]["sources"] = sources
        self.report["status_p95_ms"] = self.report["status_get"]["p95_ms"]
        log(f"GET situação: {self.report['status_get']}; consistency=strong: {self.report['status_get_strong']}")

    async def measure_actions(self) -> None:
        """20 analysts, each pausing and resuming the clock of its own UNDER_ANALYSIS requests."""
        from models.ids import short_id

        under = [short_id(w) for w, s in self.opened.items() if s == "UNDER_ANALYSIS"]
        rounds = max(2, self.args.samples // 2)
        per_analyst = [under[i::ANALYSTS] for i in range(ANALYSTS)]
        times: list[float] = []
        errors: list[str] = []
        busy0, began = machine_busy_s(), time.perf_counter()

        think = self.args.think
        rng = random.Random(11)

        async def analyst(mine: list[str], http) -> None:
            if not mine:
                return
            for n in range(rounds):
                if think:  # a person reads the page between two decisions
                    await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
                rid = mine[(n // 2) % len(mine)]
                # pause then resume on the same request (paused in odd rounds of each pair)
                update = Updates.PAUSE_CLOCK if n % 2 == 0 else Updates.RESUME_CLOCK
                body = {"reason": "aguardando dados do cliente"} if n % 2 == 0 else {}
                t = time.perf_counter()
                r = await http.post(f"/api/v1/requests/{rid}/actions/{update}", json=body)
                times.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors.append(f"{update}: {r.status_code} {r.text[:200]}")

        async with self.http() as http:
            await asyncio.gather(*(analyst(mine, http) for mine in per_analyst))
        elapsed = time.perf_counter() - began
        self.report["action_post"] = {**ms_figures(times), "analysts": ANALYSTS, "think_s": think, "errors": len(errors),
                                      "error_samples": errors[:3], "per_s": round(len(times) / elapsed, 1),
                                      "machine_cores_busy": round((machine_busy_s() - busy0) / elapsed, 2)}
        self.report["action_p95_ms"] = self.report["action_post"]["p95_ms"]
        log(f"POST ação: {self.report['action_post']}")

    def gd_command(self, *argv: str, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
        gd_bin = Path(sys.executable).parent / "gd"
        command = [str(gd_bin)] if gd_bin.exists() else [sys.executable, "-c", "import starter_cli; starter_cli.main()"]
        t = time.perf_counter()
        done = subprocess.run([*command, *argv], env=self.child_env(), cwd=self.work, capture_output=True,
                              timeout=timeout)
        return time.perf_counter() - t, done

    def measure_sla(self) -> None:
        from domain.calendar import local_date

        today = local_date(datetime.now(timezone.utc))
        first = today - timedelta(days=365)
        seconds, done = self.gd_command("report", "sla", "--from", first.isoformat(), "--to", today.isoformat(), "--json")
        if done.returncode != 0:
            raise RuntimeError(f"gd report sla: {done.returncode} {done.stderr.decode()[-500:]}")
        self.report["sla_report_s"] = round(seconds, 2)
        self.report["sla_report"] = {"from": first.isoformat(), "to": today.isoformat(),
                                     "output_bytes": len(done.stdout)}
        log(f"gd report sla: {seconds:.2f} s")

    async def measure_worker_idle(self, seconds: float = 20.0) -> None:
        pid = self.worker.pid
        cpu0, t0 = proc_cpu_s(pid), time.perf_counter()
        await asyncio.sleep(seconds)
        idle = (proc_cpu_s(pid) - cpu0) / (time.perf_counter() - t0)
        rss = proc_rss_mib(pid)
        self.report["worker_rss_mib"] = rss.get("VmRSS")
        self.report["worker_peak_rss_mib"] = rss.get("VmHWM")
        self.report["worker_idle_cpu_pct"] = round(idle * 100, 2)
        self.report["worker_max_cached"] = self.args.max_cached or f"default ({MAX_CACHED_WORKFLOWS})"
        log(f"worker: RSS {rss}, CPU ocioso {idle * 100:.2f} % de um núcleo")

    def measure_db(self) -> None:
        def size(path: Path) -> int:
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())

        server = size(self.work / "temporal.db")
        store = size(self.work / "gd.db")
        n = max(1, self.report["open"])
        self.report["server_db_bytes"] = server
        self.report["server_db_bytes_per_request"] = round(server / n)
        self.report["store_db_bytes_per_request"] = round(store / n)
        log(f"banco do servidor: {server / 2**20:.1f} MiB, {server / n / 1024:.1f} KiB por processo aberto")
        import sqlite3

        with sqlite3.connect(self.work / "gd.db") as conn:  # the stored statuses' JSON
            count, mean, top = conn.execute(
                "SELECT count(*), avg(length(status)), max(length(status)) FROM request_status").fetchone()
        self.report["stored_status"] = {"rows": count, "mean_bytes": round(mean or 0), "max_bytes": top or 0}
        log(f"situações gravadas: {self.report['stored_status']}")

    async def measure_resume(self) -> None:
        """Worker stopped and started; until every open process answers ``status``."""
        self.worker.stop()
        ids = list(self.opened)
        began = time.perf_counter()
        self.worker = self.start_worker("resume")
        await self.worker.ready()
        started_s = time.perf_counter() - began
        pending = list(ids)
        rng = random.Random(3)
        rng.shuffle(pending)
        failed: list[str] = []
        gate = asyncio.Semaphore(self.args.lanes)

        async def one(workflow_id: str) -> None:
            async with gate:
                for attempt in range(5):
                    try:
                        await self.client.get_workflow_handle(workflow_id).query(Queries.STATUS)
                        return
                    except Exception as error:  # noqa: BLE001 - a timeout under load: again
                        if attempt == 4:
                            failed.append(f"{type(error).__name__}: {error}"[:200])

        cpu0 = proc_cpu_s(self.worker.pid)
        await asyncio.gather(*(one(w) for w in pending))
        elapsed = time.perf_counter() - began
        self.report["resume_s"] = round(elapsed, 1)
        self.report["resume"] = {"worker_ready_s": round(started_s, 1), "queries": len(ids), "failed": len(failed),
                                 "queries_per_s": round(len(ids) / max(1e-9, elapsed - started_s), 1),
                                 "worker_cpu_ms_per_query": round((proc_cpu_s(self.worker.pid) - cpu0) * 1000 / max(1, len(ids)), 1),
                                 "worker_rss_after_mib": proc_rss_mib(self.worker.pid)}
        log(f"retomada: {self.report['resume']}, {elapsed:.1f} s")

    def measure_replay(self) -> None:
        seconds, done = self.gd_command("audit", "replay", "--query", 'ExecutionStatus="Running"')
        tail = done.stdout.decode().strip().splitlines()[-1:] or [""]
        self.report["replay_s"] = round(seconds, 1)
        self.report["replay"] = {"exit": done.returncode, "summary": tail[0][-300:],
                                 "stderr": done.stderr.decode()[-300:] if done.returncode else ""}
        log(f"gd audit replay: {seconds:.1f} s: {tail[0]}")


def render(report: dict[str, Any]) -> str:
    lines = [f"bench.scale: {report.get('open')} abertos ({report.get('command', '')})",
             f"{'medida':<22}{'valor':>12}  meta"]
    for key in ("queue_p95_ms", "queue_cli_p95_ms", "status_p95_ms", "action_p95_ms", "sla_report_s",
                "worker_rss_mib", "worker_idle_cpu_pct", "resume_s", "replay_s", "server_db_bytes_per_request"):
        value = report.get(key)
        target = TARGETS.get(key)
        if target and value is not None:
            verdict = "ok" if value <= target[0] else f"NÃO ({value / target[0]:.2f}× a meta)"
            goal = f"≤ {target[0]:g} {target[1]}: {verdict}"
        else:
            goal = ""
        lines.append(f"{key:<22}{value if value is not None else '—':>12}  {goal}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=10000, help="processos abertos a semear")
    parser.add_argument("--lanes", type=int, default=32, help="processos semeados (e consultas na retomada) ao mesmo tempo")
    parser.add_argument("--samples", type=int, default=40, help="amostras de cada visão da fila (×5 GETs; ÷2 ações por analista)")
    parser.add_argument("--think", type=float, default=5.0,
                        help="pausa média (s) de cada analista entre duas ações (0,5–1,5×; 0: sem pausa, a saturação)")
    parser.add_argument("--max-cached", type=int, default=None, help=f"max_cached_workflows do worker (padrão: worker.MAX_CACHED_WORKFLOWS = {MAX_CACHED_WORKFLOWS})")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    report = asyncio.run(Scale(args).run())
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=1, default=str))
    print(render(report))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
