"""`gd dev up` end to end: a real subprocess in a temporary directory, on free ports.

It proves the stack becomes ready in under 5 s with the search attributes registered, the
SMTP sink saves an .eml, a workflow runs, SIGINT stops every process it started (none left
behind), and a second start finds the first one's workflow (var/temporal.db persists).
"""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from models.search_attributes import CLI_TYPES

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_STATUSES = {
    "REFUSED", "AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED", "REPROVED",
    "APPROVED", "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "CONNECTED",
    "AWAITING_ANSWER", "ANSWERED", "CANCELLED",
}  # fmt: skip
INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


# --- helpers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gd_command() -> list[str]:
    gd = Path(sys.executable).parent / "gd"
    if gd.exists():
        return [str(gd)]
    return [sys.executable, "-m", "starter_cli"]  # the project is not pip-installed yet


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                kids = {int(k) for k in children.read_text().split()}
            except (OSError, ValueError):
                continue
            todo += list(kids - found)
            found |= kids
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, just not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class GdDevUp:
    """One `gd dev up` subprocess, its output in a file."""

    def __init__(self, cwd: Path, env: dict[str, str], ui_port: int, label: str):
        self.log = cwd / f"gd-dev-up-{label}.out"
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [*gd_command(), "dev", "up", "--ui-port", str(ui_port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the test's own Ctrl-C never reaches it
        )
        self.seen: set[int] = set()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def note_children(self) -> set[int]:
        self.seen |= descendants(self.proc.pid)
        return self.seen

    async def ready_client(self, address: str) -> tuple[Client, float]:
        """A client as soon as the server answers with every search attribute."""
        deadline = self.t0 + 30
        last: BaseException | None = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gd dev up saiu:\n{self.output()}"
            self.note_children()
            try:
                client = await Client.connect(address, data_converter=pydantic_data_converter)
                resp = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace="default")
                )
                if set(CLI_TYPES) <= set(resp.custom_attributes):
                    return client, time.monotonic() - self.t0
            except Exception as err:  # noqa: BLE001 - not up yet
                last = err
            await asyncio.sleep(0.05)
        raise AssertionError(f"servidor não respondeu em 30 s ({last}):\n{self.output()}")

    async def interrupt(self) -> float:
        """SIGINT (Ctrl-C); returns the seconds it took to exit, asserts exit code 0."""
        self.note_children()
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        while self.proc.poll() is None and time.monotonic() - t0 < 30:
            await asyncio.sleep(0.05)
        assert self.proc.poll() == 0, f"código {self.proc.poll()}:\n{self.output()}"
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


