"""`gd demo`: the newcomer's tour against the running stack (`make run`), step by step:
an RT registered and approved; a micro request with suspension, corrections and
reanalysis; the APR Web 24-hour window; a mini request with works, inspection, connection
and beneficiary units; an inquiry answered."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import console, emit_json, execute, json_opt
from cli.formatting import deadline_text, fmt_dt, status_label
from domain.calendar import TZ
from gd_client import GdNotFound, GdUnavailable, intake_done, workflow_type_of
from models.ids import TECHNICIAN_PREFIX, access_request_id, beneficiaries_id
from models.names import Workflows

def demo(
    json_out: bool = json_opt(),
) -> None:
    """Demonstração de ponta a ponta no ambiente de `make run`, passo a passo.

    RT cadastrado e aprovado; micro com suspensão, correções e reanálise; a janela de 24 h
    do APR Web; mini com obras, vistoria, conexão e UCs recebedoras; uma consulta respondida.
    """

    async def body(gd: Any) -> None:
        summary = await run_demo(gd, None if json_out else console())
        if json_out:
            emit_json(summary)

    execute(body, json_out)


# --- the demo scenario -----------------------------------------------------------------------

DEMO_STEPS = 20
# Well-known test numbers (valid check digits, nobody's real documents).
DEMO_CUSTOMER_CPF = "529.982.247-25"
DEMO_RT_CPF = "111.444.777-35"
DEMO_COMPANY_CNPJ = "11.222.333/0001-81"
DEMO_BRANCHES = ("11.222.333/0002-62", "11.222.333/0003-43")  # same CNPJ root: remote OK
DEMO_ACTORS = {
    "analyst": {"id": "ana.analista", "role": "analyst"},
    "technician": {"id": "rt.joao", "role": "technician"},
    "customer": {"id": "cliente.maria", "role": "customer"},
    "inspector": {"id": "vistoriador.carlos", "role": "inspector"},
}
DEMO_DOCUMENTS = (
    ("commercial_id", "documento-identificacao.pdf", "Documento de identificacao do cliente"),
    ("electrical_project", "projeto-eletrico.pdf", "Projeto eletrico"),
    ("art_rrt", "art.pdf", "ART do responsavel tecnico"),
    ("single_line_diagram", "diagrama-unifilar.pdf", "Diagrama unifilar"),
    ("descriptive_memorial", "memorial-descritivo.pdf", "Memorial descritivo"),
    ("inverter_datasheet", "datasheet-inversor.pdf", "Datasheet do inversor"),
    ("module_datasheet", "datasheet-modulos.pdf", "Datasheet dos modulos"),
    ("correction", "art-corrigida.pdf", "ART corrigida (com comprovante de recolhimento)"),
    ("parecer", "parecer-de-acesso.pdf", "Parecer de acesso"),
    ("inspection_report", "relatorio-vistoria.pdf", "Relatorio de vistoria"),
)


def load_demo_installations(settings: Any) -> None:
    """The demo's customer base (domain/data/installations-demo.csv): the installations its
    requests name must exist and be their holders' (GD_INSTALLATIONS_CHECK). Idempotent."""
    from activities.installations import load_demo
    from activities.store import Store

    store = Store(settings.database_url)
    try:
        store.create_schema()
        load_demo(store)
    finally:
        store.dispose()


def minimal_pdf(title: str, lines: tuple[str, ...] = ()) -> bytes:
    """A small, valid one-page PDF (Helvetica text), built by hand: no dependency."""

    def text(value: str) -> bytes:
        safe = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return safe.encode("latin-1", "replace")

    ops = [b"BT /F1 16 Tf 72 770 Td (" + text(title) + b") Tj ET"]
    for i, line in enumerate(lines):
        ops.append(b"BT /F1 11 Tf 72 %d Td (" % (740 - 18 * i) + text(line) + b") Tj ET")
    content = b"\n".join(ops)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


class DemoRun:
    """Runs numbered steps, printing one line each (and a progress bar on a terminal)."""

    def __init__(self, gd: Any, console: Any | None, total: int = DEMO_STEPS):
        self.gd = gd
        self.console = console
        self.total = total
        self.done = 0
        self.steps: list[dict[str, Any]] = []
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> "DemoRun":
        if self.console is not None:
            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("preparando…", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str, style: str = "") -> None:
        if self.console is not None:
            out = self.progress.console if self.progress is not None else self.console
            out.print(text, style=style, soft_wrap=True, highlight=False)

    def section(self, title: str) -> None:
        self.say(f"\n[bold]{title}[/]")

    async def step(self, label_text: str, action: Callable[[], Awaitable[Any]], workflow_id: str | None = None) -> Any:
        if self.progress is not None:
            self.progress.update(self.task, description=label_text)
        started = time.monotonic()
        result = await action()
        if workflow_id is not None and hasattr(result, "status"):
            result = await self.gd.settle(workflow_id)  # e-mails and store written
        elapsed_ms = (time.monotonic() - started) * 1000
        self.done += 1
        detail = _demo_detail(result)
        self.steps.append(
            {"step": self.done, "label": label_text, "workflow_id": workflow_id,
             "status": getattr(result, "status", None), "ms": round(elapsed_ms)}
        )  # fmt: skip
        self.say(
            f"[green]✓[/] [dim][{self.done:>2}/{self.total}][/] {label_text}"
            + (f" [cyan]→ {detail}[/]" if detail else "")
            + f" [dim]({elapsed_ms:.0f} ms)[/]"
        )
        if self.progress is not None:
            self.progress.advance(self.task)
        return result


