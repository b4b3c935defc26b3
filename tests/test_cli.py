"""The `gd` command line in-process (typer's CliRunner): argument handling, who acts,
`--json` shapes, exit codes and the one-line pt-BR messages. The Temporal side is a fake
client that records what it was asked (the real journeys are in test_cli_e2e.py);
documents go to a real blob store and SQLite file in tmp_path."""

from __future__ import annotations

from tests.pdf_fixture import make_pdf
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import starter_cli
from cli import common as cli_common
from cli.formatting import access_panel, summary_table, time_left
from domain.calendar import TZ
from gd_client import Documents, GdClient, GdRefused, GdUnavailable, RequestSummary
from models.access import AccessStatus
from models.common import Actor, Decision, DocumentRef, Reason, SlaBreach
from models.settings import GdSettings

runner = CliRunner()


def now() -> datetime:
    """The clock at the moment of use (not at import: a long suite would age it), local."""
    return datetime.now(TZ)


CONTRACT_COMMANDS = [
    ["dev", "up"], ["worker"], ["docs", "upload"], ["request", "new"], ["request", "status"],
    ["request", "list"], ["request", "withdraw"], ["inquiry", "new"], ["apr", "register"],
    ["apr", "corrections"], ["analyst", "queue"], ["analyst", "approve"], ["analyst", "suspend"],
    ["analyst", "reprove"], ["analyst", "answer"], ["analyst", "pause-clock"],
    ["analyst", "resume-clock"], ["analyst", "declare-works"], ["reanalysis", "request"],
    ["inspection", "request"], ["inspection", "record"], ["technician", "register"],
    ["technician", "approve"], ["technician", "reject"], ["technician", "status"],
    ["beneficiaries", "register"], ["beneficiaries", "confirm"], ["beneficiaries", "reject"],
    ["beneficiaries", "status"], ["demo"], ["audit"], ["report"],
]  # fmt: skip


def pdf(label: str) -> bytes:
    return make_pdf(label)


def access_status(**overrides: Any) -> AccessStatus:
    raw: dict[str, Any] = dict(
        request_id="req-1", kind="request", status="AWAITING_APR", generation_class="micro",
        technician="CREA-MG-12345D", service_note="7000000001", protocol="2026000001",
        service_notes=["7000000001"], due_at=now() + timedelta(hours=23, minutes=30),
        due_rule="apr_window", next_actor="technician", created_at=now(), updated_at=now(),
    )  # fmt: skip
    raw.update(overrides)
    return AccessStatus(**raw)


class FakeGd:
    """Answers like GdClient; records (method, args) of every call."""

    def __init__(self, settings: GdSettings):
        self.settings = settings
        self.documents = Documents(settings)
        self.calls: list[tuple[str, tuple, dict]] = []
        self.answers: dict[str, Any] = {}

    def _record(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        answer = self.answers.get(name, access_status())
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def __getattr__(self, name: str):
        async def method(*args: Any, **kwargs: Any) -> Any:
            return self._record(name, *args, **kwargs)

        return method

    async def settle(self, workflow_id: str, timeout: float = 5.0) -> Any:
        return self.answers.get("settle", self.answers.get("last", access_status()))

    def call(self, name: str) -> tuple[tuple, dict]:
        found = [(a, k) for n, a, k in self.calls if n == name]
        assert found, f"{name} não foi chamado: {self.calls}"
        return found[-1]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("GD_ACTOR", "GD_DEBUG", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    return {
        "GD_DATABASE_URL": f"sqlite:///{tmp_path / 'gd.db'}",
        "GD_BLOB_DIR": str(tmp_path / "blobs"),
        "COLUMNS": "200",
    }


@pytest.fixture
def fake(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> FakeGd:
    settings = GdSettings(database_url=cli_env["GD_DATABASE_URL"], blob_dir=Path(cli_env["GD_BLOB_DIR"]))
    gd = FakeGd(settings)

    async def connect(_settings: GdSettings) -> FakeGd:
        return gd

    monkeypatch.setattr(cli_common, "connect_client", connect)
    return gd


def gd(args: list[str], env: dict[str, str], **extra_env: str):
    return runner.invoke(starter_cli.app, args, env={**env, **extra_env})


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"esperava uma linha no stderr, veio: {text!r}"
    return lines[0]


# --- commands and usage errors ----------------------------------------------------------


@pytest.mark.parametrize("path", CONTRACT_COMMANDS, ids=lambda p: " ".join(p))
def test_every_contract_command_exists(path: list[str], cli_env):
    result = gd([*path, "--help"], cli_env)
    assert result.exit_code == 0, result.output
    assert "Usage: gd " + " ".join(path) in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["request", "status"], "uso incorreto: falta o argumento"),
        (["request", "status", "x", "--bogus"], "uso incorreto: opção desconhecida: --bogus"),
        (["request", "statu"], "uso incorreto: comando desconhecido: statu (quis dizer: status?)"),
        (["request", "new", "--power", "muito"], "uso incorreto: valor inválido para --power: deve ser um número"),
        (["analyst", "suspend", "req-1"], "uso incorreto: falta a opção --reason"),
    ],
)
def test_usage_errors_are_one_pt_br_line_and_exit_2(args, expected, cli_env):
    result = gd(args, cli_env)
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith(expected) and line.endswith("--help`)")
    assert result.stdout == ""


