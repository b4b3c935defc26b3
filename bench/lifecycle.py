"""Benchmark: complete ``AccessRequest`` lifecycles per second, against the engine's floor.

    python -m bench.lifecycle --n 200 --concurrency 20            # ours vs floor
    python -m bench.lifecycle --n 200 --concurrency 20 --replay   # + histories replayed/s
    python -m bench.lifecycle --replay-from DIR                   # only replay saved histories
    python -m bench.lifecycle --phases ours --compare ../copy     # A/B: this code vs a copy

Everything runs on this machine, in a temporary directory (``--keep`` keeps it):

* the Temporal dev server (``devstack.DevStack``: the venv's ``temporal`` binary, an SQLite
  file with ``journal_mode=WAL`` and ``synchronous=NORMAL``);
* the SMTP sink of the tests (``python -m tests.smtp_sink``), in its own process;
* one worker process per phase (``python -m bench.lifecycle --serve-worker real|floor``):
  ``worker.build_worker`` with the real activities (SQLite store and blob store in the
  temporary directory, the sink) or the floor's no-op workflow; same options for both;
* this process is the outside system: a temporalio client sending plain dicts.

Phases: *setup* (an approved technician, the documents uploaded once, and two real
lifecycles driven with the system idle between steps, whose histories give the floor its
shape: see ``bench/floor.py``), then ``--phases`` in order (default ``floor,ours``;
``floor_full`` is the floor plus the timers and upserts of the real workflow), the whole
sequence ``--repeat`` times (odd rounds reversed). Each phase runs ``--warmup`` lifecycles
first, not counted. A lifecycle: start → poll ``status`` until intake answered →
``register_apr`` → (one in ``--suspension-every``: ``suspend`` → ``attach_corrections`` →
``request_reanalysis``) → ``approve`` → ``request_inspection`` → ``record_inspection`` →
wait for the workflow to close (CONNECTED: every e-mail sent, every transition stored).

Figures (medians over rounds): lifecycles/s (N / wall time of the measured part),
update latency p50/p99 (``execute_update`` round trip seen by the client), history events
per lifecycle, worker peak RSS (``VmHWM`` of the worker process), CPU milliseconds per
lifecycle of worker, server and driver, the cores other processes of the machine used
meanwhile, and with ``--replay`` histories replayed per second by ``gd audit replay``'s
code path (``audit.replay.replay``; ``temporalio.worker.Replayer`` if that is missing).
"""

from __future__ import annotations

from tests.pdf_fixture import make_pdf
import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from models.names import Queries, Updates, Workflows

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPTIONS_ENV = "GD_BENCH_WORKER_OPTIONS"
LOG_LEVEL_ENV = "GD_BENCH_WORKER_LOG_LEVEL"

ANALYST = {"id": "ana.analista", "role": "analyst"}
# Parties of every benchmark request: its RT (council key) and its customer (CPF).
TECH = {"id": "rt.joao", "role": "technician", "council_key": "CREA-MG-123456"}
CUSTOMER = {"id": "cliente.maria", "role": "customer", "document": "52998224725"}
INSPECTOR = {"id": "vistoriador.carlos", "role": "inspector"}
TECHNICIAN = {"council": "CREA", "uf": "MG", "registration": "123456"}
TECHNICIAN_INPUT = {
    "name": "João Pereira da Silva",
    "cpf": "529.982.247-25",
    "email": "joao.pereira@example.com.br",
    "phone": "(31) 98765-4321",
    **TECHNICIAN,
    "title": "Engenheiro Eletricista",
}
APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")
DOC_KINDS = ("commercial_id", *APR_KINDS, "correction", "parecer")
EMAILS_PLAIN = 5  # request_received, analysis_started, parecer_issued, inspection_requested, connected
EMAILS_SUSPENSION = 7  # + suspended, reanalysis_started
EMAILS_TECHNICIAN = 4  # technician_received + the three credentials e-mails
# Floor phases: which of the real workflow's engine work besides activities and updates
# the floor also does (bench/floor.py).
FLOOR_VARIANTS: dict[str, dict[str, bool]] = {
    "floor": {},
    "floor_full": {"timers": True, "upserts": True},
    "floor_timers": {"timers": True},
    "floor_upserts": {"upserts": True},
}


# --- small helpers -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (children not included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds spent by every process of the machine (all cores) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak resident set) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pdf(kind: str) -> bytes:
    return make_pdf(f"gd bench {kind}", 2048)


def request_payload(request_id: str, docs: dict[str, dict]) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": "request",
        "customer": {
            "name": "Maria das Graças Souza",
            "document": "529.982.247-25",
            "email": "maria.souza@example.com.br",
            "phone": "(31) 99876-5432",
        },
        "installation_number": "3001234567",
        "technician": TECHNICIAN,
        "generation": {"source": "solar", "installed_power_kw": 8.5, "voltage_kv": 0.22, "modality": "local"},
        "documents": [docs["commercial_id"]],
        "beneficiaries": None,
    }


