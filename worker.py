"""The worker: one client with the pydantic data converter, every workflow and activity.

Connection (``connect_config``): address, namespace, TLS/mTLS (``GD_TEMPORAL_TLS*``), an
API key (``GD_TEMPORAL_API_KEY``). ``gd worker --check`` (:func:`check`) verifies the
connection, the namespace, the search attributes and the store's schema, and prints the
exact ``temporal`` commands for what is missing.

Observability: with ``GD_METRICS_ADDRESS`` the SDK's runtime serves Prometheus metrics
there (its own plus ``gd_emails_total`` and ``gd_transitions_total``, counted by
:class:`GdMetricsInterceptor`, with no personal data in any label); with
``OTEL_EXPORTER_OTLP_ENDPOINT`` spans (client → workflow → activity, from
``temporalio.contrib.opentelemetry``) are exported over OTLP/HTTP.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from models.settings import GdSettings, get_settings

log = logging.getLogger("gd.worker")


def data_converter():
    """The one converter worker, CLI and replayer share (a payload codec plugs in here).

    With ``GD_CODEC_KEYS`` (or ``GD_CODEC_KEY``) set, payloads are encrypted with the
    AES-GCM codec of codec.py and failure messages/stack traces are moved into encoded
    attributes, so no personal data reaches the server in clear. Bad key variables raise
    ``codec.CodecConfigError`` here, at start-up."""
    import dataclasses

    from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

    from codec import codec_from_env

    codec = codec_from_env()
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


class ConnectConfigError(SystemExit):
    """The Temporal connection settings are inconsistent (the message says which, pt-BR)."""


def _read_setting_file(name: str, path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as error:
        raise ConnectConfigError(
            f"{name}={path}: arquivo ilegível ({error.strerror or error})"
        ) from None


def tls_config(settings: GdSettings) -> TLSConfig | None:
    """The TLS of the Temporal connection, or None (plain TCP: a dev server, a sidecar).

    TLS is on with ``GD_TEMPORAL_TLS=true`` or any of CA, certificate, server name or API
    key set (a hosted Temporal takes an API key only over TLS). mTLS needs both the
    certificate and its key."""
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if bool(cert) != bool(key):
        raise ConnectConfigError(
            "mTLS: defina GD_TEMPORAL_TLS_CERT e GD_TEMPORAL_TLS_KEY juntos (certificado e chave)"
        )
    wanted = (settings.temporal_tls or cert or settings.temporal_tls_ca
              or settings.temporal_tls_server_name or settings.temporal_api_key)
    if not wanted:
        return None
    return TLSConfig(
        server_root_ca_cert=(_read_setting_file("GD_TEMPORAL_TLS_CA", settings.temporal_tls_ca)
                             if settings.temporal_tls_ca else None),
        client_cert=_read_setting_file("GD_TEMPORAL_TLS_CERT", cert) if cert else None,
        client_private_key=_read_setting_file("GD_TEMPORAL_TLS_KEY", key) if key else None,
        domain=settings.temporal_tls_server_name or None,
    )


def connect_config(settings: GdSettings, *, runtime: Runtime | None = None,
                   interceptors: list | None = None) -> dict:
    """The keyword arguments of ``Client.connect`` for these settings."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    config: dict = {
        "target_host": settings.temporal_address,
        "namespace": settings.namespace,
        "data_converter": data_converter(),
        "tls": tls_config(settings) or False,
        "api_key": api_key,
        "interceptors": list(interceptors if interceptors is not None else tracing_interceptors()),
    }
    if runtime is not None:
        config["runtime"] = runtime
    return config


async def connect(settings: GdSettings | None = None, *, runtime: Runtime | None = None,
                  interceptors: list | None = None) -> Client:
    settings = settings or get_settings()
    return await Client.connect(**connect_config(settings, runtime=runtime,
                                                 interceptors=interceptors))


# --- metrics and traces ----------------------------------------------------------------------

_RUNTIME: Runtime | None = None
_TRACER_PROVIDER = None