# --- who acts --------------------------------------------------------------------------


def test_who_acts_comes_from_flags_or_gd_actor(fake, cli_env):
    args = ["analyst", "suspend", "req-1", "--reason", "DOC-ART-AUSENTE"]
    assert gd([*args, "--as", "ana"], cli_env).exit_code == 0
    assert fake.call("suspend")[0][1] == Actor(id="ana", role="analyst")  # the persona's role
    assert gd(args, cli_env, GD_ACTOR="supervisor:sofia").exit_code == 0
    assert fake.call("suspend")[0][1] == Actor(id="sofia", role="supervisor")
    assert gd([*args, "--role", "analyst"], cli_env, GD_ACTOR="supervisor:sofia").exit_code == 0
    assert fake.call("suspend")[0][1] == Actor(id="sofia", role="analyst")
    # --as names someone else: GD_ACTOR's role is not borrowed for them.
    assert gd([*args, "--as", "rt.joao"], cli_env, GD_ACTOR="supervisor:sofia").exit_code == 0
    assert fake.call("suspend")[0][1] == Actor(id="rt.joao", role="analyst")
    assert gd(["apr", "register", "req-1", "--ns", "7000000001", "--protocol", "2026000001",
               "--as", "rt.joao"], cli_env).exit_code == 0  # fmt: skip
    assert fake.call("register_apr")[0][1] == Actor(id="rt.joao", role="technician")


@pytest.mark.parametrize(
    ("extra", "env_actor", "message"),
    [
        ([], None, "informe quem age: --as ID --role PAPEL, ou GD_ACTOR=papel:id"),
        ([], "ana", "GD_ACTOR deve ter a forma papel:id (ex.: analyst:ana.silva), não 'ana'"),
        (["--as", "ana", "--role", "chefe"], None, "papel desconhecido; aceitos: customer"),
        (["--as", "ana silva"], None, "quem age: actor.id: formato inválido"),
    ],
)
def test_bad_actor_is_refused_with_exit_2(fake, cli_env, extra, env_actor, message):
    env = dict(cli_env)
    if env_actor:
        env["GD_ACTOR"] = env_actor
    result = gd(["analyst", "suspend", "req-1", "--reason", "DOC-ART-AUSENTE", *extra], env)
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith(message)
    assert not fake.calls


# --- refusals and failures ----------------------------------------------------------------


