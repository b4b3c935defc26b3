"""The customer base (issue 17 item 2 and 3) and who may start a BeneficiaryRegistration
(issue 16): CSV import, the intake checks, on the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from activities import installations
from activities.records import RecordActivities
from activities.store import Store
from activities.tables import Installation
from models.activities import IntakeCheck, RequestRow, Transition
from tests.store_fixtures import (  # noqa: F401
    access_raw,
    blobs,
    database,
    make_cpf,
    records,
    set_technician,
    store,
    upload_pdf,
)

HEADER = "instalacao;documento_titular;endereco;classe;gd_conectada\n"
HOLDER = make_cpf(123456789)  # holder of 3001234567 in the records fixture
OTHER = make_cpf(222333444)
COMPANY = "11.222.333/0001-81"
BRANCH = "11222333000262"  # same CNPJ root 11222333


def _rows(store: Store) -> dict[str, tuple]:
    with store.session(write=False) as s:
        from sqlmodel import select

        return {r.number: (r.holder_document, r.holder_key, r.customer_class, r.gd_connected)
                for r in s.exec(select(Installation)).all()}


# --- import -----------------------------------------------------------------------------


def test_import_is_validated_and_idempotent(store: Store) -> None:
    data = (HEADER
            + "3001234500;529.982.247-25;Rua A, 1;residencial;nao\n"
            + "3001234501;11.222.333/0001-81;Rua B, 2;comercial;sim\n").encode()
    first = installations.import_csv(store, data)
    assert (first.ok, first.rows, first.inserted, first.updated, first.unchanged) == (True, 2, 2, 0, 0)
    assert _rows(store) == {
        "3001234500": ("52998224725", "52998224725", "residencial", False),
        "3001234501": ("11222333000181", "11222333", "comercial", True),
    }
    again = installations.import_csv(store, data)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    # A changed holder is an update, by installation number.
    changed = (HEADER + "3001234500;111.444.777-35;Rua A, 1;residencial;nao\n").encode()
    third = installations.import_csv(store, changed)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 0)
    assert _rows(store)["3001234500"][0] == "11144477735"


def test_bad_rows_are_reported_by_line_and_nothing_is_written(store: Store) -> None:
    data = ("instalacao,documento_titular,endereco,classe,gd_conectada\n"   # line 1
            "3001234500,529.982.247-25,Rua A,residencial,nao\n"               # 2: good
            "300123,529.982.247-25,Rua B,residencial,nao\n"                   # 3: 6 digits
            "\n"                                                               # 4: blank
            "3001234502,123.456.789-00,Rua C,comercial,talvez\n"              # 5: CPF, flag
            "3001234500,529.982.247-25,Rua D,mansao,sim\n"                    # 6: repeated, class
            "3001234503,529.982.247-25\n").encode()                            # 7: columns
    report = installations.import_csv(store, data)
    assert not report.ok
    assert [line for line, _ in report.problems] == [3, 5, 6, 7]
    messages = dict(report.problems)
    assert messages[3] == "instalacao: deve ter exatamente 10 dígitos"
    assert messages[5].startswith("documento_titular: CPF inválido")
    assert messages[5].endswith("gd_conectada: use sim ou nao")
    assert messages[6].startswith("instalacao: 3001234500 repetida (já na linha 2); classe: desconhecida")
    assert messages[7] == "esperadas 5 colunas, encontradas 2"
    assert _rows(store) == {}


def test_a_bad_header_refuses_the_file(store: Store) -> None:
    import pytest

    with pytest.raises(installations.ImportRefused) as caught:
        installations.import_csv(store, b"numero;titular\n3001234500;52998224725\n")
    assert "faltam: instalacao, documento_titular, endereco, classe, gd_conectada" in str(caught.value)
    with pytest.raises(installations.ImportRefused):
        installations.import_csv(store, "instalacao;x\n".encode("latin-1") + b"\xe9\n")


def test_holders_list_by_cpf_and_by_cnpj_root(store: Store) -> None:
    installations.load_demo(store)
    assert [i.number for i in installations.of_holder(store, "52998224725")] == [
        "3001234567", "3001234568", "3001234569"]
    # A branch's CNPJ finds every installation of the company (same root).
    assert [i.number for i in installations.of_holder(store, BRANCH)] == [
        "3009876500", "3009876501", "3009876502"]
    assert installations.of_holder(store, "11144477735")[0].gd_connected is True


# --- intake of an access request ---------------------------------------------------------


def _check(raw: Any, process: str = "access", workflow_id: str = "gd-request-req-1") -> IntakeCheck:
    return IntakeCheck(process=process, workflow_id=workflow_id, raw=raw)


def _ready(records: RecordActivities, store: Store, blobs) -> Any:
    set_technician(records, "CREA-MG-12345", "APPROVED")
    return upload_pdf(store, blobs)


def test_installation_must_exist_and_belong_to_the_holder(records, store, blobs) -> None:
    ref = _ready(records, store, blobs)
    missing = records.validate_intake(_check(access_raw([ref], cpf=HOLDER, installation_number="3007777777")))
    assert [(p.field, p.code) for p in missing.problems] == [
        ("installation_number", "INSTALACAO-NAO-ENCONTRADA")]
    assert "instalação 3007777777 não encontrada na base de clientes" in missing.problems[0].message
    other = records.validate_intake(_check(access_raw([ref], cpf=OTHER)))
    assert [(p.field, p.code) for p in other.problems] == [
        ("installation_number", "TITULARIDADE-DIVERGENTE")]
    own = records.validate_intake(_check(access_raw([ref], cpf=HOLDER)))
    assert own.problems == [] and own.normalized["installation_number"] == "3001234567"
    # Without an installation number the CPF alone is enough (seed).
    bare = records.validate_intake(_check(access_raw([ref], cpf=OTHER, installation_number=None)))
    assert bare.problems == []


def test_a_cnpj_branch_holds_the_company_installations(records, store, blobs) -> None:
    ref = _ready(records, store, blobs)
    installations.import_csv(store, (HEADER + f"3001234580;{COMPANY};Rua E;industrial;nao\n").encode())
    branch = records.validate_intake(_check(access_raw([ref], cpf=BRANCH, installation_number="3001234580")))
    assert branch.problems == []
    outsider = records.validate_intake(_check(
        access_raw([ref], cpf="11.444.777/0001-61", installation_number="3001234580")))
    assert [p.code for p in outsider.problems] == ["TITULARIDADE-DIVERGENTE"]


def test_the_check_can_be_turned_off(store, blobs) -> None:
    off = RecordActivities(store, blobs, installations_check=False)
    set_technician(off, "CREA-MG-12345", "APPROVED")
    ref = upload_pdf(store, blobs)
    result = off.validate_intake(_check(access_raw([ref], cpf=OTHER, installation_number="3007777777")))
    assert result.problems == []


def test_the_setting_reads_gd_installations_check(monkeypatch) -> None:
    from models.settings import GdSettings

    monkeypatch.setenv("GD_INSTALLATIONS_CHECK", "off")
    assert GdSettings().installations_check == "off"
    monkeypatch.setenv("GD_INSTALLATIONS_CHECK", "maybe")
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        GdSettings()


# --- BeneficiaryRegistration: the holder's act; older plants --------------------------------


def _beneficiaries(actor: dict, *, generator: str = "3001234567", holder: str = HOLDER,
                   request_id: str = "req-1") -> dict:
    return {
        "request_id": request_id,
        "generator_installation": generator,
        "holder_document": holder,
        "modality": "remote",
        "actor": actor,
        "allocation": {"mode": "priority", "units": [
            {"installation_number": "3001234568", "holder_document": holder, "priority": 1}]},
    }


def _connect(records: RecordActivities, request_id: str = "req-1", installation: str = "3001234567") -> None:
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    records.record_transition(Transition(
        workflow_id=f"gd-request-{request_id}", event_key="connected", process="access",
        action="connected", status="CONNECTED", at=now,
        request=RequestRow(workflow_id=f"gd-request-{request_id}", request_id=request_id,
                           kind="request", status="CONNECTED", installation_number=installation,
                           created_at=now, updated_at=now)))


def _codes(records: RecordActivities, raw: dict) -> list[tuple[str, str]]:
    result = records.validate_intake(_check(raw, "beneficiaries", f"gd-beneficiaries-{raw['request_id']}"))
    return [(p.field, p.code) for p in result.problems]


def test_only_the_plant_holder_or_a_system_starts_the_registration(records, store, blobs) -> None:
    ref = _ready(records, store, blobs)
    # The accepted request records its holder (the customer's CPF).
    assert records.validate_intake(_check(access_raw([ref], cpf=HOLDER))).problems == []
    _connect(records)
    stranger = {"id": "outro", "role": "customer", "document": OTHER}
    # Someone else's units and someone else's actor: both refused.
    assert _codes(records, _beneficiaries(stranger, holder=OTHER)) == [
        ("holder_document", "TITULARIDADE-DIVERGENTE"), ("actor", "not_plant_holder")]
    assert _codes(records, _beneficiaries(stranger)) == [("actor", "not_plant_holder")]
    analyst = {"id": "ana", "role": "analyst"}
    assert _codes(records, _beneficiaries(analyst)) == [("actor", "not_plant_holder")]
    assert _codes(records, _beneficiaries({"id": "maria", "role": "customer", "document": HOLDER})) == []
    assert _codes(records, _beneficiaries({"id": "portal", "role": "system"})) == []


def test_the_recorded_holder_wins_over_the_customer_base(records, store, blobs) -> None:
    """A request's own customer is the holder even if the base later changes hands."""
    ref = _ready(records, store, blobs)
    assert records.validate_intake(_check(access_raw([ref], cpf=HOLDER))).problems == []
    _connect(records)
    installations.import_csv(store, (HEADER + f"3001234567;{OTHER};Rua A;residencial;nao\n").encode())
    assert _codes(records, _beneficiaries({"id": "maria", "role": "customer", "document": HOLDER})) == []


