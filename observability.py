"""Logs of the worker and the API: one format, trace ids, no personal data.

``setup_logging()`` (called by ``python -m worker`` and ``gd api``) configures the root
logger from the environment:

* ``GD_LOG_FORMAT``: ``text`` (the default: one readable line, for a terminal in dev) or
  ``json`` (one JSON object per line, for a log collector): ``time`` (UTC, ISO 8601),
  ``level``, ``logger``, ``message``; ``trace_id`` and ``span_id`` of the OpenTelemetry
  span in force when there is one (the API's request span, an activity's span), so a log
  line leads to its trace; ``workflow_id``, ``workflow_type``, ``activity_type``,
  ``attempt`` inside an activity (and ``workflow_id``/``workflow_type`` for a workflow's
  own logger); ``exception`` with the traceback;
* ``GD_LOG_LEVEL``: ``DEBUG``, ``INFO`` (the default), ``WARNING``, ``ERROR``.

Every line passes :class:`RedactingFilter`: CPF, CNPJ, e-mail addresses and phone numbers
found in a message or a traceback are masked (``[cpf]``, ``[cnpj]``, ``[email]``,
``[telefone]``) before any handler writes it. The code logs ids and codes only; the filter
is the net under a message that would quote a value a person typed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import datetime, timezone

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Most specific first: a CNPJ's digits would otherwise half-match a CPF or a phone.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(r"(?<![\d/.-])\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}(?![\d/-])"), "[cnpj]"),
    (re.compile(r"(?<![\d/.-])\d{3}\.?\d{3}\.?\d{3}-?\d{2}(?![\d/-])"), "[cpf]"),
    # (31) 99876-5432, 31 98888-7777, +55 31 3333-4444, 31988887777 (DDD + 9 + 8 digits)
    (re.compile(r"(?:\+?55[\s-]?)?(?:\(\d{2}\)|(?<![\d.])\d{2})[\s-]?9?\d{4}[\s-]\d{4}(?![\d-])"), "[telefone]"),
    (re.compile(r"(?<![\d.-])(?:\+?55)?\d{2}9\d{8}(?![\d-])"), "[telefone]"),
)


def redact(text: str) -> str:
    """``text`` with every CPF, CNPJ, e-mail address and phone number masked."""
    for pattern, mask in _PATTERNS:
        text = pattern.sub(mask, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks personal data in the message (its arguments merged in) and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep the raw text
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _trace_ids() -> dict[str, str]:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - installed with the project
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def _temporal_fields(record: logging.LogRecord) -> dict[str, object]:
    """Where the line was written: the activity (its info), or what the SDK's workflow and
    activity loggers attach to their records."""
    fields: dict[str, object] = {}
    for key in ("temporal_workflow", "temporal_activity"):
        extra = getattr(record, key, None)
        if isinstance(extra, dict):
            for name in ("workflow_id", "workflow_type", "activity_type", "attempt"):
                if extra.get(name) is not None:
                    fields[name] = extra[name]
    try:
        from temporalio import activity

        if activity.in_activity():
            info = activity.info()
            fields.update(workflow_id=info.workflow_id, workflow_type=info.workflow_type,
                          activity_type=info.activity_type, attempt=info.attempt)
    except Exception:  # noqa: BLE001 - never fail a log line
        pass
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_trace_ids())
        line.update(_temporal_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The dev line, with the trace id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _trace_ids()
        return f"{text} trace_id={ids['trace_id']}" if ids else text


class LogConfigError(SystemExit):
    """A bad GD_LOG_* variable (the message names it, pt-BR)."""


def log_settings(environ: dict[str, str] | None = None) -> tuple[str, str]:
    environ = os.environ if environ is None else environ
    fmt = (environ.get("GD_LOG_FORMAT") or "text").strip().lower()
    level = (environ.get("GD_LOG_LEVEL") or "INFO").strip().upper()
    if fmt not in FORMATS:
        raise LogConfigError(f"GD_LOG_FORMAT={fmt}: use {' ou '.join(FORMATS)}")
    if level not in LEVELS:
        raise LogConfigError(f"GD_LOG_LEVEL={level}: use {', '.join(LEVELS)}")
    return fmt, level


def make_handler(fmt: str, stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def setup_logging(environ: dict[str, str] | None = None, stream=None) -> logging.Handler:
    """Replace the root logger's handlers with one handler of GD_LOG_FORMAT at GD_LOG_LEVEL."""
    fmt, level = log_settings(environ)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(fmt, stream)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


# --- traces -----------------------------------------------------------------------------------
# The process's tracer provider: set by ``worker.tracing_interceptors`` when
# OTEL_EXPORTER_OTLP_ENDPOINT is set (a test may put its own here). None: no spans at all.

_PROVIDER = None


def use_tracer_provider(provider) -> None:
    global _PROVIDER
    _PROVIDER = provider


def tracer_provider():
    """This process's SDK tracer provider, or the global one when it is an SDK provider
    (something else in the process set it up), else None."""
    if _PROVIDER is not None:
        return _PROVIDER
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


# Probes and scrapes: every few seconds, from every prober; no span.
UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics")


def server_span(scope_headers, method: str, path: str = ""):
    """A SERVER span for one HTTP request, child of the caller's ``traceparent`` when it
    sent one; a null context when tracing is off or for ``UNTRACED_PATHS``. The span is
    named and given its route and status by :func:`end_server_span` (the route is known
    once routing ran)."""
    from contextlib import nullcontext

    provider = tracer_provider()
    if provider is None or path in UNTRACED_PATHS:
        return nullcontext(None)
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    return provider.get_tracer("gd-api").start_as_current_span(
        f"HTTP {method}", context=extract(scope_headers), kind=SpanKind.SERVER,
        attributes={"http.request.method": method})


def end_server_span(span, method: str, route: str, status: int) -> None:
    """Name the span ``GET /api/v1/requests/{request_id}`` (the route's template: never a
    path with ids or a query string in it) and record the status."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