def test_a_refused_update_prints_the_validators_message(fake, cli_env):
    message = "pendencies: código(s) fora do catálogo de motivos para esta ação: DOC-X"
    fake.answers["suspend"] = GdRefused(message)
    result = gd(["analyst", "suspend", "req-1", "--reason", "DOC-X", "--as", "ana"], cli_env)
    assert result.exit_code == 2
    assert one_line(result.stderr) == message
    assert result.stdout == ""
    result = gd(["analyst", "suspend", "req-1", "--reason", "DOC-X", "--as", "ana", "--json"], cli_env)
    assert result.exit_code == 2 and one_line(result.stderr) == message
    assert json.loads(result.stdout) == {
        "ok": False, "exit_code": 2, "error": message,
        "problems": [{"field": "", "code": "refused", "message": message}],
    }  # fmt: skip
    assert fake.call("suspend")[0][2] == ["DOC-X"]


def test_unexpected_errors_exit_1_with_a_hint_and_a_traceback_on_demand(fake, cli_env):
    fake.answers["status"] = KeyError("boom")
    result = gd(["request", "status", "req-1"], cli_env)
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("erro inesperado (KeyError: 'boom')") and "GD_DEBUG=1" in line
    result = gd(["request", "status", "req-1"], cli_env, GD_DEBUG="1")
    assert result.exit_code == 1 and "Traceback (most recent call last)" in result.stderr

    fake.answers["status"] = GdUnavailable("o worker não respondeu")
    result = gd(["request", "status", "req-1"], cli_env)
    assert (result.exit_code, one_line(result.stderr)) == (1, "o worker não respondeu")


def test_no_temporal_server_is_exit_1_with_the_make_run_hint(cli_env):
    from tests.smtp_sink import free_port

    address = f"127.0.0.1:{free_port()}"
    result = gd(["request", "status", "req-1"], cli_env, GD_TEMPORAL_ADDRESS=address)
    assert result.exit_code == 1
    assert one_line(result.stderr) == f"não foi possível conectar ao Temporal em {address} (rode `make run`)"


def test_bad_settings_are_bad_input(cli_env):
    result = gd(["request", "status", "req-1"], cli_env, GD_SMTP_PORT="vinte")
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith("configuração inválida em GD_SMTP_PORT")


# --- documents ----------------------------------------------------------------------------


def test_docs_upload_stores_once_and_refuses_bad_files(cli_env, tmp_path: Path):
    art = tmp_path / "art.pdf"
    art.write_bytes(pdf("art"))
    result = gd(["docs", "upload", str(art), "--kind", "art_rrt", "--json"], cli_env)
    assert result.exit_code == 0, result.output
    ref = DocumentRef.model_validate(json.loads(result.stdout))
    assert (ref.kind, ref.filename, ref.size) == ("art_rrt", "art.pdf", art.stat().st_size)
    assert (Path(cli_env["GD_BLOB_DIR"]) / ref.sha256[:2] / ref.sha256[2:]).read_bytes() == art.read_bytes()
    human = gd(["docs", "upload", str(art), "--kind", "art_rrt"], cli_env)
    assert human.exit_code == 0 and ref.sha256 in human.stdout

    empty = tmp_path / "vazio.pdf"
    empty.write_bytes(b"")
    renamed = tmp_path / "nota.pdf"
    renamed.write_bytes(b"\x7fELF\x02\x01\x01")
    for path, kind, message in [
        (empty, "other", "vazio.pdf: arquivo vazio"),
        (renamed, "other", "nota.pdf: conteúdo não é PDF, PNG, JPEG, DWG ou DXF (arquivo executável renomeado?)"),
        (art, "foto", "art.pdf: tipo de documento 'foto' desconhecido; aceitos: commercial_id"),
        (tmp_path / "sumiu.pdf", "other", "arquivo não encontrado: sumiu.pdf"),
    ]:
        result = gd(["docs", "upload", str(path), "--kind", kind], cli_env)
        assert result.exit_code == 2, result.output
        assert one_line(result.stderr).startswith(message)


# --- request new / inquiry new ------------------------------------------------------------------