def test_a_plant_connected_before_this_system_qualifies(records, store) -> None:
    installations.import_csv(store, (
        HEADER + f"3005550000;{OTHER};Rua Ouro Preto, 77;residencial;sim\n"
        + f"3005550009;{OTHER};Rua Ouro Preto, 99;residencial;nao\n").encode())
    owner = {"id": "joao", "role": "customer", "document": OTHER}
    old = _beneficiaries(owner, generator="3005550000", holder=OTHER, request_id="legado-1")
    assert _codes(records, old) == []
    # Not marked as a connected GD plant: still refused.
    plain = _beneficiaries(owner, generator="3005550009", holder=OTHER, request_id="legado-2")
    assert _codes(records, plain) == [("request_id", "generator_not_connected")]
    # The older plant's holder is the base's: someone else is refused.
    other = _beneficiaries({"id": "x", "role": "customer", "document": HOLDER},
                           generator="3005550000", holder=OTHER, request_id="legado-3")
    assert _codes(records, other) == [("actor", "not_plant_holder")]


# --- gd installations --------------------------------------------------------------------


def test_cli_import_reports_bad_lines_and_is_idempotent(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from cli.app import app

    runner = CliRunner()
    env = {"GD_DATABASE_URL": f"sqlite:///{tmp_path / 'gd.db'}"}
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "3001234500;529.982.247-25;Rua A;residencial;nao\n"
                   + "3001234501;529.982.247-26;Rua B;residencial;nao\n", "utf-8")
    result = runner.invoke(app, ["installations", "import", str(bad)], env=env)
    assert result.exit_code == 2
    assert "linha 3: documento_titular: CPF inválido" in result.output
    assert "nada foi importado" in result.output
    listed = runner.invoke(app, ["installations", "list", "--document", "52998224725", "--json"], env=env)
    assert json.loads(listed.stdout) == []
    demo = str(installations.DEMO_CSV)
    first = runner.invoke(app, ["installations", "import", demo, "--json"], env=env)
    again = runner.invoke(app, ["installations", "import", demo, "--json"], env=env)
    assert (json.loads(first.stdout)["inserted"], json.loads(again.stdout)["unchanged"]) == (8, 8)
    listed = runner.invoke(app, ["installations", "list", "--document", "529.982.247-25", "--json"], env=env)
    assert [r["number"] for r in json.loads(listed.stdout)] == ["3001234567", "3001234568", "3001234569"]
