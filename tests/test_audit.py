"""Audit: export → replay round trip on a real server, the timeline, and the SLA report's
figures against numbers computed by hand."""

from __future__ import annotations

import asyncio
import hashlib
import json
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from typer.testing import CliRunner

from audit import export as exports
from audit import sla, timeline
from audit.cli import audit_app, report_app
from audit.replay import replay
from tests import make_histories as golden
from tests.make_histories import HISTORIES
from tests.servers import SERVER_STARTUP

SP = ZoneInfo("America/Sao_Paulo")


@contextmanager
def gd_env(**values: str):
    """GD_* settings for a CLI run (get_settings is cached per process)."""
    from models.settings import get_settings

    get_settings.cache_clear()
    try:
        yield {f"GD_{k.upper()}": v for k, v in values.items()}
    finally:
        get_settings.cache_clear()


async def invoke(app, args: list[str], **settings: str):
    """Run a CLI command in a thread (it runs its own event loop, as from a shell)."""
    with gd_env(**settings) as env:
        return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


def address(client) -> str:
    return client.service_client.config.target_host


# --- export → replay round trip, every workflow type -----------------------------------


@pytest.fixture
async def golden_worker(client, task_queue):
    async with golden.golden_worker(client, task_queue) as running:
        yield running


async def test_export_replay_round_trip_every_workflow_type(client, env, task_queue, golden_worker, tmp_path):
    tag = f"rt-{task_queue[-8:]}"
    produced: dict[str, str] = {}
    for scenario in (golden.access_continue_as_new, golden.technician_rejected, golden.beneficiaries_rejected):
        produced.update(await scenario(client, env, task_queue, tag))
    chain_id = produced["access-continue-as-new"]

    # The CLI writes the chain; the file reads back into the server's very histories.
    out = tmp_path / "chain.json"
    result = await invoke(audit_app, ["export", chain_id, "-o", str(out)], temporal_address=address(client))
    assert result.exit_code == 0, result.output
    assert "2 execução(ões)" in result.output
    document = json.loads(out.read_text())
    assert document["format"] == "gd-history-export/1" and document["workflow_type"] == "AccessRequest"
    chain = exports.read(out)
    assert len(chain.runs) == 2
    first, second = chain.runs
    assert exports.previous_run_id(second.history) == first.run_id
    assert exports.next_run_id(first.history) == second.run_id
    for run in chain.runs:
        server = await client.get_workflow_handle(chain_id, run_id=run.run_id).fetch_history()
        assert run.history.events == server.events

    loaded = [chain] + [await exports.fetch_chain(client, wid) for wid in produced.values() if wid != chain_id]
    assert {e.workflow_type for e in loaded} == {"AccessRequest", "TechnicianRegistration", "BeneficiaryRegistration"}
    for export in loaded:
        path = tmp_path / f"{export.workflow_id}.json.gz"
        export.write(path)
        again = exports.read(path)
        assert [r.history.events for r in again.runs] == [r.history.events for r in export.runs]
    files = sorted(tmp_path.glob("*.json*"))
    outcomes = await replay([exports.read(p) for p in files])
    assert len(outcomes) == len(files) >= len(loaded)
    assert {o.workflow_id for o in outcomes} == {e.workflow_id for e in loaded}
    assert all(o.ok for o in outcomes), [o.line() for o in outcomes]

    # Straight from the server, by id, through the CLI.
    for workflow_id in produced.values():
        result = await invoke(audit_app, ["replay", workflow_id], temporal_address=address(client))
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"OK     {workflow_id} (")


async def test_export_and_timeline_of_an_unknown_workflow_exit_2(client):
    for args in (["export", "gd-request-nao-existe"], ["timeline", "gd-request-nao-existe"]):
        result = await invoke(audit_app, args, temporal_address=address(client))
        assert result.exit_code == 2, result.output
        assert "gd-request-nao-existe não encontrado" in result.output


async def test_timeline_from_the_server(client, env, task_queue, golden_worker, tmp_path):
    produced = await golden.technician_rejected(client, env, task_queue, f"tl-{task_queue[-8:]}")
    workflow_id = produced["technician-rejected"]
    page = tmp_path / "timeline.html"
    result = await invoke(audit_app, ["timeline", workflow_id, "--html", str(page)], temporal_address=address(client))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert workflow_id in html and "RT-REGISTRO-IRREGULAR" in html and "Registro suspenso no CREA-MG" in html
    assert "joao.pereira@example.com.br" not in html and "j***@example.com.br" in html


