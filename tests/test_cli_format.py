"""What `gd` prints, read as a person reads it: caller text shown as typed (never as rich
markup), and the SLA report readable in an 80-column terminal."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

import starter_cli
from activities.store import Store
from audit import sla
from cli.formatting import access_panel, beneficiaries_panel, technician_panel
from models.access import AccessStatus
from models.beneficiaries import BeneficiaryDecision, BeneficiaryStatus
from models.common import Actor, Decision, Problem, Reason
from models.settings import get_settings
from models.technician import TechnicianStatus

NOW = datetime(2026, 4, 24, 15, tzinfo=timezone.utc)
# What callers may type into a reason, a note or a finding.
MARKUP = "[bold red]URGENTE[/bold red]"
LINK = "[link=https://exemplo.invalido/phish]clique aqui[/link]"


def rendered(renderable, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_caller_text_prints_literally_not_as_rich_markup():
    decision = Decision(
        at=NOW, actor=Actor(id="ana", role="analyst"), action="suspend",
        reasons=[Reason(code="OTHER", text=MARKUP)], text=LINK, service_note="7000000001",
    )  # fmt: skip
    access = AccessStatus(
        request_id="req-1", kind="request", status="SUSPENDED", generation_class="micro",
        service_note="7000000001", protocol="2026000001", service_notes=["7000000001"],
        inspection_findings=[MARKUP], decisions=[decision], created_at=NOW, updated_at=NOW,
        refusal_reasons=[Problem(field="customer.name", code="x", message=LINK)],
    )  # fmt: skip
    text = rendered(access_panel(access, "gd-request-req-1", now=NOW))
    flat = "".join(text.split())
    assert "".join(MARKUP.split()) in flat
    assert "".join(LINK.split()) in flat

    technician = TechnicianStatus(technician="CREA-MG-12345D", status="REJECTED", decisions=[decision])
    flat = "".join(rendered(technician_panel(technician, "gd-technician-CREA-MG-12345D", now=NOW)).split())
    assert "".join(MARKUP.split()) in flat and "".join(LINK.split()) in flat

    rejected = BeneficiaryDecision(at=NOW, actor=Actor(id="ana", role="analyst"), action="reject",
                                   reasons=[Reason(code="OTHER", text=LINK)])  # fmt: skip
    beneficiaries = BeneficiaryStatus(request_id="req-1", status="REJECTED", decisions=[rejected])
    flat = "".join(rendered(beneficiaries_panel(beneficiaries, "gd-beneficiaries-req-1", now=NOW)).split())
    assert "".join(LINK.split()) in flat


# Every label of the SLA summary and of a breach, as a person looks for it.
SLA_LABELS = (
    "concluídos", "no prazo", "% no prazo", "duração média (dias)", "p90 (dias)", "violações",
    "em aberto", "vencidos em aberto",
)  # fmt: skip
BREACH_LABELS = ("processo", "vencimento", "concluído em", "atraso (d)")


def _assert_readable(text: str, labels: tuple[str, ...], width: int) -> None:
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    for wanted in labels:
        assert any(wanted in line for line in lines), f"{wanted!r} partido em linhas:\n{text}"


def test_gd_report_sla_at_80_columns_keeps_every_label_on_one_line(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'gd.db'}"
    store = Store(url)
    store.create_schema()
    store.dispose()
    get_settings.cache_clear()  # the settings are cached per process: read this env
    try:
        result = CliRunner().invoke(
            starter_cli.app, ["report", "sla", "--from", "2026-03-01", "--to", "2026-03-31"],
            env={"GD_DATABASE_URL": url, "COLUMNS": "80"},
        )  # fmt: skip
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Cumprimento de prazos — 01/03/2026 a 31/03/2026 (0 processos)" in result.stdout
    _assert_readable(result.stdout, SLA_LABELS, 80)
    assert "emissão do parecer de acesso (parecer)" in result.stdout


def test_sla_tables_narrow_and_wide_show_the_same_figures():
    closed = datetime(2026, 3, 12, 18, tzinfo=timezone.utc)  # 15:00 in São Paulo
    breach = sla.Breach(
        workflow_id="gd-request-req-20260301-abc123", rule="parecer", opened_at=closed - timedelta(days=9),
        due_at=closed - timedelta(days=2, hours=12), closed_at=closed, closed_by="ana", delay_days=2.5,
    )  # fmt: skip
    rules = [sla.RuleStats(rule="parecer", count=12, on_time=10, durations=[3.0, 5.5, 20.0],
                           breaches=[breach], open_windows=3)]  # fmt: skip
    report = sla.SlaReport(first_day=date(2026, 3, 1), last_day=date(2026, 3, 31), start=closed, end=closed,
                           rules=rules, processes=12, generated_at=closed)  # fmt: skip
    narrow = "\n".join(rendered(t, 80) for t in sla.rich_tables(report, width=80))
    _assert_readable(narrow, SLA_LABELS + BREACH_LABELS, 80)
    for figure in ("83,3 %", "9,5", "20,0", "gd-request-req-20260301-abc123", "12/03/2026 15:00", "2,5"):
        assert figure in narrow, figure
    wide = "\n".join(rendered(t, 160) for t in sla.rich_tables(report, width=160))
    header = next(line for line in wide.splitlines() if "concluídos" in line)
    for column in ("regra", "lado", "concluídos", "no prazo", "% no prazo", "média (d)", "p90 (d)",
                   "violações", "abertos", "vencidos"):  # fmt: skip
        assert column in header, column
    assert "83,3 %" in wide and "12/03/2026 15:00" in wide