def test_request_new_from_flags_uploads_files_and_prints_the_numbers(fake, cli_env, tmp_path: Path):
    rg = tmp_path / "rg.pdf"
    rg.write_bytes(pdf("rg"))
    result = gd(["request", "new", "--request-id", "req-1", "--name", "Maria Souza",
                 "--document", "529.982.247-25", "--email", "maria@example.com.br",
                 "--installation", "3001234567", "--technician", "crea-mg-12.345-d",
                 "--power", "8.5", "--doc", f"commercial_id={rg}"], cli_env)  # fmt: skip
    assert result.exit_code == 0, result.output
    (raw,), _ = fake.call("start_request")
    assert raw["kind"] == "request" and raw["request_id"] == "req-1"
    assert raw["technician"] == {"council": "CREA", "uf": "MG", "registration": "12345D"}
    assert raw["generation"] == {"source": "solar", "modality": "local", "installed_power_kw": 8.5}
    assert raw["documents"][0].kind == "commercial_id"
    out = " ".join(result.stdout.split())
    for expected in ("gd-request-req-1", "NS 7000000001", "Protocolo 2026000001",
                     "registro no APR Web (24 h):", "faltam 23 h"):  # fmt: skip
        assert expected in out


def test_request_new_from_a_json_file_resolves_paths_beside_it(fake, cli_env, tmp_path: Path):
    folder = tmp_path / "pedido"
    folder.mkdir()
    (folder / "rg.pdf").write_bytes(pdf("rg"))
    (folder / "pedido.json").write_text(json.dumps({
        "request_id": "req-2",
        "customer": {"name": "Maria", "document": "529.982.247-25", "email": "m@example.com.br"},
        "technician": "CREA-MG-12345",
        "generation": {"source": "wind", "installed_power_kw": 20, "modality": "remote"},
        "documents": [{"kind": "commercial_id", "path": "rg.pdf"}],
    }), encoding="utf-8")  # fmt: skip
    result = gd(["request", "new", "--file", str(folder / "pedido.json"), "--json"], cli_env)
    assert result.exit_code == 0, result.output
    (raw,), _ = fake.call("start_request")
    assert raw["generation"] == {"source": "wind", "installed_power_kw": 20, "modality": "remote"}
    assert raw["documents"][0].filename == "rg.pdf"
    shown = json.loads(result.stdout)
    assert shown["workflow_id"] == "gd-request-req-1" and shown["status"] == "AWAITING_APR"

    (folder / "consulta.json").write_text(json.dumps({"kind": "inquiry"}), encoding="utf-8")
    result = gd(["request", "new", "--file", str(folder / "consulta.json")], cli_env)
    assert result.exit_code == 2
    assert one_line(result.stderr) == "kind: o arquivo declara 'inquiry'; use `gd inquiry new`"


def test_a_refused_intake_exits_2_listing_every_reason(fake, cli_env):
    from models.common import Problem

    fake.answers["start_request"] = access_status(
        status="REFUSED", service_note=None, protocol=None, due_at=None, next_actor=None,
        refusal_reasons=[Problem(field="technician", code="technician_not_approved", message="RT não aprovado"),
                         Problem(field="documents[0]", code="document_missing", message="não encontrado")],
    )  # fmt: skip
    result = gd(["request", "new", "--request-id", "req-1", "--json"], cli_env)
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        "solicitação req-1 recusada na triagem: technician: RT não aprovado; documents[0]: não encontrado"
    )
    assert json.loads(result.stdout)["refusal_reasons"][0]["code"] == "technician_not_approved"


def test_local_validation_refuses_before_any_server_call(cli_env, monkeypatch):
    from tests.test_client import NoServer

    async def connect(settings: GdSettings) -> GdClient:
        return GdClient(NoServer(), settings)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_common, "connect_client", connect)
    result = gd(["inquiry", "new", "--name", "Maria", "--email", "maria@", "--power", "-3"], cli_env)
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith("entrada recusada: ")
    assert "customer.email: e-mail inválido" in line and "generation.installed_power_kw: deve ser > 0" in line


# --- status, lists -------------------------------------------------------------------------------


def test_status_json_is_the_contract_snapshot_plus_the_workflow_id(fake, cli_env):
    result = gd(["request", "status", "req-1", "--json"], cli_env)
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["workflow_id"] == "gd-request-req-1"
    assert {"request_id", "kind", "status", "generation_class", "service_note", "protocol",
            "service_notes", "due_at", "clock_paused", "next_actor", "cycle", "sla_breaches",
            "documents", "decisions"} <= set(shown)  # fmt: skip
    assert fake.call("status")[0] == ("gd-request-req-1",)