async def test_replay_by_visibility_query(env, tmp_path):
    """--query needs visibility: the dev server (the time-skipping one has no list)."""
    from models import search_attributes as sa
    from tests.conftest import _binary
    from worker import data_converter

    if env.supports_time_skipping:
        server = await WorkflowEnvironment.start_local(
            dev_server_startup_timeout=SERVER_STARTUP,
            data_converter=data_converter(),
            dev_server_existing_path=_binary("temporal"),
            search_attributes=list(sa.ALL_KEYS),
            dev_server_log_level="error",
            ui=False,
        )
    else:
        server = env
    try:
        client = server.client
        queue = f"gd-query-{tmp_path.name[-8:]}"
        tag = f"q-{queue}"
        async with golden.golden_worker(client, queue):
            produced = {
                **await golden.technician_rejected(client, server, queue, tag),
                **await golden.beneficiaries_rejected(client, server, queue, tag),
            }
        query = f'GdStatus="REJECTED" AND TaskQueue="{queue}"'
        for _ in range(100):
            found = {w.id async for w in client.list_workflows(query)}
            if found >= set(produced.values()):
                break
            await asyncio.sleep(0.1)
        assert found == set(produced.values())
        result = await invoke(audit_app, ["replay", "--query", query], temporal_address=address(client))
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("OK ")]
        assert sorted(line.split()[1] for line in lines) == sorted(produced.values())
        nothing = await invoke(audit_app, ["replay", "--query", 'GdStatus="CONNECTED" AND TaskQueue="none"'],
                               temporal_address=address(client))
        assert nothing.exit_code == 2 and "nenhum processo" in nothing.output
    finally:
        if server is not env:
            await server.shutdown()


# --- timeline from golden histories -----------------------------------------------------


async def golden_timeline(name: str, **kwargs) -> timeline.Timeline:
    return await timeline.build(exports.read(HISTORIES / f"{name}.json.gz"), **kwargs)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def test_timeline_reads_deadlines_and_whether_they_were_met():
    line = await golden_timeline("access-lapse-cycles-cancelled")
    steps = [(s.action, s.deadline.before_rule if s.deadline else None, s.verdict) for s in line.steps]
    assert steps == [
        ("received", None, None),
        ("apr_window_lapsed", "apr_window", "descumprido"),  # the 24 h passed
        ("apr_registered_after_lapse", "pendencies_answer", "no prazo"),
        ("reanalysis_requested", "pendencies_answer", "cumprido"),
        ("works_declared", "parecer", "no prazo"),
        ("clock_paused", "parecer", "no prazo"),
        ("clock_resumed", "parecer", "no prazo"),
        ("reminder", "parecer", "no prazo"),
        ("sla_breach", "parecer", "vencido"),
        ("suspend", "parecer", "descumprido"),  # decided after the breach
        ("corrections_attached", "pendencies_answer", "no prazo"),
        ("reanalysis_requested", "pendencies_answer", "cumprido"),
        ("reprove", "parecer", "cumprido"),
        ("lapsed_cancelled", "pendencies_answer", "descumprido"),
        ("completed", None, None),
    ]
    by_action = {s.action: s for s in line.steps}
    works, paused, resumed = by_action["works_declared"], by_action["clock_paused"], by_action["clock_resumed"]
    # works recompute the parecer (15 → 30 days, same start); resuming moves it by the pause
    assert works.deadline.after_due > works.deadline.before_due
    assert resumed.deadline.after_due > paused.deadline.after_due
    assert "prazo suspenso por 1,0 dia(s)" in resumed.details
    suspend = by_action["suspend"]
    assert (suspend.actor_id, suspend.actor_role) == ("ana.analista", "analyst")
    assert suspend.reasons == [("DOC-ART-AUSENTE", None), ("OTHER", "Falta foto do QGBT")]
    assert suspend.deadline.before_due < suspend.at
    corrections = by_action["corrections_attached"]
    assert (corrections.actor_id, corrections.role_label) == ("rt.joao", "responsável técnico")
    assert [d.sha256 for d in corrections.documents] == [sha(b"%PDF-1.4 ART v2")]
    assert by_action["lapsed_cancelled"].role_label == "sistema"
    assert [e.template for e in line.emails] == [
        "request_received", "apr_lapsed", "reanalysis_started", "clock_paused", "clock_resumed",
        "deadline_reminder", "sla_escalation", "suspended", "reanalysis_started", "reproved", "cancelled",
    ]
    assert line.emails[0].recipients == ["m***@example.com.br", "RT CREA-MG-123456"]
    assert line.emails[6].recipients == ["supervisão"] and all(e.status == "enviado" for e in line.emails)
    assert line.final_status == "CANCELLED"