def _demo_detail(result: Any) -> str:
    status = getattr(result, "status", None)
    if status is None:
        return ""
    parts = [status]
    if getattr(result, "service_note", None):
        parts.append(f"NS {result.service_note}")
    if getattr(result, "protocol", None) and status == "AWAITING_APR":
        parts.append(f"Protocolo {result.protocol}")
    if getattr(result, "due_at", None):
        parts.append(f"prazo {deadline_text(result.due_at, getattr(result, 'clock_paused', False))}")
    if getattr(result, "effective_from", None):
        parts.append(f"vale a partir de {result.effective_from:%d/%m/%Y}")
    return " · ".join(parts)


async def _wait_for_worker(gd: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not await gd.worker_ready():
        if loop.time() > give_up:
            raise GdUnavailable(
                f"nenhum worker na fila {gd.settings.task_queue} em {gd.settings.temporal_address} "
                "(rode `make run`, que sobe servidor e worker, ou `gd worker`)"
            )
        await asyncio.sleep(0.5)


async def _wait_rt_in_store(gd: Any, key: str, timeout: float = 30.0) -> None:
    """A request is accepted only once the store has the RT approved (a queued effect of
    the approval, normally written within a few milliseconds)."""

    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while gd.documents.store.technician_status(key) != "APPROVED":
        if loop.time() > give_up:
            raise GdUnavailable(f"a aprovação do RT {key} não chegou ao banco em {timeout:.0f} s; veja o log do worker")
        await asyncio.sleep(0.1)


async def _wait_child(gd: Any, request_id: str, timeout: float = 20.0) -> Any:
    """The BeneficiaryRegistration the connection started, once its intake answered."""

    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        try:
            st = await gd.beneficiaries_status(request_id)
            if intake_done(st):
                return st
        except GdNotFound:
            pass
        if loop.time() > give_up:
            raise GdUnavailable(f"o cadastramento das UCs recebedoras de {request_id} não começou em {timeout:.0f} s")
        await asyncio.sleep(0.1)


def _demo_request(request_id: str, kind: str, refs: dict[str, Any], technician: dict[str, str] | None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "request_id": request_id,
        "kind": kind,
        "customer": {
            "name": "Maria das Graças Souza",
            "document": DEMO_CUSTOMER_CPF,
            "email": "maria.souza@example.com.br",
            "phone": "(31) 99876-5432",
        },
        "installation_number": "3001234567" if kind == "request" else None,
        "technician": technician,
        "generation": {"source": "solar", "installed_power_kw": 8.5, "modality": "local"},
        "documents": [refs["commercial_id"]] if kind == "request" else [],
    }
    raw.update(extra)
    return raw


async def run_demo(gd: Any, console: Any | None) -> dict[str, Any]:
    """The newcomer's tour, against the running stack. Returns a summary (for --json)."""


    await _wait_for_worker(gd)
    load_demo_installations(gd.settings)
    tag = f"{datetime.now(TZ):%H%M%S}-{secrets.token_hex(2)}"
    digits = f"{secrets.randbelow(10**8):08d}"
    typed_registration = f"{digits[:2]}.{digits[2:5]}.{digits[5:]}-d"  # normalised: digits + "D"
    # Parties: the RT acts with its council key (known once registered), each customer
    # with its own CPF/CNPJ; the workflows refuse anyone else's actions on a request.
    a = {**DEMO_ACTORS, "customer": {**DEMO_ACTORS["customer"], "document": DEMO_CUSTOMER_CPF}}
    ids = {
        "micro": f"demo-{tag}-micro",
        "lapse": f"demo-{tag}-apr-24h",
        "mini": f"demo-{tag}-mini",
        "inquiry": f"demo-{tag}-consulta",
    }
    wf = {key: access_request_id(value) for key, value in ids.items()}
    with DemoRun(gd, console) as run:
        run.say(
            f"[bold]Demonstração GD[/] — Temporal em {gd.settings.temporal_address}, fila "
            f"{gd.settings.task_queue}, rodada [cyan]{tag}[/]"
        )

        run.section("1. Cadastro do responsável técnico (RT)")
        rt = await run.step(
            f"RT João Pereira cadastra-se no CREA-MG, registro digitado \"{typed_registration}\"",
            lambda: gd.start_technician({
                "name": "João Pereira", "cpf": DEMO_RT_CPF, "email": "joao.pereira.rt@example.com.br",
                "phone": "(31) 98888-1234", "council": "CREA", "uf": "MG",
                "registration": typed_registration, "title": "Engenheiro Eletricista",
            }),
        )  # fmt: skip
        technician_key = rt.technician
        technician_wf = TECHNICIAN_PREFIX + technician_key
        run.say(f"   [dim]id do processo: {technician_wf} (registro normalizado)[/]")
        await run.step(
            "analista aprova o cadastro: o RT recebe os 3 e-mails (AGV, APR e senha do APR)",
            lambda: gd.approve_technician(technician_key, a["analyst"]),
            technician_wf,
        )
        technician = {"council": "CREA", "uf": "MG", "registration": technician_key.split("-", 2)[2]}
        a["technician"] = {**a["technician"], "council_key": technician_key}
        await _wait_rt_in_store(gd, technician_key)

        refs: dict[str, Any] = {}

        async def upload_all() -> None:
            for kind, filename, title in DEMO_DOCUMENTS:
                pdf = minimal_pdf(title, (f"Demonstracao GD {tag}", f"Tipo: {kind}"))
                refs[kind] = gd.upload(pdf, kind, filename=filename)

        await run.step(f"RT envia {len(DEMO_DOCUMENTS)} documentos (PDFs gerados) ao repositório", upload_all)
        apr_docs = [refs[k] for k in ("electrical_project", "art_rrt", "single_line_diagram",
                                      "descriptive_memorial", "inverter_datasheet", "module_datasheet")]  # fmt: skip

        run.section("2. Microgeração: suspensão, correções e reanálise até o parecer")
        micro = await run.step(
            "cliente abre a solicitação (8,5 kW solar, autoconsumo local) na AGV",
            lambda: gd.start_request(_demo_request(ids["micro"], "request", refs, technician)),
            wf["micro"],
        )
        await run.step(
            "RT registra NS e Protocolo no APR Web com os documentos técnicos",
            lambda: gd.register_apr(ids["micro"], a["technician"], micro.service_note, micro.protocol, apr_docs),
            wf["micro"],
        )
        await run.step(
            "analista suspende: DOC-ART-AUSENTE (ART sem comprovante)",
            lambda: gd.suspend(ids["micro"], a["analyst"], ["DOC-ART-AUSENTE:ART enviada sem comprovante de recolhimento"]),
            wf["micro"],
        )
        await run.step(
            "RT anexa a ART corrigida no APR Web",
            lambda: gd.attach_corrections(ids["micro"], a["technician"], [refs["correction"]]),
            wf["micro"],
        )
        await run.step(
            f"RT solicita a reanálise informando a NS reprovada {micro.service_note}",
            lambda: gd.request_reanalysis(ids["micro"], a["technician"], micro.service_note),
            wf["micro"],
        )
        await run.step(
            "analista aprova e emite o parecer de acesso (PDF)",
            lambda: gd.approve(ids["micro"], a["analyst"], refs["parecer"], notes="Sem obras."),
            wf["micro"],
        )

        run.section("3. A janela de 24 h do APR Web (decurso de prazo)")
        lapse = await run.step(
            "cliente abre outra solicitação; o RT ainda não registrou no APR Web",
            lambda: gd.start_request(_demo_request(ids["lapse"], "request", refs, technician)),
            wf["lapse"],
        )

        run.say(
            f"   [yellow]A janela de 24 h é real e não é simulada: se o RT não registrar NS "
            f"{lapse.service_note} no APR Web até {fmt_dt(lapse.due_at)}, a NS é reprovada por "
            f"decurso de prazo (LAPSED) e cabe reanálise. Acompanhe com "
            f"`gd request status {ids['lapse']}`.[/]"
        )

        run.section("4. Minigeração: obras, vistoria, conexão e UCs recebedoras")
        allocation = {
            "mode": "percent",
            "units": [
                {"installation_number": "3009876501", "holder_document": DEMO_BRANCHES[0], "percent": 60},
                {"installation_number": "3009876502", "holder_document": DEMO_BRANCHES[1], "percent": 40},
            ],
        }
        mini_input = _demo_request(
            ids["mini"], "request", refs, technician,
            customer={"name": "Laticínios Serra Azul Ltda", "document": DEMO_COMPANY_CNPJ,
                      "email": "energia@laticinios-serra-azul.example.com.br", "phone": "(31) 3333-4444"},
            installation_number="3009876500",
            generation={"source": "solar", "installed_power_kw": 300, "voltage_kv": 13.8, "modality": "remote"},
            beneficiaries=allocation,
        )  # fmt: skip
        mini = await run.step(
            "empresa abre a solicitação (300 kW solar em 13,8 kV, autoconsumo remoto, 2 UCs recebedoras)",
            lambda: gd.start_request(mini_input),
            wf["mini"],
        )
        await run.step(
            "RT registra NS e Protocolo no APR Web",
            lambda: gd.register_apr(ids["mini"], a["technician"], mini.service_note, mini.protocol, apr_docs),
            wf["mini"],
        )
        await run.step(
            "analista declara obras de reforço: o prazo do parecer é recalculado (30 → 45 dias)",
            lambda: gd.declare_works(ids["mini"], a["analyst"], "reforço do alimentador para 300 kW"),
            wf["mini"],
        )
        await run.step(
            "analista aprova com obras e emite o parecer",
            lambda: gd.approve(ids["mini"], a["analyst"], refs["parecer"], requires_works=True),
            wf["mini"],
        )
        await run.step(
            "cliente solicita a vistoria",
            lambda: gd.request_inspection(
                ids["mini"], {"id": "laticinios.serra.azul", "role": "customer", "document": DEMO_COMPANY_CNPJ}
            ),
            wf["mini"],
        )
        await run.step(
            "vistoriador aprova a vistoria: usina conectada",
            lambda: gd.record_inspection(ids["mini"], a["inspector"], "approved", report=refs["inspection_report"]),
            wf["mini"],
        )
        await run.step(
            "cadastramento das UCs recebedoras começa sozinho (processo filho)",
            lambda: _wait_child(gd, ids["mini"]),
        )
        await run.step(
            "analista confirma o rateio 60 % / 40 %",
            lambda: gd.confirm_beneficiaries(ids["mini"], a["analyst"]),
            beneficiaries_id(ids["mini"]),
        )

        run.section("5. Consulta de acesso")
        await run.step(
            "cliente faz uma consulta de acesso (5 kW solar)",
            lambda: gd.start_request(_demo_request(
                ids["inquiry"], "inquiry", refs, None,
                generation={"source": "solar", "installed_power_kw": 5, "modality": "local"},
            )),
            wf["inquiry"],
        )  # fmt: skip
        await run.step(
            "analista responde a consulta por e-mail",
            lambda: gd.answer_inquiry(
                ids["inquiry"], a["analyst"],
                "Há capacidade no alimentador para 5 kW em baixa tensão; siga com a solicitação de acesso.",
            ),
            wf["inquiry"],
        )  # fmt: skip

        finals = {}
        for name, workflow_id in [*wf.items(), ("technician", technician_wf),
                                  ("beneficiaries", beneficiaries_id(ids["mini"]))]:  # fmt: skip
            finals[workflow_id] = (await gd.status(workflow_id)).status
    summary = {
        "tag": tag,
        "technician": technician_key,
        "request_ids": ids,
        "workflows": finals,
        "steps": run.steps,
    }
    if console is not None:
        _demo_epilogue(console, gd, ids, finals)
    return summary


def _demo_epilogue(console: Any, gd: Any, ids: dict[str, str], finals: dict[str, str]) -> None:
    table = Table(title="Resultado", box=box.SIMPLE, title_justify="left")
    table.add_column("processo", no_wrap=True)
    table.add_column("situação", no_wrap=True)
    table.add_column("")
    kinds = {Workflows.TECHNICIAN_REGISTRATION: "technician", Workflows.BENEFICIARY_REGISTRATION: "beneficiaries"}
    for workflow_id, status in finals.items():
        kind = kinds.get(workflow_type_of(workflow_id), "request")
        table.add_row(workflow_id, status, status_label(status, kind))
    console.print(table)
    host = gd.settings.temporal_address.rpartition(":")[0] or "localhost"
    host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    ui = f"http://{host}:{os.environ.get('GD_UI_PORT', '8233')}"
    console.print("[bold]Continue daqui:[/]")
    for command, what in (
        (f"gd request status {ids['micro']}", "o painel completo: decisões, documentos, histórico de NS"),
        ("gd analyst queue", "o que espera o analista, pelo prazo"),
        ("gd request list --status AWAITING_APR", "quem ainda precisa registrar no APR Web"),
        (f"gd request status {ids['lapse']}", "daqui a 24 h: LAPSED (decurso de prazo)"),
    ):
        console.print(f"  [cyan]{command}[/]  [dim]# {what}[/]", soft_wrap=True)
    console.print(f"  Web UI do Temporal: {ui}  ·  e-mails enviados: {gd.settings.mail_dir}/*.eml", soft_wrap=True)