def test_status_panel_shows_deadline_decisions_documents_and_ns_history():
    doc = DocumentRef(sha256="ab" * 32, kind="parecer", filename="parecer.pdf", size=2048,
                      content_type="application/pdf")  # fmt: skip
    st = access_status(
        status="UNDER_ANALYSIS", due_rule="parecer", next_actor="analyst", cycle=2,
        service_note="7000000002", service_notes=["7000000001", "7000000002"],
        due_at=datetime(2026, 4, 30, 23, 59, 59, tzinfo=TZ), documents=[doc],
        sla_breaches=[SlaBreach(step="parecer", due_at=now(), breached_at=now())],
        decisions=[Decision(at=now(), actor=Actor(id="ana", role="analyst"), action="suspend",
                            reasons=[Reason(code="DOC-ART-AUSENTE")], service_note="7000000001")],
    )  # fmt: skip
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(access_panel(st, "gd-request-req-1", now=datetime(2026, 4, 24, 12, tzinfo=TZ)))
    text = " ".join(console.export_text().split())
    for expected in (
        "UNDER_ANALYSIS em análise", "Próximo a agir analista",
        "emissão do parecer de acesso: 30/04/2026 23:59 — faltam 4 dias úteis (6 dias corridos)",
        "7000000001 → 7000000002", "1 prazo(s) descumprido(s)", "suspensão", "DOC-ART-AUSENTE",
        "parecer.pdf", "abababababab",
    ):
        assert expected in text, expected


def test_time_left_counts_business_days_of_minas_gerais():
    tz = TZ
    friday_noon = datetime(2026, 4, 17, 12, tzinfo=tz)
    # Tiradentes (21/04, Tuesday) is a holiday: Mon 20 and Wed 22 are the business days.
    assert time_left(datetime(2026, 4, 22, 23, 59, 59, tzinfo=tz), friday_noon) == (
        "faltam 2 dias úteis (5 dias corridos)"
    )
    assert time_left(datetime(2026, 4, 20, 23, 59, 59, tzinfo=tz), friday_noon) == (
        "falta 1 dia útil (3 dias corridos)"
    )
    assert time_left(friday_noon + timedelta(hours=5, minutes=12), friday_noon) == "faltam 5 h 12 min"
    assert time_left(datetime(2026, 4, 15, 23, 59, 59, tzinfo=tz), friday_noon) == "vencido há 2 dias úteis"
    assert time_left(friday_noon - timedelta(hours=3), friday_noon) == "vencido há 3 h"
    assert time_left(friday_noon, friday_noon, paused=True) == "prazo suspenso"
    assert time_left(None) == "sem prazo em curso"


def _row(name: str, status: str, due: datetime | None, **extra: Any) -> RequestSummary:
    return RequestSummary(workflow_id=f"gd-request-{name}", workflow_type="AccessRequest",
                          request_id=name, kind="request", status=status, due_at=due, **extra)  # fmt: skip


def test_request_list_passes_the_filters_and_shows_a_table(fake, cli_env):
    rows = [_row("req-a", "UNDER_ANALYSIS", now() + timedelta(days=3), generation_class="micro",
                 service_note="7000000001", technician="CREA-MG-12345D", next_actor="analyst"),
            _row("req-b", "SUSPENDED", now() - timedelta(days=4), sla_breached=True)]  # fmt: skip
    fake.answers["list_requests"] = rows
    result = gd(["request", "list", "--status", "UNDER_ANALYSIS", "--status", "SUSPENDED",
                 "--overdue", "--class", "micro", "--technician", "CREA-MG-12345D",
                 "--due-within", "5", "--limit", "10"], cli_env)  # fmt: skip
    assert result.exit_code == 0, result.output
    _, kwargs = fake.call("list_requests")
    assert {k: kwargs[k] for k in ("status", "overdue", "due_within_days", "technician",
                                   "generation_class", "limit")} == {
        "status": ["UNDER_ANALYSIS", "SUSPENDED"], "overdue": True, "due_within_days": 5,
        "technician": "CREA-MG-12345D", "generation_class": "micro", "limit": 10,
    }  # fmt: skip
    out = result.stdout
    assert "Solicitações — 2 processo(s), por prazo" in out
    assert "req-a" in out and "req-b" in out and "violado" in out and "vencido há" in out

    listed = gd(["request", "list", "--json"], cli_env)
    assert [r["request_id"] for r in json.loads(listed.stdout)] == ["req-a", "req-b"]
    fake.answers["analyst_queue"] = []
    queue = gd(["analyst", "queue", "--class", "mini"], cli_env)
    assert queue.exit_code == 0 and "nenhum processo encontrado" in queue.stdout
    assert fake.call("analyst_queue")[1]["generation_class"] == "mini"


