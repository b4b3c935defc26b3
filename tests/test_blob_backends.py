"""Where document bytes live (activities/blobs.py): the database (document_blob), an
S3-compatible server (moto's standalone server, a real S3 implementation on loopback,
through boto3), a local directory (dev). And two "machines": a document uploaded by one
process is attached to an e-mail by a worker process with its own working directory, on
PostgreSQL, with no file on either disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from activities.blobs import (
    BlobStore,
    DatabaseBlobs,
    S3Blobs,
    UploadRefused,
    blob_backend,
    open_blobs,
    upload,
)
from activities.store import Store
from models.ids import access_request_id
from models.settings import GdSettings
from tests.access_helpers import ANALYST, inquiry_input, quiet, settle, start, update
from tests.pdf_fixture import make_pdf
from tests.store_fixtures import Database, database, store  # noqa: F401
from tests.test_migrations import url_of

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server (moto[server]) on a loopback port, for this module."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def s3_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "gd-test", "AWS_SECRET_ACCESS_KEY": "gd-test-secret",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def bucket(s3_endpoint, s3_env) -> str:
    import boto3

    name = f"gd-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def test_settings_choose_the_backend():
    pg = "postgresql+psycopg://u@db:5432/gd"
    assert blob_backend(GdSettings(database_url=pg)) == "database"
    assert blob_backend(GdSettings(database_url="sqlite:///var/gd.db")) == "local"
    assert blob_backend(GdSettings(database_url=pg, blob_url="s3://docs/gd")) == "s3"
    assert blob_backend(GdSettings(database_url=pg, blob_url="local")) == "local"
    with pytest.raises(ValueError, match="GD_BLOB_URL='ftp://x' não reconhecida"):
        blob_backend(GdSettings(blob_url="ftp://x"))


def test_documents_in_s3_are_stored_once_by_sha256(store: Store, s3_endpoint, bucket):
    settings = GdSettings(database_url=str(store.url), blob_url=f"s3://{bucket}/gd/docs",
                          s3_endpoint_url=s3_endpoint)
    blobs = open_blobs(settings, store)
    assert isinstance(blobs, S3Blobs)
    data = make_pdf("parecer de acesso", 5000)
    digest = hashlib.sha256(data).hexdigest()
    first = upload(store, blobs, data, kind="other", filename="parecer.pdf")
    again = upload(store, blobs, data, kind="other", filename="copia.pdf")
    assert first.sha256 == again.sha256 == digest
    objects = blobs.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in objects] == [
        (f"gd/docs/{digest[:2]}/{digest[2:]}", len(data))]
    # Another process (a new client) reads the same bytes.
    other = S3Blobs(bucket, "gd/docs", endpoint_url=s3_endpoint)
    assert other.get(digest) == data
    assert other.exists(digest, len(data)) and not other.exists(digest, len(data) + 1)
    assert other.size(digest) == len(data) and other.path(digest).stat().st_size == len(data)
    missing = "0" * 64
    assert not other.exists(missing) and other.size(missing) is None
    with pytest.raises(FileNotFoundError):
        other.get(missing)
    with pytest.raises(UploadRefused):  # the checks come before any byte is stored
        upload(store, blobs, b"MZ\x90\x00", kind="other", filename="x.exe")
    assert len(blobs.client.list_objects_v2(Bucket=bucket)["Contents"]) == 1


def test_documents_in_the_database_are_one_row_per_content(store: Store):
    blobs = DatabaseBlobs(store)
    data = make_pdf("projeto elétrico", 4000)
    refs = [upload(store, blobs, data, kind="electrical_project", filename=f"p{n}.pdf")
            for n in range(3)]
    assert {r.sha256 for r in refs} == {hashlib.sha256(data).hexdigest()}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT sha256, size FROM document_blob")).all()
    assert rows == [(refs[0].sha256, len(data))]
    assert blobs.get(refs[0].sha256) == data
    assert blobs.path(refs[0].sha256).stat().st_size == len(data)
    with pytest.raises(FileNotFoundError):
        blobs.get("f" * 64)
    assert not blobs.exists("f" * 64) and not blobs.exists("not-a-hash")


def test_a_local_directory_is_the_dev_default(tmp_path: Path):
    settings = GdSettings(database_url=f"sqlite:///{tmp_path}/gd.db", blob_dir=tmp_path / "b")
    store = Store(settings.database_url)
    store.create_schema()
    blobs = open_blobs(settings, store)
    assert isinstance(blobs, BlobStore)
    ref = upload(store, blobs, make_pdf("rg"), kind="commercial_id", filename="rg.pdf")
    assert (tmp_path / "b" / ref.sha256[:2] / ref.sha256[2:]).is_file()
    assert blobs.size(ref.sha256) == ref.size


UPLOAD_SCRIPT = """
import sys
from activities.blobs import open_blobs, upload
from activities.store import Store
from models.settings import get_settings
from tests.pdf_fixture import make_pdf
settings = get_settings()
store = Store(settings.database_url)
store.create_schema()
ref = upload(store, open_blobs(settings, store), make_pdf("parecer da máquina A", 6000),
             kind="other", filename="parecer.pdf", for_workflow=sys.argv[1])