async def test_timeline_of_the_technician_and_its_credentials():
    line = await golden_timeline("technician-approved-late")
    assert [(s.action, s.verdict) for s in line.steps] == [
        ("submitted", None),
        ("reminder", "no prazo"),
        ("sla_breach", "vencido"),
        ("approved", "descumprido"),
        ("completed", None),
    ]
    approved = line.steps[3]
    assert (approved.actor_id, approved.role_label) == ("sofia.supervisora", "supervisor")
    assert approved.deadline.before_rule == "technician_review" and approved.deadline.after_rule is None
    templates = [e.template for e in line.emails]
    assert templates[-3:] == list(golden.CREDENTIAL_TEMPLATES)
    assert all(e.recipients[0].startswith("RT CREA-MG-") for e in line.emails[-3:])


async def test_timeline_html_escapes_and_masks(tmp_path):
    line = await golden_timeline("access-connected-works")
    html = timeline.render_html(line)
    assert "transformador &lt;TR-123&gt; &amp; religador" in html
    assert "<TR-123>" not in html
    assert "maria.souza@example.com.br" not in html and "m***@example.com.br" in html
    assert sha(b"%PDF-1.7 parecer de acesso") in html  # the parecer, by hash
    assert "Parecer de acesso emitido" in html and "Processo vinculado iniciado" in html
    full = timeline.render_html(await golden_timeline("access-connected-works", full_recipients=True))
    assert "maria.souza@example.com.br" in full
    approved = next(s for s in line.steps if s.action == "approved")
    assert approved.verdict == "cumprido" and approved.deadline.before_rule == "parecer"
    assert approved.documents[0].kind == "parecer"
    works = next(s for s in line.steps if s.action == "works_declared")  # the patched step
    assert works.details == ["motivo: obras exigidas no parecer de acesso"]


