"""`gd` as a person runs it: the installed script in a subprocess, against a real dev stack
(`devstack.DevStack`: Temporal dev server, SMTP sink and `python -m worker`, all on free
ports, state in a temporary directory).

One journey goes through every role — RT registration and approval, upload, request,
APR Web, a refused suspension (exit 2 with the validator's own message), suspension,
corrections, reanalysis, parecer, vistoria, connection — and the lists find it; then
`gd demo` runs to the end.
"""

from __future__ import annotations

from tests.pdf_fixture import make_pdf
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devstack import DevStack, settings_env
from models.settings import GdSettings
from tests.smtp_sink import free_port

_SCRIPT = Path(sys.executable).parent / "gd"
# The installed `gd` script; before `pip install -e .` ran, the module itself.
GD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "starter_cli"]
ANALYST = ["--as", "ana.analista"]  # the analyst commands' own role
RT = ["--as", "rt.joao"]


@dataclass
class Stack:
    root: Path
    settings: GdSettings
    env: dict[str, str]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gd-e2e")
    settings = GdSettings(
        temporal_address=f"127.0.0.1:{free_port()}",
        database_url=f"sqlite:///{root / 'gd.db'}",
        blob_dir=root / "blobs",
        smtp_port=free_port(),
        mail_dir=root / "mail",
        task_queue=f"gd-e2e-{uuid.uuid4().hex[:8]}",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GD_")}
    env.update(settings_env(settings))
    env.update(COLUMNS="200", GD_UI_PORT=str(free_port()))
    from cli.demo import load_demo_installations

    load_demo_installations(settings)  # as `gd dev up` does: the demo customer base
    async with DevStack(
        settings, ui_port=int(env["GD_UI_PORT"]), worker=True, var_dir=root / "var", echo_worker=False
    ) as dev:
        assert await dev.wait_worker_ready(60), "\n".join(dev.worker_tail)
        yield Stack(root, settings, env)


async def gd(stack: Stack, *args: str, expect: int = 0) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *GD, *args, cwd=stack.root, env=stack.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    run = Run(proc.returncode or 0, out.decode(), err.decode())
    assert run.code == expect, f"gd {' '.join(args)} → {run.code}\nstdout:\n{run.out}\nstderr:\n{run.err}"
    return run


async def eventually_listed(stack: Stack, args: list[str], request_id: str, status: str) -> str:
    """Visibility follows the workflow a moment later: poll the list command until the
    table has the request in that status; returns its line."""
    out = ""
    for _ in range(30):
        out = (await gd(stack, *args)).out
        lines = [line for line in out.splitlines() if request_id in line and status in line]
        if lines:
            return lines[0]
        await asyncio.sleep(0.3)
    raise AssertionError(f"{request_id} ({status}) não apareceu em gd {' '.join(args)}:\n{out}")


def write_pdf(path: Path, label: str) -> str:
    path.write_bytes(make_pdf(f"{label} {uuid.uuid4().hex}"))
    return str(path)


@pytest.mark.timeout(300)
async def test_a_request_through_every_role_to_connection(stack: Stack):
    files = stack.root / "files"
    files.mkdir(exist_ok=True)
    digits = f"{uuid.uuid4().int % 10**5:05d}"

    # RT: registration (typed with punctuation) and approval.
    rt = (await gd(stack, "technician", "register", "--name", "João Pereira", "--cpf", "111.444.777-35",
                   "--email", "joao.rt@example.com.br", "--phone", "(31) 98888-1234",
                   "--council", "crea", "--uf", "mg", "--registration", f"{digits[:2]}.{digits[2:]}-d",
                   "--json")).json()  # fmt: skip
    key = f"CREA-MG-{digits}D"
    # Parties: the RT acts with its council key, the customer with its CPF (root options'
    # variables), or the workflows refuse them as strangers to this request.
    stack.env.update(GD_ACTOR_COUNCIL_KEY=key, GD_ACTOR_DOCUMENT="52998224725")
    assert (rt["workflow_id"], rt["status"]) == (f"gd-technician-{key}", "PENDING_REVIEW")
    approved = (await gd(stack, "technician", "approve", f"crea-mg-{digits}-d", *ANALYST, "--json")).json()
    assert approved["status"] == "APPROVED"

    # Customer: the commercial document, then the request (files given as paths).
    ref = (await gd(stack, "docs", "upload", write_pdf(files / "rg.pdf", "rg"), "--kind",
                    "commercial_id", "--json")).json()  # fmt: skip
    request_id = f"e2e-{uuid.uuid4().hex[:8]}"
    started = (await gd(stack, "request", "new", "--request-id", request_id, "--name", "Maria Souza",
                        "--document", "529.982.247-25", "--email", "maria@example.com.br",
                        "--installation", "3001234567", "--technician", key, "--power", "8.5",
                        "--doc", f"commercial_id={ref['sha256']}", "--json")).json()  # fmt: skip
    assert started["status"] == "AWAITING_APR" and started["workflow_id"] == f"gd-request-{request_id}"
    ns, protocol = started["service_note"], started["protocol"]
    panel = await gd(stack, "request", "status", request_id)
    text = " ".join(panel.out.split())
    for expected in ("aguardando registro no APR Web", "responsável técnico (RT)",
                     "registro no APR Web (24 h):", "faltam 23 h", ns, protocol):  # fmt: skip
        assert expected in text, expected

    # RT: APR Web with the technical documents.
    docs = [f"{kind}={write_pdf(files / f'{kind}.pdf', kind)}"
            for kind in ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")]  # fmt: skip
    apr = (await gd(stack, "apr", "register", request_id, "--ns", ns, "--protocol", protocol,
                    *[a for d in docs for a in ("--doc", d)], *RT, "--json")).json()  # fmt: skip
    assert apr["status"] == "UNDER_ANALYSIS" and apr["next_actor"] == "analyst"
    queued = await eventually_listed(stack, ["analyst", "queue", "--class", "micro"], request_id, "UNDER_ANALYSIS")
    assert ns in queued and key in queued and "solic. micro" in queued

    # Analyst: a code outside the catalogue is refused by the workflow's validator.
    refused = await gd(stack, "analyst", "suspend", request_id, "--reason", "DOC-INEXISTENTE", *ANALYST, expect=2)
    assert refused.err == "pendencies: código(s) fora do catálogo de motivos para esta ação: DOC-INEXISTENTE\n"
    assert refused.out == ""
    suspended = (await gd(stack, "analyst", "suspend", request_id, "-r", "DOC-ART-AUSENTE:sem comprovante",
                          *ANALYST, "--json")).json()  # fmt: skip
    assert suspended["status"] == "SUSPENDED"

    # RT: corrections in APR Web, then the reanalysis with the reproved NS.
    await gd(stack, "apr", "corrections", request_id, "--doc", write_pdf(files / "art2.pdf", "art"), *RT)
    again = (await gd(stack, "reanalysis", "request", request_id, "--reproved-ns", ns, *RT, "--json")).json()
    assert again["status"] == "UNDER_ANALYSIS" and again["cycle"] == 2
    assert again["service_notes"][0] == ns and again["service_note"] != ns

    # Analyst: the parecer; customer: vistoria; inspector: connection.
    await gd(stack, "analyst", "approve", request_id, "--parecer", write_pdf(files / "parecer.pdf", "parecer"),
             *ANALYST)  # fmt: skip
    await gd(stack, "inspection", "request", request_id, "--as", "maria")
    final = (await gd(stack, "inspection", "record", f"gd-request-{request_id}", "--result", "approved",
                      "--as", "carlos.vistoriador", "--json")).json()  # fmt: skip
    assert final["status"] == "CONNECTED" and final["next_actor"] is None
    assert [d["action"] for d in final["decisions"]] == ["suspend", "approve", "inspection_approved"]
    assert {d["kind"] for d in final["documents"]} >= {"commercial_id", "correction", "parecer"}
    assert final["pending_effects"] == 0  # the command waited for the store and the e-mails
    await eventually_listed(stack, ["request", "list", "--technician", key], request_id, "CONNECTED")

    closed = await gd(stack, "request", "withdraw", request_id, "--reason", "tarde demais", "--as", "maria", expect=2)
    assert closed.err == f"gd-request-{request_id}: processo já encerrado (CONNECTED); nenhuma ação é possível\n"

    # An inquiry takes the request's options but the plant's (no installation, RT, UCs).
    inquiry_id = f"e2e-q-{uuid.uuid4().hex[:8]}"
    asked = (await gd(stack, "inquiry", "new", "--request-id", inquiry_id, "--name", "Maria Souza",
                      "--document", "529.982.247-25", "--email", "maria@example.com.br", "--power", "75",
                      "--doc", f"commercial_id={ref['sha256']}", "--json")).json()  # fmt: skip
    assert (asked["kind"], asked["status"], asked["next_actor"]) == ("inquiry", "AWAITING_ANSWER", "analyst")
    no_rt = await gd(stack, "inquiry", "new", "--technician", key, expect=2)
    assert no_rt.err == "uso incorreto: opção desconhecida: --technician (veja `gd inquiry new --help`)\n"


@pytest.mark.timeout(300)
async def test_demo_runs_end_to_end(stack: Stack):
    run = await gd(stack, "demo")
    out = run.out
    assert "[20/20]" in out and "Continue daqui" in out
    for status in ("APPROVED", "AWAITING_APR", "CONNECTED", "ANSWERED", "REGISTERED"):
        assert status in out
    assert "A janela de 24 h é real" in out
    summary = (await gd(stack, "demo", "--json")).json()
    assert sorted(set(summary["workflows"].values())) == [
        "ANSWERED", "APPROVED", "AWAITING_APR", "CONNECTED", "REGISTERED",
    ]  # fmt: skip
    assert len(summary["steps"]) == 20
    assert any(path.suffix == ".eml" for path in (stack.root / "mail").iterdir())


@pytest.mark.timeout(60)
async def test_no_server_is_exit_1_with_the_make_run_hint(stack: Stack):
    address = f"127.0.0.1:{free_port()}"
    lonely = Stack(stack.root, stack.settings, {**stack.env, "GD_TEMPORAL_ADDRESS": address})
    run = await gd(lonely, "request", "status", "req-1", expect=1)
    assert run.err == f"não foi possível conectar ao Temporal em {address} (rode `make run`)\n"