print(ref.model_dump_json())
"""


async def wait_for_worker(worker: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Until the worker process says it polls its task queue (it has connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        assert worker.poll() is None, text[-3000:]
        if "worker polling task queue" in text:
            return
        await asyncio.sleep(0.3)
    raise AssertionError("the worker process never started polling")


def _machine_env(database: Database, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GD_")}
    env.update({"GD_DATABASE_URL": url_of(database), "GD_ENV": "dev",
                "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1", **extra})
    return env


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_worker_on_another_machine_attaches_a_document_uploaded_elsewhere(
    database: Database, client, task_queue, smtp_sink, tmp_path: Path
):
    from models.common import DocumentRef

    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    machine_a.mkdir()
    machine_b.mkdir()
    raw = inquiry_input(f"maq-{uuid.uuid4().hex[:8]}")
    workflow_id = access_request_id(raw["request_id"])
    uploaded = subprocess.run([sys.executable, "-c", UPLOAD_SCRIPT, workflow_id], cwd=machine_a,
                              env=_machine_env(database), capture_output=True, text=True, timeout=120)
    assert uploaded.returncode == 0, uploaded.stderr
    ref = DocumentRef.model_validate_json(uploaded.stdout.strip().splitlines()[-1])

    target = client.service_client.config.target_host
    log = tmp_path / "worker-b.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker"], cwd=machine_b,
        env=_machine_env(database, GD_TEMPORAL_ADDRESS=target, GD_NAMESPACE=client.namespace,
                         GD_TASK_QUEUE=task_queue, GD_SMTP_HOST="127.0.0.1",
                         GD_SMTP_PORT=str(smtp_sink.port)),
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        await wait_for_worker(worker, log)
        handle = await start(client, raw, task_queue)
        await settle(handle, lambda s: s.status == "AWAITING_ANSWER" and s.pending_effects == 0,
                     timeout=60)
        await update(handle, "answer_inquiry", {
            "actor": ANALYST, "answer": "Segue o parecer.",
            "documents": [ref.model_dump(mode="json")]})
        final = await quiet(handle)
        [note] = [n for n in final.notifications if n.template == "inquiry_answered"]
        assert note.status == "sent", note
        attachments = [(part.get_filename(), part.get_content())
                       for message in smtp_sink.messages for part in message.iter_attachments()]
        assert attachments == [("parecer.pdf", make_pdf("parecer da máquina A", 6000))]
    finally:
        worker.terminate()
        worker.wait(30)
        output = log.read_text(errors="replace")
    # Neither machine wrote a document (nor a database) on its own disk.
    for machine in (machine_a, machine_b):
        written = [p.relative_to(machine) for p in machine.rglob("*") if p.is_file()]
        assert written == [], (machine.name, written, output[-2000:])