def test_summary_table_drops_secondary_columns_when_narrow():
    from rich.console import Console

    rows = [_row("req-bem-comprido-0001", "UNDER_ANALYSIS", now() + timedelta(days=3),
                 technician="CREA-MG-12345D", service_note="7000000001")]  # fmt: skip
    for width, visible, hidden in ((160, ["CREA-MG-12345D", "7000000001"], []),
                                   (80, ["req-bem-comprido-", "UNDER_ANALYSIS"], ["CREA-MG-12345D", "7000000001"])):
        console = Console(width=width, record=True)
        console.print(summary_table(rows, "t", width=width))
        text = console.export_text().replace("\n", "")
        assert all(v in text for v in visible), text
        assert not any(h in text for h in hidden)


# --- the other updates: the arguments each one sends -----------------------------------------------


def test_each_update_command_sends_its_arguments(fake, cli_env, tmp_path: Path):
    parecer = tmp_path / "parecer.pdf"
    parecer.write_bytes(pdf("parecer"))
    fix = tmp_path / "art-corrigida.pdf"
    fix.write_bytes(pdf("fix"))
    cases = [
        (["analyst", "approve", "req-1", "--parecer", str(parecer), "--requires-works", "--notes", "obs"],
         "approve", lambda a, k: (a[2].kind, a[3], a[4]) == ("parecer", True, "obs")),
        (["analyst", "reprove", "req-1", "-r", "OTHER:texto livre", "-r", "DOC-ILEGIVEL"],
         "reprove", lambda a, k: a[2] == ["OTHER:texto livre", "DOC-ILEGIVEL"]),
        (["analyst", "answer", "req-1", "--answer", "há capacidade"],
         "answer_inquiry", lambda a, k: a[2:] == ("há capacidade", [])),
        (["analyst", "declare-works", "req-1", "--reason", "reforço"], "declare_works", lambda a, k: a[2] == "reforço"),
        (["analyst", "pause-clock", "req-1", "--reason", "ONS"], "pause_clock", lambda a, k: a[2] == "ONS"),
        (["analyst", "resume-clock", "req-1"], "resume_clock", lambda a, k: len(a) == 2),
        (["apr", "corrections", "req-1", "--doc", str(fix)], "attach_corrections",
         lambda a, k: a[2][0].kind == "correction"),
        (["reanalysis", "request", "req-1", "--reproved-ns", "7000000001"], "request_reanalysis",
         lambda a, k: a[1].role == "technician" and a[2] == "7000000001"),
        (["inspection", "request", "req-1"], "request_inspection", lambda a, k: a[1].role == "customer"),
        (["inspection", "record", "req-1", "--result", "reproved", "--finding", "sem placa"],
         "record_inspection", lambda a, k: a[1].role == "inspector" and a[2:4] == ("reproved", ["sem placa"])),
        (["request", "withdraw", "req-1", "--reason", "desisti"], "withdraw", lambda a, k: a[1].role == "customer"),
        (["technician", "approve", "crea-mg-12.345-d"], "approve_technician",
         lambda a, k: a[0] == "gd-technician-CREA-MG-12345D"),
        (["technician", "reject", "CREA-MG-12345D", "-r", "RT-REGISTRO-IRREGULAR"], "reject_technician",
         lambda a, k: a[2] == ["RT-REGISTRO-IRREGULAR"]),
        (["beneficiaries", "confirm", "req-1"], "confirm_beneficiaries", lambda a, k: a[0] == "gd-beneficiaries-req-1"),
        (["beneficiaries", "reject", "req-1", "-r", "UC-RECEBEDORA-OUTRO-TITULAR"], "reject_beneficiaries",
         lambda a, k: a[2] == ["UC-RECEBEDORA-OUTRO-TITULAR"]),
    ]  # fmt: skip
    for args, method, check in cases:
        result = gd([*args, "--as", "someone", "--json"], cli_env)
        assert result.exit_code == 0, (args, result.output)
        call_args, call_kwargs = fake.call(method)
        assert check(call_args, call_kwargs), (args, call_args)
        assert json.loads(result.stdout)["status"] == "AWAITING_APR"


