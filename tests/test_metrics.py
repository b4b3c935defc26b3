"""Observability of a worker process: Prometheus metrics on GD_METRICS_ADDRESS (the SDK's
runtime metrics and ours: e-mails by template and outcome, transitions) with no personal
data; OpenTelemetry spans sent over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (here a small
HTTP server that decodes what it receives with the OTLP protobuf schema)."""

from __future__ import annotations

import asyncio
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.access_helpers import (ANALYST, CPF, inquiry_input, quiet, request_input, settle,
                                  start, update)
from tests.test_blob_backends import wait_for_worker
from tests.test_deploy import dashboard_exprs, expr_metric_names

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf exports on /v1/traces and keeps the decoded requests."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(body)
                    receiver.requests.append(message)
                    receiver.raw.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        return [span for request in self.requests for resource in request.resource_spans
                for scope in resource.scope_spans for span in scope.spans]

    def services(self) -> set[str]:
        return {attr.value.string_value for request in self.requests
                for resource in request.resource_spans for attr in resource.resource.attributes
                if attr.key == "service.name"}


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_worker_exports_metrics_without_personal_data_and_traces_over_otlp(
    client, task_queue, smtp_sink, tmp_path: Path
):
    receiver = OtlpReceiver()
    metrics_port = _free_port()
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GD_", "OTEL_"))}
    env.update({
        "PYTHONPATH": str(PROJECT_ROOT), "GD_ENV": "dev",
        "GD_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "GD_NAMESPACE": client.namespace, "GD_TASK_QUEUE": task_queue,
        "GD_DATABASE_URL": f"sqlite:///{tmp_path}/gd.db", "GD_BLOB_DIR": str(tmp_path / "blobs"),
        "GD_SMTP_HOST": "127.0.0.1", "GD_SMTP_PORT": str(smtp_sink.port),
        "GD_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=tmp_path, env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    raw = inquiry_input(f"met-{uuid.uuid4().hex[:8]}")
    try:
        await wait_for_worker(worker, log)
        handle = await start(client, raw, task_queue)
        await settle(handle, lambda s: s.status == "AWAITING_ANSWER" and s.pending_effects == 0,
                     timeout=60)
        await update(handle, "answer_inquiry", {"actor": ANALYST, "answer": "Resposta."})
        final = await quiet(handle)
        assert final.status == "ANSWERED"
        # A request naming an installation this worker's (empty) customer base lacks: refused
        # at intake with the catalogue's code.
        refused_raw = request_input(f"met-{uuid.uuid4().hex[:8]}")
        refused = await quiet(await start(client, refused_raw, task_queue))
        assert refused.status == "REFUSED"
        sent = [n.template for n in final.notifications if n.status == "sent"]
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                           timeout=10).read().decode())
        deadline = time.monotonic() + 20
        # every span the asserts below name (they arrive in batches; SIGTERM flushes none)
        while not {"RunActivity:send_email", "RunActivity:record_transition",
                   "StartActivity:send_email", "RunWorkflow:AccessRequest"} <= {
                s.name for s in receiver.spans()}:
            assert time.monotonic() < deadline, sorted({s.name for s in receiver.spans()})
            await asyncio.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(30)

    # Ours: one count per e-mail sent, by template; one per recorded step.
    assert sent and "inquiry_answered" in sent
    for template in set(sent):
        assert _sample(metrics, "gd_emails_total", template=template, outcome="sent") == \
            sent.count(template), template
    assert _sample(metrics, "gd_transitions_total", process="access", status="ANSWERED") == 1
    # The refusal's three problems (this worker's store is empty: no customer base, no
    # approved RT, no uploaded document), by code.
    for code in ("INSTALACAO-NAO-ENCONTRADA", "technician_not_approved", "document_missing"):
        assert _sample(metrics, "gd_decision_reasons_total", process="access", action="refused",
                       reason=code) == 1, code
    assert _sample(metrics, "gd_decision_reasons_total") == 3
    # The SDK's own, from the same runtime.
    assert _sample(metrics, "temporal_activity_execution_latency_count",
                   activity_type="send_email") >= 1
    # The SDK metrics the Grafana dashboard reads, under the names this exporter gives them
    # (the failure counters appear only after a failure: none here).
    exposed = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines()
               if line and not line.startswith("#")}
    on_dashboard = {name for _, expr in dashboard_exprs() for name in expr_metric_names(expr)
                    if name.startswith("temporal_") and not name.endswith("_failed")}
    assert on_dashboard and on_dashboard <= exposed, sorted(on_dashboard - exposed)
    # No personal data in any label or value.
    for secret in (raw["customer"]["email"], raw["customer"]["name"], CPF, raw["request_id"]):
        assert secret not in metrics
    # Traces: the workflow and its activities, under the worker's service name.
    names = {s.name for s in receiver.spans()}
    assert {"RunWorkflow:AccessRequest", "RunActivity:record_transition",
            "RunActivity:send_email", "StartActivity:send_email"} <= names, sorted(names)
    assert receiver.services() == {"gd-worker"}
    for body in receiver.raw:
        for secret in (raw["customer"]["email"], raw["customer"]["name"], CPF):
            assert secret.encode() not in body