def test_timeline_cli_from_a_file(tmp_path):
    source = HISTORIES / "beneficiaries-registered.json.gz"
    runner = CliRunner()
    as_json = runner.invoke(audit_app, ["timeline", "--file", str(source), "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert [s["status"] for s in data["steps"]] == ["PENDING_REVIEW", "REGISTERED", "REGISTERED"]
    assert data["steps"][1]["actor"] == {"id": "ana.analista", "role": "analyst"}
    page = tmp_path / "t.html"
    written = runner.invoke(audit_app, ["timeline", "--file", str(source), "--html", str(page)])
    assert written.exit_code == 0 and page.read_text().startswith("<!doctype html>")
    terminal = runner.invoke(audit_app, ["timeline", "--file", str(source)])
    assert terminal.exit_code == 0 and "Cadastramento confirmado" in terminal.output
    neither = runner.invoke(audit_app, ["timeline"])
    assert neither.exit_code == 2 and "um dos dois" in neither.output


# --- SLA report: figures computed by hand ----------------------------------------------


def t(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=SP)


def end_of(month: int, day: int) -> datetime:
    return t(month, day, 23, 59, 59)


ANALYST = {"id": "ana.analista", "role": "analyst"}
TECH = {"id": "rt.joao", "role": "technician", "council_key": "CREA-MG-123456"}


def step(workflow_id: str, n: int, action: str, status: str, at: datetime, rule=None, due=None, *,
         process: str = "access", data: dict | None = None, actor=None):
    from models.activities import Transition

    payload = dict(data or {})
    if process == "access":
        payload |= {"rule": rule, "due_at": due.isoformat() if due else None}
    return Transition(workflow_id=workflow_id, event_key=f"{n:04d}-{action}", process=process,
                      action=action, status=status, at=at, actor=actor, data=payload)


def crafted_events():
    """Requests with known times (March 2026, São Paulo time; no daylight saving)."""
    A, B, C, D, E, F, I, K = (f"gd-request-{x}" for x in "ABCDEFIK")
    G, H = "gd-technician-CREA-MG-111", "gd-technician-CREA-MG-222"
    J = "gd-beneficiaries-J"
    review = {"rule": "technician_review"}
    return [
        # A: everything on time
        step(A, 1, "received", "AWAITING_APR", t(3, 2, 10), "apr_window", t(3, 3, 10)),
        step(A, 2, "apr_registered", "UNDER_ANALYSIS", t(3, 2, 16), "parecer", end_of(3, 17), actor=TECH),
        step(A, 3, "approved", "APPROVED", t(3, 12, 16), "inspection_request_window", end_of(7, 10), actor=ANALYST),
        step(A, 4, "inspection_requested", "INSPECTION_REQUESTED", t(3, 14, 16), "inspection", end_of(3, 20)),
        step(A, 5, "connected", "CONNECTED", t(3, 18, 16)),
        # B: parecer breached then suspended; pendências answered; second parecer on time,
        # approved at 21:00 on 31/03 (already April in UTC: still in the period)
        step(B, 1, "received", "AWAITING_APR", t(3, 1, 9), "apr_window", t(3, 2, 9)),
        step(B, 2, "apr_registered", "UNDER_ANALYSIS", t(3, 1, 21), "parecer", end_of(3, 16)),
        step(B, 3, "sla_breach", "UNDER_ANALYSIS", t(3, 17), "parecer", end_of(3, 16)),
        step(B, 4, "suspend", "SUSPENDED", t(3, 21, 21), "pendencies_answer", end_of(4, 20)),
        step(B, 5, "corrections_attached", "SUSPENDED", t(3, 25, 21), "pendencies_answer", end_of(4, 20)),
        step(B, 6, "reanalysis_requested", "UNDER_ANALYSIS", t(3, 26, 21), "parecer", end_of(4, 10)),
        step(B, 7, "approved", "APPROVED", t(3, 31, 21), "inspection_request_window", end_of(7, 29)),
        # C: parecer on time only thanks to 5 days with the clock paused
        step(C, 1, "received", "AWAITING_APR", t(3, 3, 10), "apr_window", t(3, 4, 10)),
        step(C, 2, "apr_registered", "UNDER_ANALYSIS", t(3, 3, 12), "parecer", end_of(3, 18)),
        step(C, 3, "clock_paused", "UNDER_ANALYSIS", t(3, 10, 12), "parecer", end_of(3, 18)),
        step(C, 4, "clock_resumed", "UNDER_ANALYSIS", t(3, 15, 12), "parecer", end_of(3, 23),
             data={"paused_s": 5 * 86400}),
        step(C, 5, "approved", "APPROVED", t(3, 22, 12), "inspection_request_window", end_of(7, 20)),
        # D: parecer breached and still open at the end of March
        step(D, 1, "received", "AWAITING_APR", t(3, 5, 8), "apr_window", t(3, 6, 8)),
        step(D, 2, "apr_registered", "UNDER_ANALYSIS", t(3, 5, 20), "parecer", end_of(3, 20)),
        step(D, 3, "sla_breach", "UNDER_ANALYSIS", t(3, 21), "parecer", end_of(3, 20)),
        # E: APR window closed in February (not counted); parecer closed late in March
        step(E, 1, "received", "AWAITING_APR", t(2, 10, 10), "apr_window", t(2, 11, 10)),
        step(E, 2, "apr_registered", "UNDER_ANALYSIS", t(2, 10, 12), "parecer", end_of(2, 25)),
        step(E, 3, "approved", "APPROVED", t(3, 3, 12), "inspection_request_window", end_of(7, 1)),
        # F: after the period: ignored
        step(F, 1, "received", "AWAITING_APR", t(4, 2, 10), "apr_window", t(4, 3, 10)),
        # I: inquiry answered in 10 days
        step(I, 1, "received", "AWAITING_ANSWER", t(3, 2, 9), "inquiry_answer", end_of(4, 1)),
        step(I, 2, "answered", "ANSWERED", t(3, 12, 9)),
        # K: APR window lapsed (the requester's breach); pendências still open, not due
        step(K, 1, "received", "AWAITING_APR", t(3, 4, 10), "apr_window", t(3, 5, 10)),
        step(K, 2, "apr_window_lapsed", "LAPSED", t(3, 5, 10, 0, 1), "pendencies_answer", end_of(4, 4)),
        # G, H: technicians, one on time, one late with the breach recorded
        step(G, 1, "submitted", "PENDING_REVIEW", t(3, 9, 10), process="technician",
             data={**review, "due_at": end_of(3, 12).isoformat(), "policy": "seed"}),
        step(G, 2, "reminder", "PENDING_REVIEW", t(3, 10, 8), process="technician", data=review),
        step(G, 3, "approved", "APPROVED", t(3, 11, 10), process="technician", actor=ANALYST),
        step(H, 1, "submitted", "PENDING_REVIEW", t(3, 16, 10), process="technician",
             data={**review, "due_at": end_of(3, 19).isoformat(), "policy": "seed"}),
        step(H, 2, "sla_breach", "PENDING_REVIEW", t(3, 20), process="technician", data=review),
        step(H, 3, "rejected", "REJECTED", t(3, 23, 10), process="technician", actor=ANALYST),
        # J: beneficiaries have no deadline
        step(J, 1, "received", "PENDING_REVIEW", t(3, 6, 10), process="beneficiaries"),
        step(J, 2, "registered", "REGISTERED", t(3, 7, 10), process="beneficiaries", actor=ANALYST),
    ]


@pytest.fixture
async def crafted_store(db_url, tmp_path):
    """The crafted steps written through the real record_transition activity."""
    from activities.blobs import BlobStore
    from activities.records import RecordActivities
    from activities.store import Store

    store = Store(db_url)
    store.create_schema()
    records = RecordActivities(store, BlobStore(tmp_path / "blobs"))
    for transition in crafted_events():
        ActivityEnvironment().run(records.record_transition, transition)  # a sync activity
    yield store
    store.dispose()


HOUR, SECOND = 1 / 24, 1 / 86400
EXPECTED = {
    # rule: (count, on_time, mean days, p90 days, breaches, open, open overdue)
    # APR: A 6 h, B 12 h, C 2 h, D 12 h, K 24 h + 1 s (late); E closed in February
    "apr_window": (5, 4, (6 + 12 + 2 + 12 + 24) * HOUR / 5 + SECOND / 5, 1 + SECOND, 1, 0, 0),
    # parecer: A 10, B 20 (late), B 5, C 19 − 5 paused = 14, E 21 (late); D open and overdue
    "parecer": (5, 3, (10 + 20 + 5 + 14 + 21) / 5, 21.0, 3, 1, 1),
    # pendências: B 5 days; K open, due in April
    "pendencies_answer": (1, 1, 5.0, 5.0, 0, 1, 0),
    # request for inspection: A 2 days; B, C and E still open, not due
    "inspection_request_window": (1, 1, 2.0, 2.0, 0, 3, 0),
    "inspection": (1, 1, 4.0, 4.0, 0, 0, 0),
    # technician review: G 2 days, H 7 days (late, breach recorded)
    "technician_review": (2, 1, 4.5, 7.0, 1, 0, 0),
    "inquiry_answer": (1, 1, 10.0, 10.0, 0, 0, 0),
}


async def test_sla_report_figures_match_the_hand_computed_ones(crafted_store):
    from datetime import date

    result = sla.report(crafted_store, date(2026, 3, 1), date(2026, 3, 31))
    assert result.processes == 10  # F has no event before the end of March
    rules = {r.rule: r for r in result.rules}
    assert set(rules) == set(EXPECTED)
    for rule, (count, on_time, mean, p90, breaches, open_, overdue) in EXPECTED.items():
        got = rules[rule]
        assert (got.count, got.on_time, len(got.breaches), got.open_windows, got.open_overdue) == (
            count, on_time, breaches, open_, overdue), rule
        assert got.mean_days == pytest.approx(mean, abs=1e-9), rule
        assert got.p90_days == pytest.approx(p90, abs=1e-9), rule
        assert got.pct_on_time == pytest.approx(100 * on_time / count), rule
    parecer = {b.workflow_id: b for b in rules["parecer"].breaches}
    assert set(parecer) == {"gd-request-B", "gd-request-D", "gd-request-E"}
    assert parecer["gd-request-B"].delay_days == pytest.approx(4 + 21 * HOUR + SECOND)
    assert parecer["gd-request-E"].delay_days == pytest.approx(5 + 12 * HOUR + SECOND)
    assert parecer["gd-request-D"].open and parecer["gd-request-D"].delay_days == pytest.approx(11 + SECOND)
    assert rules["technician_review"].breaches[0].workflow_id == "gd-technician-CREA-MG-222"
    assert rules["apr_window"].breaches[0].workflow_id == "gd-request-K"
    assert rules["apr_window"].side == "requester" and rules["parecer"].side == "distributor"


async def test_sla_report_period_boundaries(crafted_store):
    from datetime import date

    # Up to 30/03: B's second parecer (approved 31/03 21:00) is still open and not due.
    march_30 = {r.rule: r for r in sla.report(crafted_store, date(2026, 3, 1), date(2026, 3, 30)).rules}
    assert (march_30["parecer"].count, march_30["parecer"].open_windows) == (4, 2)
    # February alone: E's APR registration, in 2 hours; E's parecer open, overdue since 25/02.
    february = {r.rule: r for r in sla.report(crafted_store, date(2026, 2, 1), date(2026, 2, 28)).rules}
    assert february["apr_window"].count == 1
    assert february["apr_window"].mean_days == pytest.approx(2 * HOUR)
    assert (february["parecer"].count, february["parecer"].open_windows, february["parecer"].open_overdue) == (0, 1, 1)
    [late] = february["parecer"].breaches
    assert late.workflow_id == "gd-request-E" and late.delay_days == pytest.approx(3 + SECOND)


def test_percentile_is_nearest_rank():
    assert sla.percentile([], 90) is None
    assert sla.percentile([7.0], 90) == 7.0
    assert sla.percentile([float(n) for n in range(1, 11)], 90) == 9.0
    assert sla.percentile([float(n) for n in range(1, 12)], 90) == 10.0
    assert sla.percentile([3.0, 1.0, 2.0], 50) == 2.0


async def test_sla_cli_json_html_and_bad_dates(crafted_store, db_url, tmp_path):
    page = tmp_path / "sla.html"
    result = await invoke(report_app, ["sla", "--from", "2026-03-01", "--to", "31/03/2026", "--json", "--html", str(page)],
                          database_url=db_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    parecer = next(r for r in data["rules"] if r["rule"] == "parecer")
    assert (parecer["count"], parecer["on_time"], parecer["pct_on_time"], parecer["mean_days"], parecer["p90_days"]) == (
        5, 3, 60.0, 14.0, 21.0)
    html = page.read_text()
    assert "<svg" in html and "<script" not in html and "http" not in html.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", "")
    assert "emissão do parecer de acesso" in html and "60,0 %" in html and "gd-request-D" in html
    terminal = await invoke(report_app, ["sla", "--from", "2026-03-01", "--to", "2026-03-31"], database_url=db_url)
    assert terminal.exit_code == 0 and "parecer" in terminal.output
    bad = await invoke(report_app, ["sla", "--from", "2026-02-30", "--to", "2026-03-31"], database_url=db_url)
    assert bad.exit_code == 2 and "--from: data inválida" in bad.output
    reversed_ = await invoke(report_app, ["sla", "--from", "2026-03-31", "--to", "2026-03-01"], database_url=db_url)
    assert reversed_.exit_code == 2 and "anterior à inicial" in reversed_.output


def test_sla_cli_on_a_database_without_the_event_log(tmp_path):
    with gd_env(database_url=f"sqlite:///{tmp_path / 'empty.db'}") as env:
        result = CliRunner().invoke(report_app, ["sla", "--from", "2026-03-01", "--to", "2026-03-31"], env=env)
    assert result.exit_code == 2 and "event_record" in result.output


def test_sla_report_of_a_month_not_over_counts_only_windows_already_late():
    """A parecer due 03/12/2026 00:01 (São Paulo), in a report of 01–31/12 run on
    02/12/2026 at noon: still open, not yet late, so no breach; one due 01/12 is."""
    from datetime import date

    from audit.windows import Window

    tz = ZoneInfo("America/Sao_Paulo")
    start, end = sla.period(date(2026, 12, 1), date(2026, 12, 31))
    not_yet = Window(workflow_id="gd-request-a", process="access", rule="parecer",
                     opened_at=datetime(2026, 11, 18, 10, 0, tzinfo=tz), opened_by="rt",
                     due_at=datetime(2026, 12, 3, 0, 1, tzinfo=tz))
    late = Window(workflow_id="gd-request-b", process="access", rule="parecer",
                  opened_at=datetime(2026, 11, 16, 10, 0, tzinfo=tz), opened_by="rt",
                  due_at=datetime(2026, 12, 1, 23, 59, 59, tzinfo=tz))
    today = datetime(2026, 12, 2, 12, 0, tzinfo=tz)

    (parecer,) = [r for r in sla.compute([not_yet, late], start, end, today) if r.rule == "parecer"]
    assert parecer.open_windows == 2
    assert [b.workflow_id for b in parecer.breaches] == ["gd-request-b"]
    # late by 12 h 00 min 01 s at noon on 02/12, not by the rest of the month
    assert round(parecer.breaches[0].delay_days * 86400) == 12 * 3600 + 1