def test_beneficiaries_register_builds_the_allocation(fake, cli_env):
    from models.beneficiaries import BeneficiaryStatus

    fake.answers["start_beneficiaries"] = BeneficiaryStatus(request_id="req-1", status="PENDING_REVIEW")
    result = gd(["beneficiaries", "register", "--request-id", "req-1", "--generator-installation",
                 "3001234567", "--holder-document", "529.982.247-25", "--modality", "remote",
                 "--unit", "3001234568:529.982.247-25:60,5", "--unit", "3001234569:529.982.247-25:39.5",
                 "--as", "maria"], cli_env)  # fmt: skip
    (raw,), _ = fake.call("start_beneficiaries")
    assert raw["allocation"] == {"mode": "percent", "units": [
        {"installation_number": "3001234568", "holder_document": "529.982.247-25", "percent": "60.5"},
        {"installation_number": "3001234569", "holder_document": "529.982.247-25", "percent": "39.5"},
    ]}  # fmt: skip
    assert raw["actor"] == {"id": "maria", "role": "customer"}
    assert result.exit_code == 0 and "UCs recebedoras de req-1" in result.stdout
    bad = gd(["beneficiaries", "register", "--request-id", "req-1", "--unit", "3001234568", "--as", "m"], cli_env)
    assert bad.exit_code == 2
    assert one_line(bad.stderr) == "--unit '3001234568': use INSTALAÇÃO:CPF_OU_CNPJ:PERCENTUAL"


def test_technician_change_and_confirm_email(fake, cli_env):
    """issue 17 item 4: `gd technician change-email` / `confirm-email` (the RT acts by default)."""
    from datetime import timezone

    from models.technician import EmailChangeStatus

    fake.answers["change_technician_email"] = EmailChangeStatus(
        technician="CREA-MG-123456", status="AWAITING_CONFIRMATION", new_email_hint="n***@exemplo.org",
        expires_at=datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc))
    result = gd(["--council-key", "CREA-MG-123456", "technician", "change-email", "CREA-MG-123456",
                 "--email", "novo@exemplo.org", "--as", "rt.joao"], cli_env)
    assert result.exit_code == 0, result.output
    args, _ = fake.call("change_technician_email")
    assert args[0] == "CREA-MG-123456" and args[2] == "novo@exemplo.org"
    assert (args[1].role, args[1].council_key) == ("technician", "CREA-MG-123456")
    assert "Código enviado para n***@exemplo.org" in result.stdout
    assert "05/12/2026 às 09:00" in result.stdout

    message = "code: código incorreto; nada mudou; restam 4 tentativa(s)"
    fake.answers["confirm_technician_email"] = GdRefused(message)
    result = gd(["technician", "confirm-email", "CREA-MG-123456", "--code", "000000", "--as", "ana",
                 "--role", "analyst"], cli_env)
    assert result.exit_code == 2 and one_line(result.stderr) == message
    assert fake.call("confirm_technician_email")[0][2] == "000000"


# --- registrations: what `register` and `status` print ------------------------------------