def lifecycle_steps(suspension: bool, docs: dict[str, dict]) -> list[tuple[str, Callable[[dict], dict]]]:
    """The updates of one lifecycle, each with its arguments built from the last status."""
    steps: list[tuple[str, Callable[[dict], dict]]] = [
        (Updates.REGISTER_APR, lambda st: {
            "actor": TECH,
            "service_note": st.get("service_note") or "7000000000",
            "protocol": st.get("protocol") or "2026000000",
            "documents": [docs[k] for k in APR_KINDS],
        }),
    ]
    if suspension:
        steps += [
            (Updates.SUSPEND, lambda st: {"actor": ANALYST, "pendencies": [{"code": "DOC-ART-AUSENTE"}]}),
            (Updates.ATTACH_CORRECTIONS, lambda st: {"actor": TECH, "documents": [docs["correction"]]}),
            (Updates.REQUEST_REANALYSIS, lambda st: {
                "actor": TECH,
                "reproved_service_note": st.get("service_note") or "7000000000",
                "motive": "Reanálise do projeto/processo elétrico",
            }),
        ]
    steps += [
        (Updates.APPROVE, lambda st: {"actor": ANALYST, "parecer": docs["parecer"], "notes": "Parecer favorável."}),
        (Updates.REQUEST_INSPECTION, lambda st: {"actor": CUSTOMER}),
        (Updates.RECORD_INSPECTION, lambda st: {"actor": INSPECTOR, "result": "approved", "findings": []}),
    ]
    return steps


# --- worker options ----------------------------------------------------------------