def telemetry_runtime(settings: GdSettings) -> Runtime | None:
    """One Runtime per process serving Prometheus metrics on ``GD_METRICS_ADDRESS``."""
    global _RUNTIME
    if not settings.metrics_address:
        return None
    if _RUNTIME is None:
        _RUNTIME = Runtime(telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=settings.metrics_address,
                                     counters_total_suffix=False, durations_as_seconds=True)))
    return _RUNTIME


def tracing_interceptors(service_name: str = "gd-worker") -> list:
    """``[TracingInterceptor()]`` exporting over OTLP/HTTP when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) is set, or into the tracer
    provider this process already has (``observability.tracer_provider``); else none."""
    import os

    import observability

    global _TRACER_PROVIDER
    if _TRACER_PROVIDER is None and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                     or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        observability.use_tracer_provider(provider)
        _TRACER_PROVIDER = provider
    provider = observability.tracer_provider()
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    # Workflow spans even when the starter sent no trace context (a CLI, an old API).
    return [TracingInterceptor(provider.get_tracer("gd-orchestrator"),
                               always_create_workflow_spans=True)]


def shutdown_tracing() -> None:
    """Flush the spans still buffered (at the worker's exit)."""
    if _TRACER_PROVIDER is not None:
        _TRACER_PROVIDER.shutdown()


class _MetricsActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, root: "GdMetricsInterceptor"):
        super().__init__(next)
        self.root = root

    async def execute_activity(self, input: ExecuteActivityInput):
        result = await super().execute_activity(input)
        try:
            self.root.count(activity.info().activity_type, input.args, result)
        except Exception:  # noqa: BLE001 - a metric never fails an activity
            log.debug("metric not recorded", exc_info=True)
        return result


# The worker's own counters (name: description, labels), on the runtime's meter; the
# dashboard's test reads this table (every name here has a panel).
WORKER_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gd_emails_total": ("E-mails by template and outcome", ("template", "outcome")),
    "gd_transitions_total": ("Process steps recorded", ("process", "action", "status")),
    "gd_sla_breaches_total": ("SLA breaches recorded, by process and deadline rule",
                              ("process", "rule")),
    "gd_decision_reasons_total": ("Codes of an intake refusal, suspension, reproval…",
                                  ("process", "action", "reason")),
}


class GdMetricsInterceptor(Interceptor):
    """Our counters, on the runtime's meter (the same /metrics as the SDK's):

    * ``gd_emails_total{template, outcome}`` — e-mails by template and outcome (``sent``,
      ``duplicate``, ``refused``);
    * ``gd_transitions_total{process, action, status}`` — steps recorded in the store;
    * ``gd_sla_breaches_total{process, rule}`` — the ``sla_breach`` steps, by deadline rule;
    * ``gd_decision_reasons_total{process, action, reason}`` — each code a step records:
      the problems of an intake refusal (``action="refused"``), the reasons of a
      suspension, reproval, rejection…; by the catalogue's code (``domain/reasons.py``) or a
      validation error type, anything else as ``OTHER``.

    Labels are names from the code (templates, actions, statuses, rules, reason codes),
    never a value a person typed: no e-mail address, CPF, name or id reaches a label."""

    def __init__(self) -> None:
        self._counters: dict = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MetricsActivityInbound(next, self)

    def _counter(self, name: str, description: str | None = None):
        meter = activity.metric_meter()
        key = (id(meter), name)
        if key not in self._counters:
            self._counters[key] = meter.create_counter(name, description or WORKER_METRICS[name][0])
        return self._counters[key]

    def count(self, activity_type: str, args, result) -> None:
        if activity_type in ("send_email", "send_technician_credentials"):
            results = result if isinstance(result, list) else [result]
            emails = self._counter("gd_emails_total", "E-mails by template and outcome")
            for one in results:
                status = getattr(one, "status", None)
                if status:
                    emails.add(1, {"template": str(getattr(one, "template", "") or "unknown"),
                                   "outcome": str(status)})
        elif activity_type == "record_transition" and args:
            t = args[0]
            process, action = str(getattr(t, "process", "")), str(getattr(t, "action", ""))
            self._counter("gd_transitions_total").add(1, {
                "process": process, "action": action, "status": str(getattr(t, "status", "")),
            })
            if action == "sla_breach":
                rule = (getattr(t, "data", None) or {}).get("rule")
                self._counter("gd_sla_breaches_total").add(1, {
                    "process": process, "rule": str(rule) if rule in _deadline_rules() else "unknown"})
            codes = [getattr(r, "code", None) for r in getattr(t, "reasons", None) or []]
            if action == "refused":  # an intake refusal keeps its problems in data
                codes += [p.get("code") for p in (getattr(t, "data", None) or {}).get("problems", [])
                          if isinstance(p, dict)]
            for code in codes:
                self._counter("gd_decision_reasons_total").add(1, {
                    "process": process, "action": action, "reason": _reason_label(code)})