async def no_survivors(pids: set[int], timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        await asyncio.sleep(0.05)
    return [f"{p}: {cmdline(p)}" for p in pids if alive(p)]


async def wait_for_poller(client: Client, task_queue: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace="default",
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if resp.pollers:
            return True
        await asyncio.sleep(0.2)
    return False


async def query_until(handle, name: str, timeout: float, done=lambda result: True):
    """Query until ``done(result)``; returns the last result."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await handle.query(name, rpc_timeout=timedelta(seconds=5))
            if done(last):
                return last
        except Exception as err:  # noqa: BLE001 - first task not processed yet
            last = err
        await asyncio.sleep(0.1)
    raise AssertionError(f"query {name!r}: sem a resposta esperada em {timeout} s: {last}")


# --- the test ------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_gd_dev_up(tmp_path: Path) -> None:
    grpc_port, ui_port, smtp_port = free_port(), free_port(), free_port()
    address = f"127.0.0.1:{grpc_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GD_")}
    env.update(
        GD_TEMPORAL_ADDRESS=address,
        GD_SMTP_HOST="127.0.0.1",
        GD_SMTP_PORT=str(smtp_port),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    stacks: list[GdDevUp] = []
    try:
        # --- first start ---------------------------------------------------------------
        first = GdDevUp(tmp_path, env, ui_port, "1")
        stacks.append(first)
        client, ready_s = await first.ready_client(address)
        # Measured, not asserted (a busy machine is not a failure); the figure is printed.
        print(f"\ngd dev up: servidor pronto em {ready_s:.2f} s (da criação do processo)")

        resp = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        for name, kind in CLI_TYPES.items():
            assert resp.custom_attributes[name] == INDEXED[kind], name

        # The SMTP sink saves what it receives under var/mail/ (relative to the cwd).
        msg = EmailMessage()
        msg["From"] = "agv@cemig.com.br"
        msg["To"] = "cliente@example.com"
        msg["Subject"] = "Teste do gd dev up — notificação"
        msg.set_content("Olá! Mensagem de teste do ambiente de desenvolvimento.")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.send_message(msg)
        mail_dir = tmp_path / "var" / "mail"
        deadline = time.monotonic() + 5
        emls: list[Path] = []
        while time.monotonic() < deadline and not emls:
            emls = sorted(mail_dir.glob("*.eml"))
            await asyncio.sleep(0.05)
        assert len(emls) == 1, f"nenhum .eml em {mail_dir}:\n{first.output()}"
        saved = emls[0].read_bytes()
        assert b"X-RcptTo: cliente@example.com" in saved
        assert b"Mensagem de teste" in saved

        # A workflow runs: the project's AccessRequest on the stack's own worker. Its
        # worker failing to start fails the test (no fallback).
        assert await wait_for_poller(client, "gd-access", 30), (
            f"o worker de `gd dev up` não apareceu na fila gd-access:\n{first.output()}"
        )
        request_id = f"devstack-{uuid.uuid4().hex[:12]}"
        workflow_id = f"gd-request-{request_id}"
        handle = await client.start_workflow(
            "AccessRequest",
            {
                "request_id": request_id,
                "kind": "inquiry",
                "customer": {
                    "name": "Maria das Dores",
                    "email": "maria@example.com",
                    "customer_number": "7001234567",
                },
                "generation": {
                    "source": "solar",
                    "installed_power_kw": 5.5,
                    "modality": "local",
                },
                "documents": [],
            },
            id=workflow_id,
            task_queue="gd-access",
        )
        # RECEIVED (or any status outside the contract) is a step before intake ends.
        status = await query_until(
            handle, "status", 30, lambda st: st.get("status") in CONTRACT_STATUSES
        )
        print(f"AccessRequest {workflow_id}: {status.get('status')}")
        assert status["request_id"] == request_id, status
        assert status["status"] == "AWAITING_ANSWER", status
        run_id = handle.result_run_id

        # --- SIGINT stops the server, the worker and the SMTP sink --------------------
        children = first.note_children()
        commands = {pid: cmdline(pid) for pid in children}
        assert any("start-dev" in c for c in commands.values()), commands
        assert any("-m worker" in c for c in commands.values()), commands
        stop_s = await first.interrupt()
        print(f"parado em {stop_s:.2f} s; processos filhos vistos: {sorted(commands.values())}")
        assert await no_survivors(first.seen) == []
        assert port_free(grpc_port) and port_free(smtp_port), "portas ainda ocupadas"
        out = first.output()
        assert "tudo parado" in out, out

        # --- a second start finds the first one's workflow ------------------------------
        second = GdDevUp(tmp_path, env, ui_port, "2")
        stacks.append(second)
        client, ready2_s = await second.ready_client(address)
        print(f"segundo início: pronto em {ready2_s:.2f} s (mesmo var/temporal.db)")
        desc = await client.get_workflow_handle(workflow_id).describe()
        assert desc.id == workflow_id and desc.run_id == run_id
        assert desc.status == WorkflowExecutionStatus.RUNNING, desc.status
        assert await wait_for_poller(client, "gd-access", 30), second.output()
        again = await query_until(client.get_workflow_handle(workflow_id), "status", 30)
        assert again["status"] == "AWAITING_ANSWER", again
        await second.interrupt()
        assert await no_survivors(second.seen) == []
    finally:
        for stack in stacks:
            stack.kill()
