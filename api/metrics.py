"""Prometheus metrics of the API (labels are bounded: route templates, actions, codes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "gd_api_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "gd_api_request_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
REFUSALS = Counter(
    "gd_api_refusals_total",
    "Refused calls (401/403/409/412/422) by action and reason code",
    ["status", "action", "reason"],
    registry=REGISTRY,
)
