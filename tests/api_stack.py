"""The whole stack the API tests run against, all real: the Temporal dev server (the
venv's ``temporal`` binary), a worker with the real activities (SQLite store, blob store,
aiosmtpd SMTP sink), a local JWKS issuer, and ``gd api`` as its own uvicorn process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
from temporalio.testing import WorkflowEnvironment

from models import search_attributes as sa
from models.settings import GdSettings
from tests.oidc_issuer import Issuer
from tests.smtp_sink import SmtpSink
from tests.servers import SERVER_STARTUP
from worker import build_dependencies, build_worker, data_converter

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: GdSettings
    issuer: Issuer
    smtp: SmtpSink
    base_url: str
    deps: Any
    api_proc: subprocess.Popen
    api_log: Path

    def http(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=60.0, **kwargs)


def api_env(settings: GdSettings, target: str, issuer: Issuer, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "GD_TEMPORAL_ADDRESS": target,
        "GD_NAMESPACE": settings.namespace,
        "GD_TASK_QUEUE": settings.task_queue,
        "GD_DATABASE_URL": settings.database_url,
        "GD_BLOB_DIR": str(settings.blob_dir),
        "GD_API_HOST": "127.0.0.1",
        "GD_API_PORT": str(port),
        "GD_AUTH_MODE": "oidc",
        "GD_AUTH_ISSUER": issuer.url,
        "GD_AUTH_JWKS_URL": issuer.jwks_url,
        "GD_AUTH_JWKS_MIN_REFETCH_S": "0.2",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    return env


async def wait_ready(base_url: str, proc: subprocess.Popen, log: Path, timeout: float = 40.0) -> None:
    give_up = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=3.0) as http:
        while time.monotonic() < give_up:
            if proc.poll() is not None:
                raise RuntimeError(f"gd api exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"gd api not ready in {timeout} s: {log.read_text()[-2000:]}")


@asynccontextmanager
async def running_stack(tmp: Path, *, worker_process: bool = False,
                        time_skipping: bool = False) -> AsyncIterator[Stack]:
    """The stack; ``worker_process`` runs the worker as its own process (the benchmark:
    then neither the worker nor the API shares the driver's event loop or GIL);
    ``time_skipping`` puts it on the time-skipping test server instead of the dev server:
    its clock runs as the wall clock until the test calls ``stack.env.sleep(...)``, which
    jumps it (a 24-hour window lapses in a second; the portal's lapsed-NS test)."""
    if time_skipping:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_startup_timeout=SERVER_STARTUP,
            data_converter=data_converter(),
            test_server_existing_path=str(BIN / "temporal-test-server"),
        )
        await sa.register(env.client, "default")
    else:
        env = await WorkflowEnvironment.start_local(
            dev_server_startup_timeout=SERVER_STARTUP,
            data_converter=data_converter(),
            dev_server_existing_path=str(BIN / "temporal"),
            search_attributes=list(sa.ALL_KEYS),
            dev_server_log_level="error",
            ui=False,
        )
    smtp = SmtpSink()
    smtp.start()
    issuer = Issuer().start()
    settings = GdSettings(
        database_url=f"sqlite:///{tmp / 'gd.db'}",
        blob_dir=tmp / "blobs",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        task_queue=f"gd-api-{uuid.uuid4().hex[:8]}",
        mail_dir=tmp / "mail",
        env="dev",
    )
    deps = build_dependencies(settings)
    from activities.installations import load_demo

    load_demo(deps.store)  # the customer base the requests name (GD_INSTALLATIONS_CHECK)
    port = free_port()
    log = tmp / "api.log"
    target = env.client.service_client.config.target_host
    proc = None
    try:
        async with env, _worker(env.client, settings, deps, tmp if worker_process else None):
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "api"], env=api_env(settings, target, issuer, port),
                    stdout=out, stderr=subprocess.STDOUT, cwd=tmp,
                )
            base_url = f"http://127.0.0.1:{port}"
            await wait_ready(base_url, proc, log)
            yield Stack(env, settings, issuer, smtp, base_url, deps, proc, log)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        issuer.stop()
        smtp.stop()


@asynccontextmanager
async def _worker(client: Any, settings: GdSettings, deps: Any, process_dir: Path | None) -> AsyncIterator[None]:
    """The worker with the real activities: in this process, or (``process_dir``) as
    ``python -m bench.lifecycle --serve-worker real`` with its log in that directory."""
    if process_dir is None:
        async with build_worker(client, settings, deps=deps):
            yield
        return
    from bench.lifecycle import WorkerProcess

    target = client.service_client.config.target_host
    worker = WorkerProcess("real", settings.model_copy(update={"temporal_address": target}), {},
                           process_dir / "worker.log", "WARNING", None)
    try:
        await worker.ready()
        yield
    finally:
        worker.stop()
