"""Real parts for the reliability tests: a dev server on a SQLite file, ``python -m worker``
as a separate process, the SMTP sink, the store, and a driver that pushes AccessRequest
lifecycles through while those parts are broken.

``ChaosStack`` owns every process it starts and stops them by their own handles (never by
name). The worker's output (stdout and stderr, every restart) is appended to
``<tmp>/worker.log`` for the personal-data scan.

The driver is what a careful client does: every update carries a stable update id
(``<step>-<workflow id>``), so resending it after a timeout, a dead worker or a server
restart can never apply it twice; queries and starts are retried on RPC errors.
"""

from __future__ import annotations

from models.acks import UpdateAck

from tests.pdf_fixture import make_pdf
import asyncio
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Awaitable, Callable

from rich.console import Console
from sqlmodel import select
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities.blobs import open_blobs, upload
from activities.store import Store
from activities.tables import EventRecord, IssuedNumber, NumberSequence, Outbox, RequestRecord
from devstack import DevStack, settings_env
from models.access import AccessStatus
from models.ids import access_request_id, technician_id
from models.settings import GdSettings
from models.technician import TechnicianStatus
from tests.access_helpers import APR_KINDS, request_input
from tests.smtp_sink import SmtpSink, free_port
from tests.store_fixtures import make_cpf
from worker import data_converter

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ANALYST = {"id": "ana.analista", "role": "analyst"}
TECH = {"id": "rt.joao", "role": "technician", "council_key": "CREA-MG-123456"}
TECH_ACTOR = TECH
CUSTOMER = {"id": "cliente.maria", "role": "customer", "document": "52998224725"}
CUSTOMER_ACTOR = CUSTOMER
INSPECTOR = {"id": "vistoriador.carlos", "role": "inspector"}
REANALYSIS_MOTIVE = "Reanálise do projeto/processo elétrico"
RPC_TIMEOUT = timedelta(seconds=10)
STEP_TIMEOUT_S = 240.0  # one step may wait out a killed activity's start-to-close (60 s) twice

# Personal data patterns: formatted or bare CPF/CNPJ, e-mail addresses. A digit run inside
# a longer alphanumeric token (a UUID's hex, a hash) is not taken for a CPF.
CPF_RE = re.compile(rb"(?<![0-9A-Za-z])\d{3}\.?\d{3}\.?\d{3}-?\d{2}(?![0-9A-Za-z])")
CNPJ_RE = re.compile(rb"(?<![0-9A-Za-z])\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}(?![0-9A-Za-z])")
# An address as people write them: a local part of 2+ characters, labels, and a top-level
# domain of 2+ letters. The history's ciphertext is random bytes, where a looser pattern
# ("j@YO.M") turns up now and then and failed CI once; the exact values a run used are
# looked for verbatim as well (PersonalData), so no real address slips through.
EMAIL_RE = re.compile(
    rb"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{2,}@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])")


# --- personal data ---------------------------------------------------------------------


def format_cpf(cpf: str) -> str:
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"