def worker_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """JSON-able worker options (decoded in the worker process by ``decode_worker_options``)."""
    options: dict[str, Any] = {}
    for flag, key in (
        ("workflow_tasks", "max_concurrent_workflow_tasks"),
        ("activities", "max_concurrent_activities"),
        ("local_activities", "max_concurrent_local_activities"),
        ("max_cached", "max_cached_workflows"),
        ("workflow_pollers", "workflow_pollers"),
        ("activity_pollers", "activity_pollers"),
        ("sandbox", "sandbox"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            options[key] = value
    for item in args.worker_option or []:
        key, _, raw = item.partition("=")
        options[key] = json.loads(raw)
    return options


def decode_worker_options(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``temporalio.worker.Worker`` for ``options``."""
    from temporalio.worker import PollerBehaviorSimpleMaximum

    decoded = dict(options)
    if "workflow_pollers" in decoded:
        decoded["workflow_task_poller_behavior"] = PollerBehaviorSimpleMaximum(decoded.pop("workflow_pollers"))
    if "activity_pollers" in decoded:
        decoded["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(decoded.pop("activity_pollers"))
    sandbox = decoded.pop("sandbox", "default")
    if sandbox == "passthrough-all":
        from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

        decoded["workflow_runner"] = SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
        )
    elif sandbox == "none":
        from temporalio.worker import UnsandboxedWorkflowRunner

        decoded["workflow_runner"] = UnsandboxedWorkflowRunner()
    elif sandbox != "default":
        raise SystemExit(f"--sandbox: {sandbox!r} desconhecido (default, passthrough-all, none)")
    return decoded


async def serve_worker(kind: str) -> None:
    """``--serve-worker``: one worker until SIGTERM/SIGINT; says READY on stdout."""
    import logging

    import worker as gd_worker
    from bench.floor import build_floor_worker
    from models.settings import GdSettings

    level = os.environ.get(LOG_LEVEL_ENV, "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = GdSettings()
    options = decode_worker_options(json.loads(os.environ.get(OPTIONS_ENV, "{}")))
    client = await gd_worker.connect(settings)
    if kind == "real":
        running = gd_worker.build_worker(client, settings, **options)
    else:
        running = build_floor_worker(client, settings.task_queue, **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running:
        print("READY", flush=True)
        await stop.wait()


class WorkerProcess:
    """A worker subprocess of one phase (its own task queue, its log in the work dir)."""

    def __init__(
        self, kind: str, settings, options: dict[str, Any], log_path: Path, log_level: str,
        pycache: Path | None, root: Path = PROJECT_ROOT,
    ):
        from devstack import settings_env

        self.kind = kind
        env = dict(os.environ)
        if pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(pycache)
        env.update(settings_env(settings))
        env[OPTIONS_ENV] = json.dumps(options)
        env[LOG_LEVEL_ENV] = log_level
        env["PYTHONPATH"] = os.pathsep.join(
            dict.fromkeys([str(root), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.lifecycle", "--serve-worker", kind],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.log, start_new_session=True,
        )
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ready(self, timeout: float = 60.0) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        if line.strip() != b"READY":
            raise RuntimeError(
                f"o worker {self.kind} não iniciou (código {self.proc.poll()}); veja {self.log_path}"
            )

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Profiler:
    """``py-spy record`` attached to a pid for the measured part of a phase (``--py-spy DIR``).

    ``--nonblocking``: py-spy reads the process without stopping it at each sample (stopping
    it at 250 Hz raised the worker's CPU per lifecycle from ~155 to 211 ms)."""

    def __init__(self, binary: str | None, out_dir: Path | None, gil: bool = False):
        self.binary, self.out_dir, self.gil = binary, out_dir, gil
        self.proc: subprocess.Popen | None = None

    def start(self, pid: int, name: str) -> None:
        if not self.out_dir:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary or "py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
             "--threads", "--nonblocking", *(["--gil"] if self.gil else []),
             "--output", str(self.out_dir / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached before the measured part starts

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
            self.proc = None


# --- driving lifecycles ------------------------------------------------------------


@dataclass
class Lifecycle:
    workflow_id: str
    suspension: bool
    ok: bool = False
    error: str | None = None
    total_s: float = 0.0
    intake_s: float = 0.0
    updates: list[tuple[str, float]] = field(default_factory=list)


async def wait_status(handle, predicate: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    # Status polling while intake runs (the outside system needs the NS and Protocolo):
    # every query is a round trip to the worker, so back off as gd's client does.
    from gd_client import poll_pauses

    deadline = time.monotonic() + timeout
    pauses = poll_pauses()
    while True:
        st = await handle.query(Queries.STATUS)
        if predicate(st):
            return st
        if time.monotonic() > deadline:
            raise TimeoutError(f"status never satisfied the condition: {st.get('status')}")
        await asyncio.sleep(next(pauses))


async def quiet(handle) -> dict:
    """Until the workflow ran its queued effects and its history stopped growing."""
    length = -1
    while True:
        st = await handle.query(Queries.STATUS)
        now = len((await handle.fetch_history()).events)
        if st.get("status") != "RECEIVED" and not st.get("pending_effects") and now == length:
            return st
        length = now
        await asyncio.sleep(0.2)


async def drive(
    client, *, kind: str, workflow_id: str, task_queue: str, start_arg: Any, suspension: bool,
    docs: dict[str, dict], settle: bool = False, expected: str,
) -> Lifecycle:
    """One lifecycle as an outside system drives it; ``settle``: idle between steps."""
    from temporalio.common import WorkflowIDConflictPolicy

    record = Lifecycle(workflow_id=workflow_id, suspension=suspension)
    began = time.perf_counter()
    try:
        handle = await client.start_workflow(
            kind, start_arg, id=workflow_id, task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        st = await wait_status(handle, lambda s: s.get("status") != "RECEIVED")
        record.intake_s = time.perf_counter() - began
        for name, build in lifecycle_steps(suspension, docs):
            if settle:
                st = await quiet(handle)
            sent = time.perf_counter()
            # The arguments come from the last status read (intake's, or quiet()'s): an
            # update's own return value is only an acknowledgement.
            await handle.execute_update(name, build(st))
            record.updates.append((name, time.perf_counter() - sent))
        result = await handle.result()
        if result.get("status") != expected:
            raise RuntimeError(f"ended as {result.get('status')}, expected {expected}")
        record.ok = True
    except Exception as error:  # noqa: BLE001 - counted and reported, the run goes on
        record.error = f"{type(error).__name__}: {error}"[:300]
    record.total_s = time.perf_counter() - began
    return record


async def wait_port(port: int, timeout: float = 15.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (the SMTP sink)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"o SMTP de teste não abriu a porta {port}")
            await asyncio.sleep(0.05)


async def run_many(count: int, concurrency: int, one: Callable[[int], Awaitable[Lifecycle]]) -> tuple[list[Lifecycle], float]:
    indexes = iter(range(count))
    results: list[Lifecycle] = []

    async def lane() -> None:
        for i in indexes:
            results.append(await one(i))

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, count)))))
    return results, time.perf_counter() - began


# --- phases ------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    round: int
    n: int
    concurrency: int
    elapsed_s: float = 0.0
    lifecycles_per_s: float = 0.0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    update_p50_ms: float = 0.0
    update_p99_ms: float = 0.0
    update_p50_by_name_ms: dict[str, float] = field(default_factory=dict)
    intake_p50_ms: float = 0.0
    lifecycle_p50_ms: float = 0.0
    events_per_lifecycle: float = 0.0
    events_plain: float = 0.0
    events_suspension: float = 0.0
    history_kb_per_lifecycle: float = 0.0
    worker_peak_rss_mb: float = 0.0
    worker_cpu_ms_per_lifecycle: float = 0.0
    server_cpu_ms_per_lifecycle: float = 0.0
    driver_cpu_ms_per_lifecycle: float = 0.0
    # The machine is shared: cores busy with processes that are not this benchmark's
    # (worker, server, SMTP sink, this driver) while the phase ran, and the load average.
    others_busy_cores: float = 0.0
    load_average_1m: float = 0.0
    worker_options: dict[str, Any] = field(default_factory=dict)


def total_cpu_ms(phase: dict[str, Any]) -> float:
    """Worker + server + driver CPU per lifecycle: what the machine pays for one."""
    return sum(phase[k] for k in ("worker_cpu_ms_per_lifecycle", "server_cpu_ms_per_lifecycle", "driver_cpu_ms_per_lifecycle"))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of one phase as one: the median of every figure (first run's other fields)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "round":
            merged[key] = statistics.median(r[key] for r in runs)
    merged["rounds"] = len(runs)
    return merged


def summarize(phase: Phase, lifecycles: list[Lifecycle], elapsed: float) -> None:
    phase.elapsed_s = elapsed
    ok = [lc for lc in lifecycles if lc.ok]
    phase.failures = len(lifecycles) - len(ok)
    phase.errors = sorted({lc.error for lc in lifecycles if lc.error})[:5]
    phase.lifecycles_per_s = len(ok) / elapsed if elapsed else 0.0
    latencies = [s for lc in ok for _, s in lc.updates]
    phase.update_p50_ms = percentile(latencies, 50) * 1000
    phase.update_p99_ms = percentile(latencies, 99) * 1000
    names = sorted({name for lc in ok for name, _ in lc.updates})
    phase.update_p50_by_name_ms = {
        name: round(percentile([s for lc in ok for n, s in lc.updates if n == name], 50) * 1000, 1)
        for name in names
    }
    phase.intake_p50_ms = percentile([lc.intake_s for lc in ok], 50) * 1000
    phase.lifecycle_p50_ms = percentile([lc.total_s for lc in ok], 50) * 1000


async def fetch_histories(client, workflow_ids: list[str], concurrency: int = 8) -> list:
    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str):
        async with gate:
            return await client.get_workflow_handle(workflow_id).fetch_history()

    return await asyncio.gather(*(one(w) for w in workflow_ids))


def history_figures(phase: Phase, histories: list, suspension_ids: set[str]) -> None:
    counts = {h.workflow_id: len(h.events) for h in histories}
    if not counts:
        return
    phase.events_per_lifecycle = statistics.fmean(counts.values())
    plain = [c for w, c in counts.items() if w not in suspension_ids]
    susp = [c for w, c in counts.items() if w in suspension_ids]
    phase.events_plain = statistics.fmean(plain) if plain else 0.0
    phase.events_suspension = statistics.fmean(susp) if susp else 0.0
    phase.history_kb_per_lifecycle = statistics.fmean(len(h.to_json()) for h in histories) / 1024


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tag = uuid.uuid4().hex[:6]
        self.options = worker_options_from_args(args)
        self.alt_options = {
            key: json.loads(raw) for key, _, raw in (o.partition("=") for o in args.alt_worker_option or [])
        }
        self.docs: dict[str, dict] = {}
        self.pareceres: dict[str, dict] = {}  # request_id -> its own parecer
        self.plan: dict[str, Any] | None = None
        self.setup_histories: list = []
        self.histories: dict[str, list] = {}
        self.report: dict[str, Any] = {}
        self.profiler = Profiler(args.py_spy_bin, Path(args.py_spy) if args.py_spy else None, args.py_spy_gil)

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    # setup -------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        from devstack import DevStack
        from models.settings import GdSettings

        args = self.args
        work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gd-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        smtp_port = free_port()
        self.sink = sink = subprocess.Popen(
            [sys.executable, "-m", "tests.smtp_sink", "--port", str(smtp_port), "--save-dir", str(work / "mail")],
            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(work / "smtp.log").open("ab"), start_new_session=True,
        )
        self.settings = GdSettings(
            temporal_address=f"127.0.0.1:{free_port()}",
            task_queue=f"gd-bench-real-{self.tag}",
            database_url=f"sqlite:///{work / 'gd.db'}",
            blob_dir=work / "blobs",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            mail_dir=work / "devstack-mail",
        )
        try:
            await wait_port(smtp_port)
            async with DevStack(
                self.settings, ui_port=free_port(), worker=False, smtp=False, var_dir=work,
                db_file=work / "temporal.db",
            ) as stack:
                self.stack = stack
                self.client = stack.client
                self.log(f"servidor Temporal pronto em {stack.ready_s:.1f} s ({stack.target}); dir {work}")
                await self.setup()
                for round_ in range(args.repeat):
                    # ABBA: odd rounds run the phases in reverse, so a drift (the server's
                    # database grows, the machine's other load comes and goes) favours none.
                    order = args.phases if round_ % 2 == 0 else args.phases[::-1]
                    for name in order:
                        await self.phase(name, round_)
                if {"ours", "alt"} & set(args.phases):
                    self.count_emails()
        finally:
            sink.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sink.wait(5)
            if sink.poll() is None:
                sink.kill()
            if args.save_histories:
                self.save_histories(Path(args.save_histories))
        if args.replay:
            try:
                await self.replay_phase()
            except Exception as error:  # noqa: BLE001 - keep the figures of the run
                self.report["replay_error"] = f"{type(error).__name__}: {error}"[:500]
                self.log(f"replay falhou: {self.report['replay_error']}")
        self.finish()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        return self.report

    def _start_worker(
        self, kind: str, name: str, task_queue: str, root: Path = PROJECT_ROOT, options: dict[str, Any] | None = None,
    ) -> WorkerProcess:
        settings = self.settings.model_copy(update={"task_queue": task_queue})
        return WorkerProcess(
            kind, settings, self.options if options is None else options, self.work / f"worker-{name}.log",
            self.args.worker_log_level, bytecode_cache(self.args), root,
        )

    async def setup(self) -> None:
        """Technician approved, documents uploaded, floor plan from two idle-driven lifecycles."""
        import worker as gd_worker
        from activities.blobs import upload
        from bench.floor import merge_plans, plan_from_history
        from models.ids import access_request_id, technician_id

        from activities.installations import load_demo

        deps = gd_worker.build_dependencies(self.settings)
        load_demo(deps.store)  # the customer base the requests name (GD_INSTALLATIONS_CHECK)
        for kind in DOC_KINDS:
            ref = upload(deps.store, deps.blobs, pdf(kind), kind=kind, filename=f"{kind}.pdf")
            self.docs[kind] = ref.model_dump(mode="json")
        self.async_activities = {
            fn.__name__ for fn in gd_worker.all_activities(deps) if asyncio.iscoroutinefunction(fn)
        }
        deps.store.dispose()
        started = self._start_worker("real", "setup", self.settings.task_queue)
        try:
            await started.ready()
            handle = await self.client.start_workflow(
                Workflows.TECHNICIAN_REGISTRATION, TECHNICIAN_INPUT,
                id=technician_id(TECHNICIAN["council"], TECHNICIAN["uf"], TECHNICIAN["registration"]),
                task_queue=self.settings.task_queue,
            )
            await wait_status(handle, lambda s: s.get("next_actor") == "analyst")
            await handle.execute_update(Updates.APPROVE, {"actor": ANALYST})
            result = await handle.result()
            if result.get("status") != "APPROVED":
                raise RuntimeError(f"technician ended as {result.get('status')}")
            plans, ids = [], []
            shapes = [f"bench-{self.tag}-shape-{int(suspension)}" for suspension in (False, True)]
            self.upload_pareceres(shapes)
            for suspension, request_id in zip((False, True), shapes):
                record = await drive(
                    self.client, kind=Workflows.ACCESS_REQUEST, workflow_id=access_request_id(request_id),
                    task_queue=self.settings.task_queue, start_arg=request_payload(request_id, self.docs),
                    suspension=suspension, docs=self.docs_for(request_id), settle=True, expected="CONNECTED",
                )
                if not record.ok:
                    raise RuntimeError(f"lifecycle de referência falhou: {record.error}")
                ids.append(record.workflow_id)
            self.setup_histories = await fetch_histories(self.client, ids)
            for history in self.setup_histories:
                plans.append(plan_from_history(history, self.async_activities))
            self.plan = merge_plans(plans)
            self.log(f"forma do piso (de históricos reais): {json.dumps(self.plan)}")
        finally:
            started.stop()
        self.expected_emails = EMAILS_TECHNICIAN + EMAILS_PLAIN + EMAILS_SUSPENSION

    def upload_pareceres(self, request_ids: list[str]) -> None:
        """Upload one parecer per request, held by that request (an e-mail attaches only a
        document its own request holds)."""
        import worker as gd_worker
        from activities.blobs import upload
        from models.ids import access_request_id

        deps = gd_worker.build_dependencies(self.settings)
        try:
            for request_id in request_ids:
                ref = upload(
                    deps.store, deps.blobs, pdf(f"parecer {request_id}"), kind="parecer",
                    filename="parecer.pdf", for_workflow=access_request_id(request_id),
                )
                self.pareceres[request_id] = ref.model_dump(mode="json")
        finally:
            deps.store.dispose()

    def docs_for(self, request_id: str) -> dict[str, dict]:
        return {**self.docs, "parecer": self.pareceres.get(request_id, self.docs["parecer"])}

    # a phase -------------------------------------------------------------------------

    async def phase(self, name: str, round_: int = 0) -> None:
        """One measured phase: ``ours``, ``alt`` (ours, worker from ``--compare DIR``) or a floor."""
        from bench.floor import FLOOR_WORKFLOW
        from models.ids import access_request_id

        args = self.args
        floor = name in FLOOR_VARIANTS
        task_queue = f"gd-bench-{name}-{round_}-{self.tag}"
        kind = "floor" if floor else "real"
        plan = dict(self.plan or {}, **FLOOR_VARIANTS.get(name, {}))

        def one(prefix: str):
            async def run(i: int) -> Lifecycle:
                suspension = args.suspension_every > 0 and i % args.suspension_every == args.suspension_every - 1
                if floor:
                    workflow_id = f"bench-floor-{self.tag}-{name}-{round_}-{prefix}-{i:05d}"
                    return await drive(
                        self.client, kind=FLOOR_WORKFLOW, workflow_id=workflow_id, task_queue=task_queue,
                        start_arg=plan, suspension=suspension, docs=self.docs, expected="DONE",
                    )
                request_id = real_id(prefix, i)
                return await drive(
                    self.client, kind=Workflows.ACCESS_REQUEST, workflow_id=access_request_id(request_id),
                    task_queue=task_queue, start_arg=request_payload(request_id, self.docs),
                    suspension=suspension, docs=self.docs_for(request_id), expected="CONNECTED",
                )
            return run

        def real_id(prefix: str, i: int) -> str:
            return f"bench-{self.tag}-{name}-{round_}-{prefix}-{i:05d}"

        if not floor:
            # Each request's parecer is its own file, uploaded for it before the clock starts.
            self.upload_pareceres(
                [real_id("warm", i) for i in range(args.warmup)] + [real_id("run", i) for i in range(args.n)]
            )

        root = Path(args.compare) if name == "alt" else PROJECT_ROOT
        options = {**self.options, **self.alt_options} if name == "alt" else self.options
        running = self._start_worker(kind, f"{name}-{round_}", task_queue, root, options)
        try:
            await running.ready()
            warm: list[Lifecycle] = []
            if args.warmup:
                warm, _ = await run_many(args.warmup, args.concurrency, one("warm"))
            self.profiler.start(running.pid, f"{name}-{round_}")
            worker_cpu, server_cpu = proc_cpu_s(running.pid), proc_cpu_s(self.stack.server_proc.pid)
            driver_cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            sink_cpu, busy = proc_cpu_s(self.sink.pid), machine_busy_s()
            lifecycles, elapsed = await run_many(args.n, args.concurrency, one("run"))
            worker_cpu = proc_cpu_s(running.pid) - worker_cpu
            server_cpu = proc_cpu_s(self.stack.server_proc.pid) - server_cpu
            driver_cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - driver_cpu
            ours_cpu = worker_cpu + server_cpu + driver_cpu + proc_cpu_s(self.sink.pid) - sink_cpu
            others = max(0.0, machine_busy_s() - busy - ours_cpu) / elapsed
            load = os.getloadavg()[0]
            self.profiler.stop()
            peak = proc_peak_rss_mb(running.pid)
        finally:
            self.profiler.stop()
            running.stop()
        result = Phase(name=name, round=round_, n=args.n, concurrency=args.concurrency, worker_options=options)
        summarize(result, lifecycles, elapsed)
        done = max(1, args.n - result.failures)
        result.worker_peak_rss_mb = peak
        result.worker_cpu_ms_per_lifecycle = worker_cpu * 1000 / done
        result.server_cpu_ms_per_lifecycle = server_cpu * 1000 / done
        result.driver_cpu_ms_per_lifecycle = driver_cpu * 1000 / done
        result.others_busy_cores = others
        result.load_average_1m = load
        histories = await fetch_histories(self.client, [lc.workflow_id for lc in lifecycles if lc.ok])
        history_figures(result, histories, {lc.workflow_id for lc in lifecycles if lc.suspension})
        self.histories.setdefault(name, []).extend(histories)
        if not floor:
            self.expected_emails += sum(
                EMAILS_SUSPENSION if lc.suspension else EMAILS_PLAIN for lc in warm + lifecycles if lc.ok
            )
        self.report.setdefault("runs", []).append(asdict(result))
        self.log(
            f"{name}#{round_}: {result.lifecycles_per_s:.2f} ciclos/s, atualização p50 {result.update_p50_ms:.0f} ms "
            f"p99 {result.update_p99_ms:.0f} ms, {result.events_per_lifecycle:.1f} eventos/ciclo, "
            f"worker {result.worker_peak_rss_mb:.0f} MiB, CPU/ciclo worker {result.worker_cpu_ms_per_lifecycle:.0f} ms "
            f"servidor {result.server_cpu_ms_per_lifecycle:.0f} ms, outros processos {others:.2f} núcleos, "
            f"falhas {result.failures}"
        )

    def count_emails(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            sent = len(list((self.work / "mail").glob("*.eml")))
            if sent >= self.expected_emails or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.report["emails"] = {"received_by_sink": sent, "expected": self.expected_emails}

    def save_histories(self, target: Path) -> None:
        for name, histories in self.histories.items():
            folder = target / name
            folder.mkdir(parents=True, exist_ok=True)
            for history in histories:
                (folder / f"{history.workflow_id}.json").write_text(history.to_json())
        self.log(f"históricos salvos em {target}")

    async def replay_phase(self) -> None:
        ours = self.histories.get("ours", [])
        if ours:
            self.report["replay"] = await replay_histories(
                ours, profiler=self.profiler, sandbox=self.args.sandbox, jobs=self.args.replay_jobs
            )
        floor = self.histories.get("floor", [])
        if floor:
            self.report["replay_floor"] = await replay_histories(
                floor, floor=True, profiler=self.profiler, sandbox=self.args.sandbox
            )

    def finish(self) -> None:
        runs = self.report.get("runs", [])
        phases = self.report["phases"] = {
            name: median_run([r for r in runs if r["name"] == name])
            for name in dict.fromkeys(r["name"] for r in runs)
        }
        for key, top, bottom in (("ratio", "ours", "floor"), ("ratio_full", "ours", "floor_full"),
                                 ("ratio_alt", "alt", "ours")):
            if top in phases and phases.get(bottom, {}).get("lifecycles_per_s"):
                self.report[key] = phases[top]["lifecycles_per_s"] / phases[bottom]["lifecycles_per_s"]
                paired = [
                    a["lifecycles_per_s"] / b["lifecycles_per_s"]
                    for a in runs for b in runs
                    if a["name"] == top and b["name"] == bottom and a["round"] == b["round"] and b["lifecycles_per_s"]
                ]
                self.report[f"{key}_by_round"] = [round(v, 3) for v in paired]
        if "ours" in phases and "floor" in phases:
            # On a machine whose cores are all busy (2 here, shared with the server), the
            # throughput ratio tends to the CPU ratio; it does not depend on other load.
            self.report["ratio_cpu"] = total_cpu_ms(phases["floor"]) / total_cpu_ms(phases["ours"])
        self.report["floor_plan"] = self.plan
        if self.plan:
            from bench.floor import plan_counts

            plain = [name for name, _ in lifecycle_steps(False, self.docs)]
            susp = [name for name, _ in lifecycle_steps(True, self.docs)]
            self.report["per_lifecycle"] = {"plain": plan_counts(self.plan, plain), "suspension": plan_counts(self.plan, susp)}
        self.report["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
        self.report["config"] = {
            "n": self.args.n, "concurrency": self.args.concurrency, "warmup": self.args.warmup,
            "suspension_every": self.args.suspension_every, "worker_options": self.options,
            "bytecode_cache": bytecode_cache(self.args) is not None, "repeat": self.args.repeat,
            "phases": self.args.phases, "compare": self.args.compare,
        }


# --- replay ------------------------------------------------------------------------


async def replay_histories(
    histories: list, *, floor: bool = False, profiler: Profiler | None = None, sandbox: str | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Replay every history once, by ``gd audit replay``'s code path (``audit.replay.replay``
    with ``audit.replay.build_replayer``) when it exists, else ``temporalio``'s ``Replayer``
    with ``worker.all_workflows()`` and ``worker.data_converter()``. Reading the files is not
    timed: the histories are already parsed."""
    workflows = None
    if floor:
        from bench.floor import FloorWorkflow

        workflows = [FloorWorkflow]
    try:
        from audit.export import Export, Run
        from audit.replay import build_replayer, replay
    except ImportError:
        build_replayer = None
    runner = {k: v for k, v in decode_worker_options({"sandbox": sandbox or "default"}).items() if k == "workflow_runner"}
    if profiler:
        profiler.start(os.getpid(), "replay-floor" if floor else "replay")
    started = time.perf_counter()
    cpu = time.process_time()
    try:
        if build_replayer is not None:
            exports = [Export(workflow_id=h.workflow_id, runs=[Run(run_id=h.run_id, history=h)]) for h in histories]
            if jobs > 1 and not floor and (sandbox or "default") in ("default", "none"):
                from audit.replay import replay_processes

                outcomes = await replay_processes(exports, jobs=jobs, sandbox=sandbox != "none")
                path = f"audit.replay.replay_processes, {jobs} processes"
            else:
                outcomes = await replay(exports, build_replayer(workflows, **runner))
                path = "audit.replay.replay"
            failures = sum(1 for o in outcomes if not o.ok)
        else:
            import worker as gd_worker
            from temporalio.worker import Replayer

            results = await Replayer(
                workflows=workflows or gd_worker.all_workflows(), data_converter=gd_worker.data_converter(), **runner
            ).replay_workflows(_aiter(histories), raise_on_replay_failure=False)
            failures = len(results.replay_failures)
            path = "temporalio.worker.Replayer"
    finally:
        if profiler:
            profiler.stop()
    elapsed = time.perf_counter() - started
    return {
        "histories": len(histories),
        "failures": failures,
        "elapsed_s": elapsed,
        "cpu_s": time.process_time() - cpu,
        "histories_per_s": len(histories) / elapsed if elapsed else 0.0,
        "code_path": path + (f" (sandbox={sandbox})" if sandbox and sandbox != "default" else ""),
        "events_per_history": statistics.fmean(len(h.events) for h in histories) if histories else 0.0,
    }


async def _aiter(items: list):
    for item in items:
        yield item


def load_histories(folder: Path) -> list:
    from temporalio.client import WorkflowHistory

    return [WorkflowHistory.from_json(p.stem, p.read_text()) for p in sorted(folder.rglob("*.json"))]


# --- report ------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    phases = report.get("phases", {})
    names = [n for n in ("ours", "alt", *FLOOR_VARIANTS) if n in phases]
    rows = [
        ("lifecycles/s", "lifecycles_per_s", "{:.2f}"),
        ("update p50 (ms)", "update_p50_ms", "{:.0f}"),
        ("update p99 (ms)", "update_p99_ms", "{:.0f}"),
        ("intake p50 (ms)", "intake_p50_ms", "{:.0f}"),
        ("lifecycle p50 (ms)", "lifecycle_p50_ms", "{:.0f}"),
        ("history events/lifecycle", "events_per_lifecycle", "{:.1f}"),
        ("  plain / suspension", None, None),
        ("history KiB/lifecycle", "history_kb_per_lifecycle", "{:.1f}"),
        ("worker peak RSS (MiB)", "worker_peak_rss_mb", "{:.0f}"),
        ("worker CPU ms/lifecycle", "worker_cpu_ms_per_lifecycle", "{:.0f}"),
        ("server CPU ms/lifecycle", "server_cpu_ms_per_lifecycle", "{:.0f}"),
        ("driver CPU ms/lifecycle", "driver_cpu_ms_per_lifecycle", "{:.0f}"),
        ("  total CPU ms/lifecycle", "total", "{:.0f}"),
        ("other processes (cores)", "others_busy_cores", "{:.2f}"),
        ("load average 1 min", "load_average_1m", "{:.1f}"),
        ("failed lifecycles", "failures", "{:g}"),
    ]
    cfg = report.get("config", {})
    out: list[str] = []
    if names:
        out += [
        f"GD lifecycle benchmark: n={cfg.get('n')} concurrency={cfg.get('concurrency')} repeat={cfg.get('repeat')} "
        f"warmup={cfg.get('warmup')} suspension 1/{cfg.get('suspension_every')} "
        f"bytecode_cache={cfg.get('bytecode_cache')} "
        f"cpus={report.get('machine', {}).get('cpus')} worker_options={json.dumps(cfg.get('worker_options', {}))}",
        f"{'':28}" + "".join(f"{n:>14}" for n in names),
        ]
    for label, key, fmt in rows if names else []:
        if key is None:
            cells = [f"{phases[n]['events_plain']:.0f} / {phases[n]['events_suspension']:.0f}" for n in names]
        elif key == "total":
            cells = [fmt.format(total_cpu_ms(phases[n])) for n in names]
        else:
            cells = [fmt.format(phases[n][key]) for n in names]
        out.append(f"{label:28}" + "".join(f"{c:>14}" for c in cells))
    for key, label, note in (("ratio", "ratio ours/floor", "  (target >= 0.85)"),
                             ("ratio_cpu", "ratio by CPU floor/ours", "  (what the ratio is when CPU-bound)"),
                             ("ratio_full", "ratio ours/floor_full", ""), ("ratio_alt", "ratio alt/ours", "")):
        if key in report:
            rounds = report.get(f"{key}_by_round", [])
            by_round = f"  by round: {', '.join(f'{v:.3f}' for v in rounds)}" if len(rounds) > 1 else ""
            out.append(f"{label:28}{report[key]:>14.3f}{note}{by_round}")
    for key, label in (("replay", "replay (ours)"), ("replay_floor", "replay (floor)")):
        if key in report:
            r = report[key]
            out.append(
                f"{label + ' histories/s':28}{r['histories_per_s']:>14.1f}   ({r['histories']} histories, "
                f"{r['failures']} failures, {r['code_path']})"
            )
    if "emails" in report:
        e = report["emails"]
        out.append(f"{'e-mails received by sink':28}{e['received_by_sink']:>14d}   (expected {e['expected']})")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="lifecycles measured per phase (default 200)")
    p.add_argument("--concurrency", type=int, default=20, help="lifecycles in flight (default 20)")
    p.add_argument("--warmup", type=int, default=10, help="lifecycles run first in each phase, not counted")
    p.add_argument("--suspension-every", type=int, default=5, help="one lifecycle in K suspends and reanalyses")
    p.add_argument("--replay", action="store_true", help="also replay the run's histories (histories/s)")
    p.add_argument("--replay-from", metavar="DIR", help="only replay the *.json histories under DIR "
                   "(--sandbox applies to the replayer)")
    p.add_argument("--replay-jobs", type=int, default=1, metavar="N",
                   help="replay ours in N processes (gd audit replay --jobs N; default 1)")
    p.add_argument("--replay-shard", metavar="I/K", help="with --replay-from: only every K-th history from the I-th")
    p.add_argument(
        "--phases", default="floor,ours", type=lambda v: [x for x in v.split(",") if x],
        help="phases in order, from ours, floor, floor_full (the floor + the timers and upserts of "
        "the real workflow), floor_timers, floor_upserts (default floor,ours)",
    )
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--render", metavar="PATH", help="print the table of a report written by --json")
    p.add_argument("--save-histories", metavar="DIR", help="write the histories (JSON) under DIR/<phase>/")
    p.add_argument("--workdir", metavar="DIR", help="use DIR instead of a temporary directory (kept)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--bytecode-cache", metavar="DIR", help="compiled-module cache (default: TMPDIR/gd-bench-pycache)")
    p.add_argument("--no-bytecode-cache", action="store_true", help="compile as the environment says")
    p.add_argument("--py-spy", metavar="DIR", help="profile each measured phase with py-spy (raw stacks)")
    p.add_argument("--py-spy-gil", action="store_true",
                   help="only the thread holding the GIL (py-spy --gil): the Python code's own CPU")
    p.add_argument("--py-spy-bin", default=os.environ.get("PY_SPY"), help="py-spy binary (default: PATH)")
    p.add_argument("--repeat", type=int, default=1, help="run the phase sequence K times (figures: medians)")
    p.add_argument("--compare", metavar="DIR", help="phase 'alt': ours with the worker run from DIR (a copy "
                   "of the project with a change; '.' for this one), for A/B runs on the same server")
    p.add_argument("--alt-worker-option", action="append", metavar="KEY=JSON",
                   help="worker option for the 'alt' phase only (e.g. workflow_pollers=10)")
    w = p.add_argument_group("worker options (same for every phase; passed to worker.build_worker)")
    w.add_argument("--workflow-tasks", type=int, help="max_concurrent_workflow_tasks")
    w.add_argument("--activities", type=int, help="max_concurrent_activities")
    w.add_argument("--local-activities", type=int, help="max_concurrent_local_activities")
    w.add_argument("--max-cached", type=int, help="max_cached_workflows")
    w.add_argument("--workflow-pollers", type=int, help="workflow_task_poller_behavior maximum")
    w.add_argument("--activity-pollers", type=int, help="activity_task_poller_behavior maximum")
    w.add_argument("--sandbox", choices=("default", "passthrough-all", "none"), help="workflow runner")
    w.add_argument("--worker-option", action="append", metavar="KEY=JSON", help="any other Worker option")
    w.add_argument("--worker-log-level", default="INFO", help="worker logging level (gd worker: INFO)")
    p.add_argument("--serve-worker", choices=("real", "floor"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.phases) - {"ours", "alt", *FLOOR_VARIANTS}
    if unknown:
        p.error(f"--phases: desconhecida(s): {', '.join(sorted(unknown))}")
    if "alt" in args.phases and not args.compare:
        p.error("--phases alt exige --compare DIR")
    if args.compare and "alt" not in args.phases:
        args.phases.append("alt")
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0 or args.repeat < 1:
        p.error("--n e --concurrency devem ser >= 1 e --warmup >= 0")
    return args


def bytecode_cache(args: argparse.Namespace) -> Path | None:
    """Where compiled modules go (None: as the environment says).

    The sandbox imports each workflow module again for every workflow run (and every
    replayed history); without a ``.pyc`` it compiles the source each time. This machine
    sets ``PYTHONDONTWRITEBYTECODE=1``, so by default the bench gives its worker and
    replayer a bytecode cache, as an installed package has (``--no-bytecode-cache``: not).
    """
    if args.no_bytecode_cache:
        return None
    return Path(args.bytecode_cache or Path(tempfile.gettempdir()) / "gd-bench-pycache")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = bytecode_cache(args)
    if cache is not None and not args.serve_worker:
        sys.pycache_prefix = str(cache)  # the replayer in this process
        sys.dont_write_bytecode = False
    if args.serve_worker:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_worker(args.serve_worker))
        return 0
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    if args.replay_from:
        histories = load_histories(Path(args.replay_from))
        if args.replay_shard:
            index, count = (int(v) for v in args.replay_shard.split("/"))
            histories = histories[index::count]
        floor = bool(histories) and histories[0].events[0].workflow_execution_started_event_attributes.workflow_type.name == "BenchFloor"
        report = {"replay": asyncio.run(
            replay_histories(histories, floor=floor, sandbox=args.sandbox, jobs=args.replay_jobs)
        )}
    else:
        report = asyncio.run(Bench(args).run())
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    failed = sum(r["failures"] for r in report.get("runs", [])) + report.get("replay", {}).get("failures", 0)
    return 1 if failed or "replay_error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
