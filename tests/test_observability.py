"""Observability: the store's business gauges at /metrics, the worker's new counters, JSON
logs with trace ids and personal data masked, and one trace from an API call through the
workflow to its activities (in-memory span exporter, worker and API in this process)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from activities.tables import Outbox, RequestRecord
from api.metrics import StoreCollector
from tests.store_fixtures import Database, database, store  # noqa: F401

# 09:00 in São Paulo (UTC-3) on 2 December 2026.
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _samples(collector) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in collector.collect() for s in family.samples}


def _request(wid: str, kind: str, status: str, due: datetime | None = None, rule: str | None = None,
             paused: bool = False, breaches: int = 0) -> RequestRecord:
    return RequestRecord(workflow_id=wid, request_id=wid, kind=kind, status=status, due_at=due,
                         due_rule=rule, clock_paused=paused, sla_breaches=breaches,
                         created_at=NOW - timedelta(days=20), updated_at=NOW - timedelta(days=1))


def test_store_gauges_count_open_requests_overdue_deadlines_breaches_and_outbox_lag(store):
    store.create_schema()
    with store.session() as s:
        s.add_all([
            _request("r1", "request", "UNDER_ANALYSIS", NOW - timedelta(days=1), "parecer", breaches=1),
            _request("r2", "request", "UNDER_ANALYSIS", NOW + timedelta(days=8), "parecer"),
            # suspended: the requester's deadline passed, its clock paused
            _request("r3", "request", "SUSPENDED", NOW - timedelta(days=2), "pendencies_answer", paused=True),
            # one minute late
            _request("r4", "inquiry", "AWAITING_ANSWER", NOW - timedelta(minutes=1), "inquiry_answer", breaches=2),
            # closed: neither open nor overdue, its breach still counted
            _request("r5", "request", "CONNECTED", NOW - timedelta(days=30), "inspection", breaches=1),
            _request("r6", "inquiry", "ANSWERED"),
            _request("r7", "request", "AWAITING_APR"),
            # due in a minute: not overdue
            _request("r8", "request", "AWAITING_APR", NOW + timedelta(minutes=1), "apr_window"),
            Outbox(key="k1", template="inquiry_answered", status="sending", created_at=NOW - timedelta(minutes=10)),
            Outbox(key="k2", template="inquiry_answered", status="sending", created_at=NOW - timedelta(minutes=2)),
            Outbox(key="k3", template="request_received", status="sent", created_at=NOW - timedelta(hours=2)),
            Outbox(key="k4", template="request_received", status="refused", created_at=NOW - timedelta(hours=3)),
            Outbox(key="k5", template="request_received", status="sending", created_at=NOW - timedelta(seconds=30)),
        ])
    got = _samples(StoreCollector(store, now=lambda: NOW))
    by = {k: v for k, v in got.items()}

    def of(name: str) -> dict[tuple, float]:
        return {labels: v for (n, labels), v in by.items() if n == name}

    assert of("gd_requests_open") == {
        (("kind", "request"), ("status", "UNDER_ANALYSIS")): 2,
        (("kind", "request"), ("status", "SUSPENDED")): 1,
        (("kind", "request"), ("status", "AWAITING_APR")): 2,
        (("kind", "inquiry"), ("status", "AWAITING_ANSWER")): 1,
    }
    assert of("gd_sla_overdue_requests") == {
        (("clock", "running"), ("rule", "parecer")): 1,
        (("clock", "paused"), ("rule", "pendencies_answer")): 1,
        (("clock", "running"), ("rule", "inquiry_answer")): 1,
    }
    assert of("gd_sla_breaches_recorded") == {(("kind", "request"),): 2, (("kind", "inquiry"),): 2}
    assert of("gd_outbox_pending") == {(("template", "inquiry_answered"),): 2,
                                       (("template", "request_received"),): 1}
    assert of("gd_outbox_oldest_pending_seconds") == {(): 600.0}
    assert of("gd_store_up") == {(): 1}


def test_store_gauges_of_an_unreachable_store_say_so_and_nothing_else(tmp_path: Path):
    from activities.store import Store

    broken = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    got = _samples(StoreCollector(broken, now=lambda: NOW))
    assert got == {("gd_store_up", ()): 0}


# --- the worker's counters -------------------------------------------------------------------


def _counted(transitions) -> dict[tuple, float]:
    """Run GdMetricsInterceptor.count on record_transition results inside an activity
    context whose meter buffers what it records."""
    from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
    from temporalio.testing import ActivityEnvironment

    from worker import GdMetricsInterceptor

    buffer = MetricBuffer(1000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    env.info = replace(env.info, activity_type="record_transition")
    interceptor = GdMetricsInterceptor()
    for t in transitions:
        env.run(lambda t=t: interceptor.count("record_transition", [t], None))
    totals: dict[tuple, float] = {}
    for update in buffer.retrieve_updates():
        attrs = {k: v for k, v in update.attributes.items() if k not in ("namespace", "task_queue", "activity_type", "workflow_type", "service_name")}
        key = (update.metric.name, tuple(sorted(attrs.items())))
        totals[key] = totals.get(key, 0) + update.value
    return totals


def test_worker_counts_sla_breaches_by_rule_and_reasons_by_catalogue_code():
    from models.activities import Transition
    from models.common import Reason

    at = NOW
    steps = [
        Transition(workflow_id="access-a", event_key="e1", process="access", action="sla_breach",
                   status="UNDER_ANALYSIS", at=at, data={"rule": "parecer"}),
        Transition(workflow_id="access-b", event_key="e2", process="access", action="sla_breach",
                   status="UNDER_ANALYSIS", at=at, data={"rule": "parecer"}),
        Transition(workflow_id="tech-c", event_key="e3", process="technician", action="sla_breach",
                   status="PENDING_REVIEW", at=at, data={"rule": "technician_review"}),
        # two coded reasons and a code outside the catalogue (counted as OTHER, never as typed)
        Transition(workflow_id="access-d", event_key="e4", process="access", action="suspended",
                   status="SUSPENDED", at=at,
                   reasons=[Reason(code="DOC-ILEGIVEL"), Reason(code="DOC-ART-AUSENTE"),
                            Reason(code="MARIA-SOUZA-11144477735")]),
        # an intake refusal: its problems in data (workflows/access_view.refused_transition)
        Transition(workflow_id="access-e", event_key="0000-refused", process="access", action="refused",
                   status="REFUSED", at=at, data={"problems": [
                       {"field": "installation_number", "code": "INSTALACAO-NAO-ENCONTRADA", "message": "…"},
                       {"field": "customer.email", "code": "missing", "message": "…"},
                       {"field": "customer.name", "code": "Maria Souza", "message": "…"}]}),
    ]
    got = _counted(steps)
    breaches = {k[1]: v for k, v in got.items() if k[0] == "gd_sla_breaches_total"}
    assert breaches == {(("process", "access"), ("rule", "parecer")): 2,
                        (("process", "technician"), ("rule", "technician_review")): 1}
    reasons = {k[1]: v for k, v in got.items() if k[0] == "gd_decision_reasons_total"}
    assert reasons == {
        (("action", "suspended"), ("process", "access"), ("reason", "DOC-ILEGIVEL")): 1,
        (("action", "suspended"), ("process", "access"), ("reason", "DOC-ART-AUSENTE")): 1,
        (("action", "suspended"), ("process", "access"), ("reason", "OTHER")): 1,
        (("action", "refused"), ("process", "access"), ("reason", "INSTALACAO-NAO-ENCONTRADA")): 1,
        (("action", "refused"), ("process", "access"), ("reason", "missing")): 1,
        (("action", "refused"), ("process", "access"), ("reason", "OTHER")): 1,
    }


# --- logs -----------------------------------------------------------------------------------


def _json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    from observability import make_handler

    stream = io.StringIO()
    logger = logging.getLogger(f"gd.test.{name}.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(make_handler("json", stream))
    return logger, stream


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_mask_cpf_cnpj_email_and_phone_in_messages_and_tracebacks():
    logger, stream = _json_logger("redact")
    logger.info("cpf %s cpf %s cnpj %s cnpj %s", "111.444.777-35", "11144477735",
                "12.345.678/0001-95", "12345678000195")
    logger.warning("e-mail maria.souza@example.com.br tel (31) 99876-5432 / 31 98888-7777 / +55 31 3333-4444")
    logger.info("kept: workflow=access-req-1a2b3c event=step-3 installation=3001234567 "
                "at=2026-12-02T09:10:42.123+00:00 ms=123456 rt=CREA-MG-123456")
    try:
        raise ValueError("destinatário recusado: joao@engenharia.example.com")
    except ValueError:
        logger.exception("falha ao enviar")
    first, second, third, fourth = _lines(stream)
    assert first["message"] == "cpf [cpf] cpf [cpf] cnpj [cnpj] cnpj [cnpj]"
    assert second["message"] == "e-mail [email] tel [telefone] / [telefone] / [telefone]"
    assert second["level"] == "WARNING"
    assert third["message"] == ("kept: workflow=access-req-1a2b3c event=step-3 installation=3001234567 "
                                "at=2026-12-02T09:10:42.123+00:00 ms=123456 rt=CREA-MG-123456")
    assert fourth["message"] == "falha ao enviar"
    assert "ValueError: destinatário recusado: [email]" in fourth["exception"]
    assert "joao@" not in stream.getvalue()


def test_json_lines_carry_time_level_logger_and_the_current_trace():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    logger, stream = _json_logger("trace")
    logger.info("sem span")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("api") as span:
        logger.info("dentro do span")
        ids = span.get_span_context()
    outside, inside = _lines(stream)
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["logger"] == logger.name and outside["level"] == "INFO"
    moment = datetime.fromisoformat(outside["time"])
    assert moment.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - moment).total_seconds()) < 60
    assert inside["trace_id"] == f"{ids.trace_id:032x}" and len(inside["trace_id"]) == 32
    assert inside["span_id"] == f"{ids.span_id:016x}"
    assert trace.get_current_span().get_span_context().is_valid is False


def test_json_lines_inside_an_activity_name_its_workflow_and_type():
    from temporalio import activity
    from temporalio.testing import ActivityEnvironment

    logger, stream = _json_logger("activity")
    env = ActivityEnvironment()
    env.info = replace(env.info, workflow_id="access-req-42", workflow_type="AccessRequest",
                       activity_type="send_email", attempt=3)

    def send() -> None:
        logger.info("mail key=%s status=%s", "access-req-42/received/0", "sent")
        activity.logger.info("pelo logger do SDK")

    sdk_logger = activity.logger.base_logger
    level = sdk_logger.level
    sdk_logger.addHandler(logger.handlers[0])
    sdk_logger.setLevel(logging.INFO)
    try:
        env.run(send)
    finally:
        sdk_logger.removeHandler(logger.handlers[0])
        sdk_logger.setLevel(level)
    ours, sdk = _lines(stream)
    for line in (ours, sdk):
        assert {k: line[k] for k in ("workflow_id", "workflow_type", "activity_type", "attempt")} == {
            "workflow_id": "access-req-42", "workflow_type": "AccessRequest",
            "activity_type": "send_email", "attempt": 3}
    assert ours["message"] == "mail key=access-req-42/received/0 status=sent"


def test_log_settings_default_to_text_and_refuse_unknown_values():
    from observability import LogConfigError, log_settings, setup_logging

    assert log_settings({}) == ("text", "INFO")
    assert log_settings({"GD_LOG_FORMAT": "JSON", "GD_LOG_LEVEL": "debug"}) == ("json", "DEBUG")
    with pytest.raises(LogConfigError, match=r"GD_LOG_FORMAT=xml: use text ou json"):
        log_settings({"GD_LOG_FORMAT": "xml"})
    with pytest.raises(LogConfigError, match=r"GD_LOG_LEVEL=LOUD"):
        log_settings({"GD_LOG_LEVEL": "loud"})
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        stream = io.StringIO()
        setup_logging({}, stream)
        logging.getLogger("gd.test.text").info("cliente maria@example.com")
        assert stream.getvalue().rstrip().endswith("INFO gd.test.text cliente [email]")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


# --- traces ---------------------------------------------------------------------------------


async def test_one_api_call_is_one_trace_through_the_workflow_to_its_activities(
    client, settings, deps, tmp_path: Path, monkeypatch
):
    """POST /api/v1/technicians (an RT registers): the API's server span is the root; the
    client's StartWorkflow span, the workflow's run and its activities are in its trace."""
    import asyncio

    import httpx
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import observability
    from api.app import create_app
    from api.auth import DevIssuer
    from api.config import ApiSettings
    from worker import build_worker, connect

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(observability, "_PROVIDER", provider)  # what OTEL_EXPORTER_OTLP_* sets up

    settings = settings.model_copy(update={
        "temporal_address": client.service_client.config.target_host,
        "namespace": client.namespace, "env": "dev"})
    api_settings = ApiSettings(auth_mode="dev", auth_dev_key=tmp_path / "dev-key.pem")
    app = create_app(settings, api_settings)
    token = DevIssuer(api_settings).mint("rt.joao", ["technician"], council_key="CREA-MG-765432")
    body = {"name": "João Engenheiro", "cpf": "111.444.777-35", "email": "rt.765432@engenharia.example.com",
            "phone": "31 98888-7777", "council": "CREA", "uf": "MG", "registration": "765432"}
    worker_client = await connect(settings)  # the worker's own client: traced the same way
    async with build_worker(worker_client, settings, deps=deps):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gd", timeout=60) as http:
                r = await http.post("/api/v1/technicians", json=body,
                                    headers={"Authorization": f"Bearer {token}",
                                             "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
                assert r.status_code == 201, r.text
                for _ in range(200):
                    names = {s.name for s in exporter.get_finished_spans()}
                    if {"RunActivity:record_transition", "RunActivity:send_email"} <= names:
                        break
                    await asyncio.sleep(0.1)
                metrics = (await http.get("/metrics")).text
                assert (await http.get("/healthz")).status_code == 200

    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.name == "POST /api/v1/technicians"]
    assert len(server) == 1, sorted(s.name for s in spans)
    root = server[0]
    # the caller's traceparent is the parent: the proxy's or portal's trace goes on here
    assert f"{root.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{root.parent.span_id:016x}" == "b7ad6b7169203331"
    assert root.attributes["http.route"] == "/api/v1/technicians"
    assert root.attributes["http.response.status_code"] == 201
    in_trace = [s for s in spans if s.context.trace_id == root.context.trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    def chain(span) -> list[str]:
        names = [span.name]
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    start = next(s for s in in_trace if s.name == "StartWorkflow:TechnicianRegistration")
    assert chain(start) == ["StartWorkflow:TechnicianRegistration", "POST /api/v1/technicians"]
    # The workflow schedules the activity (StartActivity, written by the workflow's code
    # on the worker; a RunWorkflow span only comes when a workflow completes, and an RT's
    # registration waits for its review); the activity runs under it.
    for activity_type in ("record_transition", "send_email"):
        run_activity = next(s for s in in_trace if s.name == f"RunActivity:{activity_type}")
        assert chain(run_activity) == [f"RunActivity:{activity_type}", f"StartActivity:{activity_type}",
                                       "StartWorkflow:TechnicianRegistration", "POST /api/v1/technicians"]
    # probes and scrapes make no spans
    assert not [s for s in spans if s.name.startswith("GET")], sorted(s.name for s in spans)
    # no personal data in span names or attributes
    for span in spans:
        text = span.name + json.dumps({k: str(v) for k, v in (span.attributes or {}).items()})
        for secret in ("111.444.777-35", "11144477735", "João", "rt.765432@", "98888"):
            assert secret not in text, span.name
    # the API's /metrics has the store's gauges (this store is readable) and the counters
    assert "gd_store_up 1.0" in metrics
    assert 'gd_api_requests_total{method="POST",route="/api/v1/technicians",status="201"}' in metrics
