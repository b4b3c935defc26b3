"""Prometheus metrics of the API (labels are bounded: route templates, actions, codes,
status and rule names; never a value a person typed).

Counted as requests are answered (``REGISTRY``): ``gd_api_requests_total``,
``gd_api_request_seconds``, ``gd_api_refusals_total``.

Read from the store when Prometheus scrapes (:class:`StoreCollector`, a few indexed SQL
statements on ``request_record`` and a count on ``outbox``), so every API instance reports
the same figures (a dashboard takes ``max`` across instances, not ``sum``). Cost per scrape
(``python -m bench.metrics_scrape URL N``, on this 2-core machine while other tests ran):
10 ms with 2,000 requests and 6,000 e-mails on SQLite; 100–180 ms with 20,000 and 60,000
(SQLite), 123 ms (PostgreSQL) — Prometheus scrapes every 15 s:

* ``gd_requests_open{kind, status}`` — requests and inquiries not closed, by status;
* ``gd_sla_overdue_requests{rule, clock}`` — open ones whose deadline has passed now
  (``listing.store_select(overdue=True)``, what ``gd list --overdue`` shows), by deadline
  rule; ``clock="paused"`` for a deadline suspended (``pause_clock``), else ``running``;
* ``gd_sla_breaches_recorded{kind}`` — SLA breaches the workflows recorded, all time
  (``request_record.sla_breaches``; the rate per rule is the worker's
  ``gd_sla_breaches_total``);
* ``gd_outbox_pending{template}`` — e-mails claimed and not yet sent or refused (a relay
  down: the activity retries);
* ``gd_outbox_oldest_pending_seconds`` — the age of the oldest of them (0: none);
* ``gd_store_up`` — 1 when those figures could be read, else 0 (and none of them).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("gd.api.metrics")

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

# name: (help, labels) of what StoreCollector reports.
STORE_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gd_requests_open": ("Requests and inquiries not closed, by status", ("kind", "status")),
    "gd_sla_overdue_requests": ("Open requests whose deadline has passed, by deadline rule",
                                ("rule", "clock")),
    "gd_sla_breaches_recorded": ("SLA breaches recorded by the workflows (all time)", ("kind",)),
    "gd_outbox_pending": ("E-mails claimed and not yet sent or refused", ("template",)),
    "gd_outbox_oldest_pending_seconds": ("Age of the oldest e-mail not yet sent", ()),
    "gd_store_up": ("1 when the store's figures could be read", ()),
}


def _family(name: str) -> GaugeMetricFamily:
    help_text, labels = STORE_METRICS[name]
    return GaugeMetricFamily(name, help_text, labels=list(labels))


class StoreCollector(Collector):
    """The business gauges, computed from the store at each scrape (see the module)."""

    def __init__(self, store, now=None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.now(timezone.utc))

    def describe(self):
        return [_family(name) for name in STORE_METRICS]

    def collect(self):
        up = _family("gd_store_up")
        try:
            families = self._read()
        except Exception as error:  # noqa: BLE001 - a scrape never fails on the store
            log.warning("store metrics not read: %s", type(error).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*families, up]

    def _read(self) -> list[GaugeMetricFamily]:
        import sqlalchemy as sa

        from activities.tables import Outbox, RequestRecord
        from domain.rules import ACCESS
        from listing import store_select

        now = self.now()
        req = RequestRecord.__table__
        out = Outbox.__table__
        families = {name: _family(name) for name in STORE_METRICS if name != "gd_store_up"}
        with self.store.connection(write=False) as conn:
            for kind, status, n in conn.execute(
                sa.select(req.c.kind, req.c.status, sa.func.count())
                .where(req.c.status.notin_(ACCESS.terminal()))
                .group_by(req.c.kind, req.c.status)
            ):
                families["gd_requests_open"].add_metric([kind, status], n)
            overdue = store_select(overdue=True, now=now).order_by(None).subquery()
            for rule, paused, n in conn.execute(
                sa.select(overdue.c.due_rule, overdue.c.clock_paused, sa.func.count())
                .group_by(overdue.c.due_rule, overdue.c.clock_paused)
            ):
                families["gd_sla_overdue_requests"].add_metric(
                    [rule or "unknown", "paused" if paused else "running"], n)
            for kind, n in conn.execute(
                sa.select(req.c.kind, sa.func.coalesce(sa.func.sum(req.c.sla_breaches), 0))
                .group_by(req.c.kind)
            ):
                families["gd_sla_breaches_recorded"].add_metric([kind], n)
            oldest = None
            for template, n, first in conn.execute(
                sa.select(out.c.template, sa.func.count(), sa.func.min(out.c.created_at))
                .where(out.c.status == "sending").group_by(out.c.template)
            ):
                families["gd_outbox_pending"].add_metric([template], n)
                first = _aware(first)
                oldest = first if oldest is None or first < oldest else oldest
        families["gd_outbox_oldest_pending_seconds"].add_metric(
            [], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        return list(families.values())


def _aware(value) -> datetime:
    """A stored UTC moment (SQLite gives naive datetimes, or text for an aggregate)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class _Scrape:
    """What /metrics serves: the counters and this app's store gauges."""

    def __init__(self, store) -> None:
        self.store = store

    def collect(self):
        yield from REGISTRY.collect()
        if self.store is not None:
            yield from StoreCollector(self.store).collect()


def exposition(store) -> bytes:
    """The Prometheus text of ``REGISTRY`` plus the store's gauges (blocking: SQL)."""
    from prometheus_client import generate_latest

    return generate_latest(_Scrape(store))