@dataclass
class PersonalData:
    """The exact values a run put into its inputs, to look for them verbatim."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str | None) -> None:
        for value in values:
            if value:
                self.values.add(value)
                self.values.add(value.lower())
                digits = re.sub(r"\D", "", value)
                if len(digits) in (11, 14):
                    self.values.add(digits)

    def found_in(self, blob: bytes) -> list[str]:
        text = blob.decode("utf-8", "replace").lower()
        return sorted(v for v in self.values if v.lower() in text)


def pattern_hits(blob: bytes, *, allowed_emails: set[str] = frozenset()) -> dict[str, list[str]]:
    """CPF/CNPJ/e-mail looking strings in ``blob``. Not personal data: the addresses in
    ``allowed_emails`` (the distributor's own, from the settings) and Message-IDs
    (``<hash@gd.cemig.local>``, which look like addresses)."""
    from activities.mail import MESSAGE_ID_DOMAIN

    hits: dict[str, list[str]] = {}
    emails = [
        text
        for text in (m.decode("utf-8", "replace") for m in EMAIL_RE.findall(blob))
        if text.lower() not in allowed_emails and not text.lower().endswith("@" + MESSAGE_ID_DOMAIN)
    ]
    if emails:
        hits["email"] = sorted(set(emails))[:10]
    cpfs = [m.decode() for m in CPF_RE.findall(blob)]
    if cpfs:
        hits["cpf"] = sorted(set(cpfs))[:10]
    cnpjs = [m.decode() for m in CNPJ_RE.findall(blob)]
    if cnpjs:
        hits["cnpj"] = sorted(set(cnpjs))[:10]
    return hits


def distributor_addresses(settings: GdSettings) -> set[str]:
    return {
        a.lower()
        for a in (
            settings.sender_agv, settings.sender_apr, settings.sender_partweb,
            settings.supervisor_email, settings.analysts_email,
        )
    }


def header(message: EmailMessage, name: str) -> str:
    """A header value unfolded (a long key is folded onto continuation lines)."""
    return "".join(str(message.get(name, "")).split())


# --- the SMTP sink, with arrival times ---------------------------------------------------


class TimedSink(SmtpSink):
    """The test sink, also noting when each message arrived (to place it against kills)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def _receive(self, raw: bytes, envelope: Any) -> None:
        with self._cond:
            self.arrivals.append(time.monotonic())
        super()._receive(raw, envelope)

    def restart(self) -> None:
        """Listen again on the same port (after ``stop``)."""
        self.start(self.host, self.port)

    def by_key(self) -> dict[str, list[tuple[int, EmailMessage]]]:
        with self._cond:
            grouped: dict[str, list[tuple[int, EmailMessage]]] = defaultdict(list)
            for i, message in enumerate(self.messages):
                grouped[header(message, "X-GD-Key")].append((i, message))
            return dict(grouped)


# A fork server for fast restarts: an interpreter that imported the worker's code once and
# forks a fresh worker process (its own session, pid and memory) for every "fork" line
# on stdin, answering with the child's pid. The child runs exactly what `python -m worker`
# runs (worker.main()); only the import time is saved. Children are reaped by the kernel
# (SIGCHLD ignored), so a killed pid disappears at once.
FORK_SERVER = """
import os, signal, sys
import worker, workflows.registry, activities.records, activities.mail, activities.deadlines
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for line in sys.stdin:
    if line.strip() != "fork":
        continue
    pid = os.fork()
    if pid == 0:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(2, 1)
        code = 0
        try:
            worker.main()
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    sys.stdout.write(f"{pid}\\n")
    sys.stdout.flush()
"""


# --- the stack -----------------------------------------------------------------------------


class ChaosStack:
    """Dev server (SQLite file, WAL) + SMTP sink + store + ``python -m worker`` subprocess."""

    def __init__(
        self,
        tmp: Path,
        *,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        fast_restarts: bool = False,
    ) -> None:
        self.tmp = Path(tmp)
        self.sink = TimedSink()
        self.sink.port = free_port()  # listening from __aenter__ on
        self.port = free_port()
        self.settings = GdSettings(
            temporal_address=f"127.0.0.1:{self.port}",
            task_queue=f"gd-chaos-{uuid.uuid4().hex[:8]}",
            database_url=database_url or f"sqlite:///{self.tmp / 'gd.db'}",
            blob_dir=self.tmp / "blobs",
            mail_dir=self.tmp / "mail",
            smtp_host="127.0.0.1",
            smtp_port=self.sink.port,
        )
        self.extra_env = dict(extra_env or {})
        self.server = DevStack(
            self.settings,
            ui_port=free_port(),
            worker=False,
            smtp=False,
            var_dir=self.tmp / "var",
            db_file=self.tmp / "var" / "temporal.db",
            console=Console(stderr=True, quiet=True),
        )
        self.store = Store(self.settings.database_url)
        # Where the worker process finds documents: the database on PostgreSQL, a
        # directory on SQLite (activities.blobs.open_blobs, as every process does).
        self.blobs = open_blobs(self.settings, self.store)
        self.worker_log = self.tmp / "worker.log"
        # fast_restarts: new worker processes are forked from FORK_SERVER (no import time);
        # otherwise each is a cold `python -m worker`.
        self.fast_restarts = fast_restarts
        self._fork_server: asyncio.subprocess.Process | None = None
        self._worker_pid: int | None = None
        self._worker_cold: asyncio.subprocess.Process | None = None
        self.worker_starts = 0
        self.kills: list[float] = []  # time.monotonic() of each SIGKILL
        self.server_restarts = 0
        self._client: Client | None = None
        self._log_seen, self._log_tail, self._polling = 0, b"", 0

    @property
    def client(self) -> Client:
        """One client for the whole test: it reconnects by itself after a server restart
        (calls made while the server is down fail and are retried by the driver)."""
        assert self._client is not None, "stack not started"
        return self._client

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    async def __aenter__(self) -> "ChaosStack":
        try:
            self.sink.restart()
            self.store.create_schema()
            from activities.installations import load_demo

            load_demo(self.store)  # the customer base the requests name (GD_INSTALLATIONS_CHECK)
            await self.server.start()
            self._client = await Client.connect(
                self.server.target, namespace=self.settings.namespace,
                data_converter=data_converter())
            await self.start_worker()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.stop_worker()
        await self.server.stop()
        self.sink.stop()
        self.store.dispose()

    # --- server -----------------------------------------------------------------------

    async def restart_server(self, *, hard: bool = False, down_s: float = 1.0,
                             while_down: Callable[[], Awaitable[None]] | None = None) -> float:
        """Stop the dev server (SIGKILL if ``hard``, else SIGTERM), run ``while_down``, wait
        ``down_s``, start it again on the same port and SQLite file; returns the seconds
        it was unreachable."""
        t0 = time.monotonic()
        proc = self.server.server_proc
        if hard and proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await self.server.stop()
        if while_down is not None:
            await while_down()
        await asyncio.sleep(down_s)
        await self.server.start()
        self.server_restarts += 1
        return time.monotonic() - t0

    # --- worker -------------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        env.update(self.extra_env)
        if "GD_ENV" not in self.extra_env:  # a test stack: no TLS relay, no codec keys needed
            env["GD_ENV"] = "dev"
        env["PYTHONPATH"] = os.pathsep.join(
            dict.fromkeys([str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
        )
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _polling_lines(self) -> int:
        """How many times a worker announced it is polling (read incrementally)."""
        try:
            with self.worker_log.open("rb") as log:
                log.seek(self._log_seen)
                chunk = self._log_tail + log.read()
        except FileNotFoundError:
            return 0
        marker = b"worker polling task queue"
        self._log_seen += len(chunk) - len(self._log_tail)
        self._polling += chunk.count(marker)
        self._log_tail = chunk[-(len(marker) - 1):]  # a marker cut in two is counted once
        return self._polling

    async def _spawn(self, *argv: str, stdin: int, stdout: int | None = None) -> asyncio.subprocess.Process:
        with self.worker_log.open("ab") as log:
            return await asyncio.create_subprocess_exec(
                sys.executable, *argv,
                cwd=str(self.tmp),
                stdin=stdin,
                stdout=log if stdout is None else stdout,
                stderr=log,
                env=self.worker_env(),
                start_new_session=True,
            )

    def worker_alive(self) -> bool:
        if self._worker_pid is None:
            return False
        if self._worker_cold is not None:
            return self._worker_cold.returncode is None
        try:
            os.kill(self._worker_pid, 0)
        except ProcessLookupError:
            return False
        return True

    async def start_worker(self, *, wait: bool = True) -> None:
        """A new worker process: ``python -m worker``, or a fork of the fork server."""
        assert not self.worker_alive(), "a worker is already running"
        seen = self._polling_lines()
        if self.fast_restarts:
            if self._fork_server is None or self._fork_server.returncode is not None:
                self._fork_server = await self._spawn(
                    "-c", FORK_SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            server = self._fork_server
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(b"fork\n")
            await server.stdin.drain()
            line = await asyncio.wait_for(server.stdout.readline(), 60.0)
            if not line.strip().isdigit():
                raise AssertionError(f"fork server failed:\n{self.worker_tail()}")
            self._worker_pid, self._worker_cold = int(line), None
        else:
            proc = await self._spawn("-m", "worker", stdin=asyncio.subprocess.DEVNULL)
            self._worker_pid, self._worker_cold = proc.pid, proc
        self.worker_starts += 1
        if wait:
            await self.wait_worker_polling(seen)

    async def wait_worker_polling(self, seen: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self._polling_lines() <= seen:
            if not self.worker_alive():
                raise AssertionError(f"the worker exited at start:\n{self.worker_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not start polling in {timeout}s:\n{self.worker_tail()}")
            await asyncio.sleep(0.02)

    def worker_tail(self, lines: int = 30) -> str:
        try:
            text = self.worker_log.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def _gone(self, timeout: float) -> bool:
        if self._worker_cold is not None:
            try:
                await asyncio.wait_for(self._worker_cold.wait(), timeout)
            except asyncio.TimeoutError:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.worker_alive():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def kill_worker(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight tasks are simply lost."""
        assert self._worker_pid is not None and self.worker_alive(), "worker not running"
        os.kill(self._worker_pid, signal.SIGKILL)
        self.kills.append(time.monotonic())
        assert await self._gone(10.0), "a SIGKILLed worker is still there"

    async def stop_worker(self) -> None:
        if self._worker_pid is not None and self.worker_alive():
            os.kill(self._worker_pid, signal.SIGINT)
            if not await self._gone(10.0):
                os.kill(self._worker_pid, signal.SIGKILL)
                await self._gone(10.0)
        server, self._fork_server = self._fork_server, None
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()

    # --- documents ----------------------------------------------------------------------

    def upload_pdf(self, kind: str, salt: str = "", for_workflow: str | None = None) -> dict[str, Any]:
        """Upload as a client would: the documents live in the store (PostgreSQL), so a
        connection the outage tests kill mid-upload fails it, and the client sends it again
        (an upload is idempotent: content by SHA-256, one link per request and file)."""
        from sqlalchemy.exc import OperationalError

        content = make_pdf(f"{kind} {salt}")
        for attempt in range(1, 6):
            try:
                ref = upload(self.store, self.blobs, content, kind=kind, filename=f"{kind}.pdf",
                             for_workflow=for_workflow)
                return ref.model_dump(mode="json")
            except OperationalError:
                if attempt == 5:
                    raise
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    # --- store reads ----------------------------------------------------------------------

    def outbox(self) -> dict[str, Outbox]:
        with self.store.session(write=False) as s:
            return {row.key: row for row in s.exec(select(Outbox)).all()}

    def issued_numbers(self) -> list[IssuedNumber]:
        with self.store.session(write=False) as s:
            return list(s.exec(select(IssuedNumber)).all())

    def sequence(self, name: str) -> int:
        with self.store.session(write=False) as s:
            row = s.get(NumberSequence, name)
            return row.value if row else 0

    def request_record(self, workflow_id: str) -> RequestRecord | None:
        return self.store.request_row(workflow_id)

    def events(self, workflow_id: str) -> list[EventRecord]:
        return self.store.events(workflow_id)


# --- resilient client calls ------------------------------------------------------------------


RETRYABLE = (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError, asyncio.TimeoutError, ConnectionError)


@dataclass
class Retries:
    """How often the driver had to resend something (a figure of the report)."""

    updates: int = 0
    queries: int = 0
    starts: int = 0


async def _retry(what: str, call: Callable[[], Awaitable[Any]], counter: Callable[[], None],
                 timeout: float = STEP_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return await call()
        except RETRYABLE as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError() from error  # the SDK wraps cancellation
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {timeout:.0f}s: {error!r}") from error
            counter()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class Driver:
    """Starts workflows and sends updates the way a careful client (the CLI) would."""

    def __init__(self, stack: ChaosStack, step_timeout: float = STEP_TIMEOUT_S) -> None:
        self.stack = stack
        self.retries = Retries()
        self.inflight_updates = 0  # updates sent and not answered yet
        self.step_timeout = step_timeout  # how long one call may keep failing

    @property
    def client(self) -> Client:
        return self.stack.client

    def _bump(self, name: str) -> Callable[[], None]:
        def bump() -> None:
            setattr(self.retries, name, getattr(self.retries, name) + 1)

        return bump

    async def start(self, workflow: str, raw: dict, workflow_id: str, result_type: type) -> WorkflowHandle:
        async def call() -> WorkflowHandle:
            return await self.client.start_workflow(
                workflow, raw, id=workflow_id, task_queue=self.stack.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                result_type=result_type, rpc_timeout=RPC_TIMEOUT,
            )

        return await _retry(f"start {workflow_id}", call, self._bump("starts"), self.step_timeout)

    def handle(self, workflow_id: str, result_type: type) -> WorkflowHandle:
        # A fresh handle each time: the server (and its client) may have been restarted.
        return self.client.get_workflow_handle(workflow_id, result_type=result_type)

    async def query(self, workflow_id: str, result_type: type) -> Any:
        async def call() -> Any:
            handle = self.handle(workflow_id, result_type)
            return await handle.query("status", result_type=result_type, rpc_timeout=RPC_TIMEOUT)

        return await _retry(f"query {workflow_id}", call, self._bump("queries"), self.step_timeout)

    async def wait_status(self, workflow_id: str, result_type: type,
                          predicate: Callable[[Any], bool], timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.step_timeout)
        while True:
            current = await self.query(workflow_id, result_type)
            if predicate(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"{workflow_id}: status never satisfied the condition: {current}")
            await asyncio.sleep(0.3)

    async def update(self, workflow_id: str, name: str, args: dict, result_type: type,
                     step: str | None = None) -> Any:
        """Send an update with a stable id; resend it (same id) until it has an outcome."""
        update_id = f"{step or name}-{workflow_id}"

        async def call() -> Any:
            handle = self.handle(workflow_id, result_type)
            await handle.execute_update(
                name, args, id=update_id, result_type=UpdateAck, rpc_timeout=timedelta(seconds=30)
            )
            # An update answers an ack; the caller goes on with the status.
            return await handle.query("status", result_type=result_type, rpc_timeout=RPC_TIMEOUT)

        self.inflight_updates += 1
        try:
            return await _retry(f"update {name} {workflow_id}", call, self._bump("updates"),
                                self.step_timeout)
        finally:
            self.inflight_updates -= 1

    async def result(self, workflow_id: str, result_type: type) -> Any:
        async def call() -> Any:
            return await self.handle(workflow_id, result_type).result(rpc_timeout=timedelta(seconds=60))

        return await _retry(f"result {workflow_id}", call, self._bump("queries"), self.step_timeout)


# --- lifecycles ---------------------------------------------------------------------------------

PATHS = ("plain", "suspend", "reprove_inspection", "pause")
EXPECTED_ACTIONS = {
    "plain": ["received", "apr_registered", "approved", "inspection_requested", "connected"],
    "suspend": ["received", "apr_registered", "suspend", "corrections_attached",
                "reanalysis_requested", "approved", "inspection_requested", "connected"],
    "reprove_inspection": ["received", "apr_registered", "reprove", "corrections_attached",
                           "reanalysis_requested", "approved", "inspection_requested",
                           "inspection_reproved", "inspection_requested", "connected"],
    "pause": ["received", "apr_registered", "clock_paused", "clock_resumed", "approved",
              "inspection_requested", "connected"],
}
EXPECTED_TEMPLATES = {
    "plain": ["request_received", "analysis_started", "parecer_issued", "inspection_requested",
              "connected"],
    "suspend": ["request_received", "analysis_started", "suspended", "reanalysis_started",
                "parecer_issued", "inspection_requested", "connected"],
    "reprove_inspection": ["request_received", "analysis_started", "reproved",
                           "reanalysis_started", "parecer_issued", "inspection_requested",
                           "inspection_reproved", "inspection_requested", "connected"],
    "pause": ["request_received", "analysis_started", "clock_paused", "clock_resumed",
              "parecer_issued", "inspection_requested", "connected"],
}
TECHNICIAN_TEMPLATES = ["technician_received", "technician_agv_credentials",
                        "technician_apr_approved", "technician_apr_set_password"]


@dataclass
class Lifecycle:
    request_id: str
    path: str
    technician: dict[str, str]
    cpf: str
    email: str
    name: str
    phone: str
    result: AccessStatus | None = None
    seconds: float = 0.0
    decided_at: float | None = None  # time.monotonic() when the last update answered

    @property
    def workflow_id(self) -> str:
        return access_request_id(self.request_id)


@dataclass
class TechnicianRun:
    raw: dict[str, Any]
    result: TechnicianStatus | None = None

    @property
    def key(self) -> str:
        return f"{self.raw['council']}-{self.raw['uf']}-{self.raw['registration']}"

    @property
    def workflow_id(self) -> str:
        return technician_id(self.raw["council"], self.raw["uf"], self.raw["registration"])

    @property
    def as_reference(self) -> dict[str, str]:
        return {k: self.raw[k] for k in ("council", "uf", "registration")}


def plan(n: int, *, technicians: int, seed: int, tag: str, pii: PersonalData | None = None
         ) -> tuple[list[TechnicianRun], list[Lifecycle]]:
    """``n`` lifecycles over ``technicians`` RTs, paths cycling through PATHS."""
    rng = random.Random(seed)
    registrations = rng.sample(range(100000, 1000000), technicians)
    techs = []
    for t in range(technicians):
        cpf = make_cpf(rng.randrange(10**8, 10**9))
        email = f"rt.{tag}.{t}@engenharia.example.com.br"
        name, phone = f"Joaquim Técnico {tag} {t}", f"(31) 9{rng.randrange(10**7, 10**8)}"
        raw = {
            "name": name,
            "cpf": format_cpf(cpf),
            "email": email,
            "phone": phone,
            "council": "CREA",
            "uf": "MG",
            "registration": str(registrations[t]),
            "title": "Engenheiro Eletricista",
        }
        if pii is not None:
            pii.add(cpf, format_cpf(cpf), email, name, phone)
        techs.append(TechnicianRun(raw))
    lifecycles = []
    for i in range(n):
        cpf = make_cpf(rng.randrange(10**8, 10**9))
        email = f"cliente.{tag}.{i}@exemplo.com.br"
        name, phone = f"Maria Cliente {tag} {i}", f"(31) 9{rng.randrange(10**7, 10**8)}"
        if pii is not None:
            pii.add(cpf, format_cpf(cpf), email, name, phone)
        lifecycles.append(Lifecycle(
            request_id=f"{tag}-{i:03d}-{uuid.uuid4().hex[:6]}",
            path=PATHS[i % len(PATHS)],
            technician=techs[i % technicians].as_reference,
            cpf=format_cpf(cpf),
            email=email,
            name=name,
            phone=phone,
        ))
    return techs, lifecycles


class Scenario:
    """Technicians approved, then every lifecycle driven to CONNECTED."""

    def __init__(self, stack: ChaosStack, techs: list[TechnicianRun], lifecycles: list[Lifecycle],
                 *, step_timeout: float = STEP_TIMEOUT_S):
        self.stack = stack
        self.driver = Driver(stack, step_timeout)
        self.techs = techs
        self.lifecycles = lifecycles
        self.docs: dict[str, dict] = {}
        self._approved: dict[str, asyncio.Future] = {}
        # Optional stops: a lifecycle about to send update ``name`` waits for
        # ``gates["name:<request id>"]`` or ``gates[name]``; ``waiting[name]`` counts the
        # lifecycles standing there.
        self.gates: dict[str, asyncio.Event] = {}
        self.waiting: dict[str, int] = defaultdict(int)
        self.started: list[Lifecycle] = []

    async def _gate(self, name: str, lc: Lifecycle) -> None:
        gate = self.gates.get(f"{name}:{lc.request_id}") or self.gates.get(name)
        if gate is None or gate.is_set():
            return
        self.waiting[name] += 1
        try:
            await gate.wait()
        finally:
            self.waiting[name] -= 1

    def upload_documents(self) -> None:
        for kind in ("commercial_id", "correction", *APR_KINDS):
            self.docs[kind] = self.stack.upload_pdf(kind, salt="reliability")

    async def run(self, *, technicians: bool = True, lifecycles: bool = True,
                  concurrency: int | None = None, more: Callable[[int], bool] | None = None) -> None:
        """Approve the RTs and drive the lifecycles (each waits for its RT's approval);
        ``technicians=False`` assumes an earlier ``run(lifecycles=False)``.

        ``concurrency``: at most that many lifecycles open at once; ``more(n)``, asked
        before starting the (n+1)-th: False stops starting new ones (a soak keeps traffic
        flowing while its faults last). ``started`` lists the lifecycles that ran."""
        if not self.docs:
            self.upload_documents()
        if technicians:
            loop = asyncio.get_running_loop()
            self._approved = {t.key: loop.create_future() for t in self.techs}
        tasks = [asyncio.create_task(self._technician(t)) for t in self.techs if technicians]
        try:
            if lifecycles:
                slots = asyncio.Semaphore(concurrency or max(1, len(self.lifecycles)))
                for n, lc in enumerate(self.lifecycles):
                    if more is not None and not more(n):
                        break
                    await slots.acquire()
                    task = asyncio.create_task(self._lifecycle(lc))
                    task.add_done_callback(lambda _: slots.release())
                    tasks.append(task)
                    self.started.append(lc)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _technician(self, tech: TechnicianRun) -> None:
        d = self.driver
        try:
            await d.start("TechnicianRegistration", tech.raw, tech.workflow_id, TechnicianStatus)
            await d.wait_status(tech.workflow_id, TechnicianStatus,
                                lambda s: s.next_actor == "analyst")
            await d.update(tech.workflow_id, "approve", {"actor": ANALYST}, TechnicianStatus)
            tech.result = await d.result(tech.workflow_id, TechnicianStatus)
            self._approved[tech.key].set_result(True)
        except BaseException as error:
            self._approved[tech.key].set_exception(error)
            raise

    async def _lifecycle(self, lc: Lifecycle) -> None:
        t0 = time.monotonic()
        key = "{council}-{uf}-{registration}".format(**lc.technician)
        await asyncio.shield(self._approved[key])
        d, wf, docs = self.driver, lc.workflow_id, self.docs
        raw = request_input(lc.request_id, documents=[docs["commercial_id"]])
        raw["technician"] = lc.technician
        raw["customer"] = {**raw["customer"], "document": lc.cpf, "email": lc.email,
                           "name": lc.name, "phone": lc.phone}
        # Each lifecycle's customer is made up: no installation of the customer base is
        # theirs, so the request names none (the CPF alone, as the seed allows).
        raw["installation_number"] = None
        # This request's parties: its RT and its customer (CONTRACT.md "Parties").
        TECH = {**TECH_ACTOR, "council_key": key}
        CUSTOMER = {**CUSTOMER_ACTOR, "document": lc.cpf}

        async def up(name: str, args: dict, step: str | None = None) -> AccessStatus:
            await self._gate(step or name, lc)
            return await d.update(wf, name, args, AccessStatus, step=step)

        await d.start("AccessRequest", raw, wf, AccessStatus)
        st = await d.wait_status(wf, AccessStatus, lambda s: s.status != "RECEIVED")
        assert st.status == "AWAITING_APR", (wf, st.status, st.refusal_reasons)
        st = await up("register_apr", {
            "actor": TECH, "service_note": st.service_note, "protocol": st.protocol,
            "documents": [docs[k] for k in APR_KINDS]})
        if lc.path in ("suspend", "reprove_inspection"):
            hold = "suspend" if lc.path == "suspend" else "reprove"
            field_name = "pendencies" if hold == "suspend" else "reasons"
            st = await up(hold, {"actor": ANALYST, field_name: [{"code": "DOC-ART-AUSENTE"}]})
            st = await up("attach_corrections", {"actor": TECH, "documents": [docs["correction"]]})
            st = await up("request_reanalysis", {
                "actor": TECH, "reproved_service_note": st.service_note,
                "motive": REANALYSIS_MOTIVE})
            assert st.status == "UNDER_ANALYSIS" and st.cycle == 2, (wf, st.status)
        if lc.path == "pause":
            st = await up("pause_clock", {"actor": ANALYST, "reason": "aguardando dados da subestação"})
            st = await up("resume_clock", {"actor": ANALYST})
        # Each request's parecer is its own file, uploaded for it: the e-mail that carries
        # it attaches only a document this request holds.
        parecer = self.stack.upload_pdf("parecer", salt=wf, for_workflow=wf)
        st = await up("approve", {"actor": ANALYST, "parecer": parecer})
        st = await up("request_inspection", {"actor": CUSTOMER}, step="request_inspection-1")
        if lc.path == "reprove_inspection":
            st = await up("record_inspection", {
                "actor": INSPECTOR, "result": "reproved", "findings": ["aterramento ausente"]},
                step="record_inspection-1")
            st = await up("request_inspection", {"actor": CUSTOMER}, step="request_inspection-2")
        st = await up("record_inspection", {"actor": INSPECTOR, "result": "approved"},
                      step="record_inspection-final")
        assert st.status == "CONNECTED", (wf, st.status)
        lc.decided_at = time.monotonic()
        lc.result = await d.result(wf, AccessStatus)
        lc.seconds = time.monotonic() - t0


# --- checks -------------------------------------------------------------------------------------


@dataclass
class Audit:
    """What the sink, the store and the workflows say after a run."""

    messages: int = 0
    keys: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)  # key → extra copies
    explained: dict[str, str] = field(default_factory=dict)  # key → why (documented window)
    lost: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> dict[str, int]:
        return {k: v for k, v in self.duplicates.items() if k not in self.explained}


def audit(stack: ChaosStack, techs: list[TechnicianRun], lifecycles: list[Lifecycle], *,
          crashes: list[float] | None = None, others: list[Any] = ()) -> Audit:
    """Every e-mail once, every NS once, the store in step with every workflow.

    A second copy of one key is *explained* only by the window documented in
    activities/mail.py — a crash between the SMTP server's 250 and the outbox's ``sent``
    commit — and only when the evidence says exactly that: every copy has the key's
    Message-ID; the outbox counted at least as many attempts as copies; the worker logged
    ``status=sent`` (written after the commit) at most once for the key, so no attempt
    that finished its bookkeeping was ever followed by another send; and a crash — a
    SIGKILL of the worker, or a time in ``crashes`` (killed database connections) — fell
    between the first copy's arrival and the next one's. Anything else is a bug.
    ``others``: final statuses of other workflows of the run, whose e-mails (whatever
    their outcome) are expected too.
    """
    from activities.mail import message_id_for

    result = Audit()
    sink = stack.sink
    log = stack.worker_log.read_bytes() if stack.worker_log.exists() else b""
    grouped = sink.by_key()
    outbox = stack.outbox()
    result.messages = len(sink.messages)
    result.keys = len(grouped)

    expected_keys: dict[str, str] = {}
    for other in others:
        for n in other.notifications:
            expected_keys[n.key] = n.template
    for tech in techs:
        assert tech.result is not None
        if tech.result.status != "APPROVED":
            result.problems.append(f"{tech.workflow_id}: {tech.result.status}")
        for n in tech.result.notifications:
            expected_keys[n.key] = n.template
            if n.status not in ("sent", "duplicate"):
                result.problems.append(f"{n.key}: notification {n.status} {n.detail}")
        templates = sorted(n.template for n in tech.result.notifications)
        if templates != sorted(TECHNICIAN_TEMPLATES):
            result.problems.append(f"{tech.workflow_id}: templates {templates}")
        if stack.store.technician_status(tech.key) != "APPROVED":
            result.problems.append(f"{tech.workflow_id}: store says {stack.store.technician_status(tech.key)}")
        actions = [e.action for e in stack.events(tech.workflow_id)]
        if actions != ["submitted", "approved"]:
            result.problems.append(f"{tech.workflow_id}: events {actions}")

    issued = stack.issued_numbers()
    by_workflow: dict[str, list[IssuedNumber]] = defaultdict(list)
    for row in issued:
        by_workflow[row.workflow_id].append(row)
    service_notes = [row.service_note for row in issued]
    if len(set(service_notes)) != len(service_notes):
        result.problems.append("an NS was issued twice")
    if stack.sequence("service_note") != len(issued):
        result.problems.append(
            f"NS sequence at {stack.sequence('service_note')} for {len(issued)} issued numbers")
    # A reanalysis keeps its request's Protocolo and spends no Protocolo number (its row
    # holds "<Protocolo>-<n>", the column being unique): only first issues count.
    first_issues = [r for r in issued if "-" not in r.protocol]
    protocols = sum(stack.sequence(f"protocol-{y}") for y in {r.protocol[:4] for r in first_issues})
    if protocols != len(first_issues) or len({r.protocol for r in issued}) != len(issued):
        result.problems.append(
            f"protocol sequences at {protocols} for {len(first_issues)} first issues")

    for lc in lifecycles:
        st = lc.result
        assert st is not None, lc.workflow_id
        if st.status != "CONNECTED":
            result.problems.append(f"{lc.workflow_id}: {st.status}")
        for n in st.notifications:
            expected_keys[n.key] = n.template
            if n.status not in ("sent", "duplicate"):
                result.problems.append(f"{n.key}: notification {n.status} {n.detail}")
        templates = [n.template for n in st.notifications]
        if templates != EXPECTED_TEMPLATES[lc.path]:
            result.problems.append(f"{lc.workflow_id}: templates {templates}")
        record = stack.request_record(lc.workflow_id)
        if record is None or (record.status, record.service_note, record.cycle) != (
                st.status, st.service_note, st.cycle):
            result.problems.append(f"{lc.workflow_id}: store {record} vs workflow {st.status}")
        events = stack.events(lc.workflow_id)
        actions = [e.action for e in events]
        if actions != EXPECTED_ACTIONS[lc.path]:
            result.problems.append(f"{lc.workflow_id}: events {actions}")
        keys = [e.event_key for e in events]
        if len(keys) != len(set(keys)) or [int(k[:4]) for k in keys] != list(range(1, len(keys) + 1)):
            result.problems.append(f"{lc.workflow_id}: event keys {keys}")
        rows = sorted(by_workflow.get(lc.workflow_id, []), key=lambda r: r.id or 0)
        if [r.service_note for r in rows] != st.service_notes:
            result.problems.append(
                f"{lc.workflow_id}: issued {[r.service_note for r in rows]} vs {st.service_notes}")

    for key in expected_keys:
        if key not in grouped:
            result.lost.append(key)
    for key, copies in grouped.items():
        if key not in expected_keys:
            result.problems.append(f"unexpected e-mail key {key}")
        ids = {header(m, "Message-ID") for _, m in copies}
        if ids != {message_id_for(key)}:
            result.problems.append(f"{key}: Message-IDs {ids}")
        row = outbox.get(key)
        if row is None or row.status != "sent":
            result.problems.append(f"{key}: outbox {row.status if row else 'missing'}")
        if len(copies) > 1:
            result.duplicates[key] = len(copies) - 1
            first, second = (sink.arrivals[i] for i, _ in copies[:2])
            # A crash counts from IN_FLIGHT_S before the first copy arrived: SIGKILL leaves
            # the bytes the worker already wrote in the kernel, which still delivers them.
            between = [k - first for k in [*stack.kills, *(crashes or [])]
                       if first - IN_FLIGHT_S <= k <= second]
            logged_sent = len(re.findall(
                rb"mail key=" + re.escape(key.encode()) + rb" template=\S+ status=sent", log))
            nearest = min(between, key=abs) if between else None
            why = (f"same Message-ID, outbox attempts={row.attempts if row else None}, "
                   f"logged sent {logged_sent}x, first copy "
                   + ("with no crash before the next" if nearest is None
                      else f"{nearest:.3f}s before a crash" if nearest >= 0
                      else f"{-nearest:.3f}s after a crash (bytes the killed worker had written)"))
            if row is not None and row.attempts >= len(copies) and logged_sent <= 1 and between:
                result.explained[key] = why
            else:
                result.problems.append(f"{key}: duplicated, not the documented window: {why}")
    if len(outbox) != len(expected_keys):
        result.problems.append(f"outbox has {len(outbox)} rows for {len(expected_keys)} keys")
    return result


# How long after a SIGKILL the sink may still finish receiving a message the killed
# worker had written: the kernel flushes the socket, the sink parses it under load. A new
# worker cannot send sooner: it must start, poll and be given the activity.
IN_FLIGHT_S = 0.5


def summary(**figures: Any) -> str:
    return "RELIABILITY " + " ".join(f"{k}={v}" for k, v in figures.items())


# --- PostgreSQL ------------------------------------------------------------------------------

PG_URL = os.environ.get("GD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_url(schema: str, application_name: str) -> str:
    """The test database, in ``schema``, with connections labelled ``application_name``
    (so a test terminates its worker's connections and nobody else's)."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}&application_name={application_name}"