def refused_technician():
    from models.common import Problem
    from models.technician import TechnicianStatus

    return TechnicianStatus(technician="CREA-MG-123456", status="REFUSED", refusal_reasons=[
        Problem(field="cpf", code="invalid", message="CPF inválido: dígitos verificadores não conferem"),
        Problem(field="email", code="invalid", message="e-mail inválido"),
    ])  # fmt: skip


def test_technician_register_refused_exits_2_with_every_reason(fake, cli_env):
    fake.answers["start_technician"] = refused_technician()
    result = gd(["technician", "register", "--name", "João", "--cpf", "111.111.111-11", "--email", "joao@",
                 "--council", "crea", "--uf", "MG", "--registration", "123456"], cli_env)
    (raw,), _ = fake.call("start_technician")
    assert raw["council"] == "CREA" and raw["cpf"] == "111.111.111-11"
    assert result.exit_code == 2
    assert one_line(result.stderr) == ("cadastro do RT CREA-MG-123456 recusado: cpf: CPF inválido: dígitos "
                                       "verificadores não conferem; email: e-mail inválido")
    assert "Responsável técnico CREA-MG-123456" in result.stdout
    assert "gd-technician-CREA-MG-123456" in result.stdout and "recusado na triagem" in result.stdout
    as_json = gd(["technician", "register", "--name", "João", "--json"], cli_env)
    assert as_json.exit_code == 2
    shown = json.loads(as_json.stdout)
    assert (shown["workflow_id"], shown["status"]) == ("gd-technician-CREA-MG-123456", "REFUSED")


def test_beneficiaries_register_refused_exits_2_with_the_reason(fake, cli_env):
    from models.beneficiaries import BeneficiaryStatus
    from models.common import Problem

    fake.answers["start_beneficiaries"] = BeneficiaryStatus(request_id="req-1", status="REFUSED", refusal_reasons=[
        Problem(field="allocation.units", code="sum", message="os percentuais somam 99.99, devem somar exatamente 100"),
    ])  # fmt: skip
    result = gd(["beneficiaries", "register", "--request-id", "req-1", "--generator-installation", "3001234567",
                 "--unit", "3001234568:529.982.247-25:99,99", "--as", "maria"], cli_env)
    assert result.exit_code == 2
    assert one_line(result.stderr) == ("cadastramento de UCs recebedoras de req-1 recusado: allocation.units: "
                                       "os percentuais somam 99.99, devem somar exatamente 100")
    assert "UCs recebedoras de req-1" in result.stdout and "gd-beneficiaries-req-1" in result.stdout


@pytest.mark.parametrize(("args", "workflow_id", "title"), [
    (["technician", "status", "crea-mg-123456"], "gd-technician-CREA-MG-123456", "Responsável técnico CREA-MG-123456"),
    (["beneficiaries", "status", "req-1"], "gd-beneficiaries-req-1", "UCs recebedoras de req-1"),
    (["beneficiaries", "status", "gd-beneficiaries-req-1"], "gd-beneficiaries-req-1", "UCs recebedoras de req-1"),
], ids=["technician", "beneficiaries", "beneficiaries by workflow id"])  # fmt: skip
def test_registration_status_asks_the_workflow_and_shows_it(fake, cli_env, args, workflow_id, title):
    from models.beneficiaries import BeneficiaryStatus
    from models.technician import TechnicianStatus

    fake.answers["status"] = (
        TechnicianStatus(technician="CREA-MG-123456", status="PENDING_REVIEW", next_actor="analyst")
        if args[0] == "technician" else
        BeneficiaryStatus(request_id="req-1", status="PENDING_REVIEW", next_actor="analyst")
    )  # fmt: skip
    result = gd(args, cli_env)
    assert result.exit_code == 0, result.output
    assert fake.call("status")[0] == (workflow_id,)
    assert title in result.stdout and workflow_id in result.stdout and "em análise" in result.stdout
    as_json = gd([*args, "--json"], cli_env)
    assert as_json.exit_code == 0
    shown = json.loads(as_json.stdout)
    assert (shown["workflow_id"], shown["status"], shown["next_actor"]) == (workflow_id, "PENDING_REVIEW", "analyst")