_VALIDATION_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _reason_label(code) -> str:
    """A code of the reasons' catalogue, or a validation error type of the code's own
    (``missing``, ``document_missing``…); anything else ``OTHER``: a label never carries
    what a person typed."""
    from domain.reasons import OTHER_CODE, catalogue

    if isinstance(code, str) and (code in catalogue() or _VALIDATION_CODE.fullmatch(code)):
        return code
    return OTHER_CODE


def _deadline_rules() -> set[str]:
    from domain.policies import RULES

    return set(RULES)


def all_workflows() -> list[type]:
    from workflows.registry import ALL_WORKFLOWS

    share_workflow_code()
    return list(ALL_WORKFLOWS)


# --- one compiled copy of the workflow modules -------------------------------------------
#
# The SDK's sandbox imports the workflow modules (``workflows.*``: not passed through)
# afresh for every workflow run it starts or replays, so that no run sees another's module
# globals. Each import reads the bytecode (or, with PYTHONDONTWRITEBYTECODE and no cache,
# compiles the source) and builds new code objects: 3–21 ms of CPU and ~140 KiB per run,
# kept as long as the run stays in the sticky cache. Code objects are immutable, so the
# runs can share them: :class:`SharedCodeLoader` keeps one per file version and every
# sandboxed import executes it into the run's own new module, exactly as before (fresh
# globals, classes and functions per run). A file changed on disk is read again (the key
# holds its mtime and size), as a plain import would.


class SharedCodeLoader(importlib.machinery.SourceFileLoader):
    """``SourceFileLoader`` whose ``get_code`` returns one code object per file version."""

    codes: dict[tuple[str, int, int], Any] = {}

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        code = self.codes.get(key)
        if code is None:
            code = super().get_code(fullname)
            self.codes[key] = code
        return code


class SharedCodeFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of ``packages`` as the path finder would, with a shared-code loader."""

    def __init__(self, packages: tuple[str, ...]):
        self.packages = packages

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = SharedCodeLoader(fullname, spec.origin)
        return spec


def share_workflow_code(packages: tuple[str, ...] = ("workflows",)) -> None:
    """Install :class:`SharedCodeFinder` for ``packages`` (once per process)."""
    if not any(isinstance(f, SharedCodeFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SharedCodeFinder(packages))


@dataclass
class Dependencies:
    store: object
    blobs: object
    settings: GdSettings


def build_dependencies(settings: GdSettings, *, schema: str = "upgrade") -> Dependencies:
    """The store and blob store of ``settings``. ``schema``: ``upgrade`` (migrate to the
    newest revision: dev, tests) or ``check`` (refuse a database that is behind: a
    production worker leaves migrations to ``gd db upgrade``)."""
    from activities.blobs import open_blobs
    from activities.store import Store

    store = Store(settings.database_url)
    if schema == "check":
        store.check_schema()
    else:
        store.create_schema()
    return Dependencies(store=store, blobs=open_blobs(settings, store), settings=settings)


def all_activities(deps: Dependencies) -> list:
    from activities.deadlines import DeadlineActivities
    from activities.email_change import EmailChangeActivities
    from activities.mail import MailActivities
    from activities.records import RecordActivities
    from activities.webhooks import WebhookActivities

    records = RecordActivities(deps.store, deps.blobs)
    mail = MailActivities(deps.store, deps.blobs, deps.settings)
    deadlines = DeadlineActivities()
    webhooks = WebhookActivities(deps.store)
    email_change = EmailChangeActivities(deps.store)
    return [
        records.validate_intake,
        records.issue_numbers,
        records.record_transition,
        mail.send_email,
        mail.send_technician_credentials,
        mail.send_email_change_code,
        email_change.technician_email_facts,
        email_change.confirm_email_change,
        deadlines.compute_deadline,
        deadlines.resume_deadline,
        webhooks.await_events,
        webhooks.deliver,
        webhooks.dead_letter,
    ]


# The sticky cache: workflows kept in memory between tasks. A workflow out of the cache is
# replayed from its history when it next gets a task or a query (~30 ms of worker CPU for
# a seeded open request). Each cached AccessRequest holds ~0.26 MiB once its modules'
# code is shared (share_workflow_code; ~0.45 before): python -m bench.scale --open 500:
# 260 MiB idle with 500 cached; --open 2000 --max-cached 1200: 442 MiB idle, but 574 MiB
# after a restart that replayed all 2000 through the cache (freed memory the allocator
# keeps). 800 keeps that case under the 500 MiB target too.
MAX_CACHED_WORKFLOWS = 800


def build_worker(
    client: Client,
    settings: GdSettings | None = None,
    *,
    deps: Dependencies | None = None,
    activities: list | None = None,
    task_queue: str | None = None,
    **worker_options,
) -> Worker:
    """One worker for every workflow and activity; ``worker_options`` go to ``Worker``
    (slot and poller tuning, interceptors)."""
    settings = settings or get_settings()
    if activities is None:
        activities = all_activities(deps or build_dependencies(settings))
    interceptors = [GdMetricsInterceptor(), *worker_options.pop("interceptors", [])]
    worker_options.setdefault("max_cached_workflows", MAX_CACHED_WORKFLOWS)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=all_workflows(),
        activities=activities,
        activity_executor=ThreadPoolExecutor(max_workers=16),
        interceptors=interceptors,
        **worker_options,
    )


class StartupRefused(SystemExit):
    """The worker will not start with these settings (the message says why, in pt-BR)."""


def check_startup(settings: GdSettings) -> None:
    """Outside GD_ENV=dev: refuse a remote relay in clear and payloads in clear."""
    from models.settings import startup_problems

    problems = startup_problems(settings)
    if problems:
        raise StartupRefused("worker não iniciado: " + "; ".join(problems))


def is_dev(settings: GdSettings) -> bool:
    return settings.env.strip().lower() == "dev"


async def run(settings: GdSettings | None = None) -> None:
    settings = settings or get_settings()
    check_startup(settings)
    from activities.blobs import blob_backend
    from activities.store import SchemaOutdated

    if blob_backend(settings) == "local" and not is_dev(settings):
        log.warning("documents on this machine's disk (GD_BLOB_DIR): workers and API "
                    "instances elsewhere cannot read them; set GD_BLOB_URL")
    try:
        deps = build_dependencies(settings, schema="upgrade" if is_dev(settings) else "check")
    except SchemaOutdated as error:
        raise StartupRefused(f"worker não iniciado: {error}") from None
    runtime = telemetry_runtime(settings)
    client = await connect(settings, runtime=runtime)
    worker = build_worker(client, settings, deps=deps)
    log.info("worker polling task queue %s on %s%s", settings.task_queue,
             settings.temporal_address,
             f"; metrics on http://{settings.metrics_address}/metrics" if runtime else "")
    try:
        await worker.run()
    finally:
        shutdown_tracing()


# --- gd worker --check ----------------------------------------------------------------------


def _cli_connection_flags(settings: GdSettings) -> list[str]:
    """The `temporal` CLI flags that reach the same server the worker does."""
    import shlex

    flags = ["--address", shlex.quote(settings.temporal_address)]
    if tls_config(settings) is not None:
        flags.append("--tls")
    for flag, value in (("--tls-cert-path", settings.temporal_tls_cert),
                        ("--tls-key-path", settings.temporal_tls_key),
                        ("--tls-ca-path", settings.temporal_tls_ca),
                        ("--tls-server-name", settings.temporal_tls_server_name)):
        if value:
            flags += [flag, shlex.quote(str(value))]
    if settings.temporal_api_key:
        flags += ["--api-key", '"$TEMPORAL_API_KEY"']
    return flags


async def check(settings: GdSettings, out=print) -> int:
    """``gd worker --check``: 0 when the worker can run here; else 1, and the commands
    that fix what is missing (printed, never run)."""
    import shlex

    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError, RPCStatusCode

    from models.search_attributes import CLI_TYPES

    problems = 0
    ns = settings.namespace
    tls = "com TLS" if tls_config(settings) else "sem TLS"
    try:
        client = await asyncio.wait_for(connect(settings, interceptors=[]), 15)
    except (Exception, asyncio.TimeoutError) as error:  # noqa: BLE001 - reported
        out(f"✗ conexão com {settings.temporal_address} ({tls}): {type(error).__name__}: {error}")
        return 2
    out(f"✓ conexão com {settings.temporal_address} ({tls})")
    flags = " ".join(_cli_connection_flags(settings))
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=ns))
        out(f"✓ namespace {ns}")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            out(f"✗ namespace {ns}: {error.message}")
            return 2
        out(f"✗ namespace {ns} não existe; crie-o com:")
        out(f"  temporal operator namespace create {flags} --namespace {shlex.quote(ns)}")
        out("  (e rode `gd worker --check` de novo para os atributos de busca)")
        return 1
    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=ns))
    from temporalio.api.enums.v1 import IndexedValueType

    have = {name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_").lower()
            for name, kind in answer.custom_attributes.items()}
    missing = []
    for name, kind in CLI_TYPES.items():
        if name not in have:
            missing.append((name, kind))
        elif have[name] != kind.lower():
            problems += 1
            out(f"✗ atributo de busca {name} é {have[name]}, o código espera {kind}: "
                "um atributo não muda de tipo; remova-o e crie-o de novo (sem processos em curso)")
    if missing:
        problems += len(missing)
        out(f"✗ atributos de busca ausentes em {ns}: {', '.join(n for n, _ in missing)}; crie-os com:")
        for name, kind in missing:
            out(f"  temporal operator search-attribute create {flags} --namespace "
                f"{shlex.quote(ns)} --name {name} --type {kind}")
    elif not problems:
        out(f"✓ atributos de busca ({len(CLI_TYPES)})")
    problems += _check_store(settings, out)
    return 1 if problems else 0


def _check_store(settings: GdSettings, out) -> int:
    from activities.blobs import blob_backend
    from activities.store import SchemaOutdated, SchemaTooNew, Store

    store = Store(settings.database_url)
    try:
        revision = store.check_schema()
        out(f"✓ banco de dados na revisão {revision} (a mais nova)")
        problems = 0
    except (SchemaOutdated, SchemaTooNew) as error:
        out(f"✗ {error}")
        problems = 1
    except Exception as error:  # noqa: BLE001 - reported
        out(f"✗ banco de dados inacessível: {type(error).__name__}")
        problems = 1
    finally:
        store.dispose()
    backend = blob_backend(settings)
    where = {"database": "no banco de dados (document_blob)", "s3": f"em {settings.blob_url}",
             "local": f"no disco desta máquina ({settings.blob_dir}): só para desenvolvimento"}
    mark = "!" if backend == "local" and not is_dev(settings) else "✓"
    out(f"{mark} documentos {where[backend]}")
    return problems


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    from observability import setup_logging

    setup_logging()
    if "--check" in argv:
        raise SystemExit(asyncio.run(check(get_settings())))
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
