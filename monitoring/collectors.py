"""The figures /metrics computes when it is scraped, from the database and the shared cache.

Backlogs and states are read, not counted as they happen: what is in flight, due or open is in the
tables already, and a count kept on the side would drift from them. Each read uses an index built
for it (the partial indexes on pending operations, unsent outbox rows and open exceptions), and a
web process reads at most once per PGI_METRICS_CACHE_SECONDS however often it is scraped.

These figures, like the shared counters, are the installation's, the same from every web pod.
"""

import logging
import threading
import time

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateways.breaker import BreakerState, breaker_for
from gateways.registry import configured_codes
from payments.models import GatewayOperation, OperationKind
from pgi.events.selectors import relay_lag
from pgi.observability.celery_signals import TASK_FAILURES
from pgi.observability.shared_counters import counter_values
from settlements.reconciliation.models import ReconciliationException
from settlements.reconciliation.selectors import overdue_before

from .receivers import PAYMENT_OUTCOMES_COUNTER, REFUND_OUTCOMES_COUNTER

log = logging.getLogger(__name__)

BREAKER_STATES = tuple(state.value for state in BreakerState)
RECOVERY_KINDS = tuple(kind.value for kind in OperationKind if kind != OperationKind.REFUND)


def _operations(now) -> list[GaugeMetricFamily]:
    """Gateway operations in flight (outcome unknown) and due for another look, by kind: the
    recovery job's backlog (authorize, capture, void) and the refund job's (refund)."""
    rows = {
        row["kind"]: row
        for row in GatewayOperation.objects.pending()
        .order_by()
        .values("kind")
        .annotate(
            total=Count("id"),
            due=Count("id", filter=Q(next_look_at__lte=now)),
            oldest_due=Min("next_look_at", filter=Q(next_look_at__lte=now)),
        )
    }
    backlog = GaugeMetricFamily("pgi_recovery_backlog", "Payment operations whose outcome is not known yet, by kind.", labels=["kind"])
    due = GaugeMetricFamily("pgi_recovery_due", "Of those, the ones past their next look (the recovery job's queue).", labels=["kind"])
    for kind in RECOVERY_KINDS:
        backlog.add_metric([kind], rows.get(kind, {}).get("total", 0))
        due.add_metric([kind], rows.get(kind, {}).get("due", 0))
    oldest = min((row["oldest_due"] for kind, row in rows.items() if kind in RECOVERY_KINDS and row["oldest_due"]), default=None)
    refund = rows.get(OperationKind.REFUND, {})
    return [
        backlog,
        due,
        GaugeMetricFamily(
            "pgi_recovery_oldest_due_seconds",
            "How long the longest-waiting due payment operation has been due (0: none).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        ),
        GaugeMetricFamily("pgi_refund_backlog", "Refunds accepted whose outcome is not known yet (Pending).", value=refund.get("total", 0)),
        GaugeMetricFamily(
            "pgi_refund_due", "Of those, the ones due to be sent or sent again now (the refund job's queue).", value=refund.get("due", 0)
        ),
        GaugeMetricFamily(
            "pgi_refund_oldest_due_seconds",
            "How long the longest-waiting due refund has been due (0: none).",
            value=(now - refund["oldest_due"]).total_seconds() if refund.get("oldest_due") else 0.0,
        ),
    ]


def _outbox() -> list[GaugeMetricFamily]:
    unsent, oldest_seconds = relay_lag()
    return [
        GaugeMetricFamily("pgi_outbox_unsent", "Events written to the outbox and not yet published to Kafka.", value=unsent),
        GaugeMetricFamily(
            "pgi_outbox_oldest_unsent_seconds",
            "Age of the oldest unpublished event: the outbox relay's lag (0: none waiting).",
            value=oldest_seconds,
        ),
    ]


def _reconciliation() -> list[GaugeMetricFamily]:
    rows = (
        ReconciliationException.objects.open()
        .filter(present=True)
        .order_by()
        .values("gateway")
        .annotate(open=Count("id"), overdue=Count("id", filter=Q(first_seen_at__lt=overdue_before())))
    )
    opened = GaugeMetricFamily("pgi_reconciliation_open_exceptions", "Reconciliation exceptions not resolved, by gateway.", labels=["gateway"])
    overdue = GaugeMetricFamily(
        "pgi_reconciliation_overdue_exceptions",
        "Of those, the ones first seen more than PGI_RECONCILIATION_OVERDUE_DAYS ago.",
        labels=["gateway"],
    )
    by_gateway = {row["gateway"]: row for row in rows}
    for gateway in sorted(set(configured_codes()) | set(by_gateway)):
        opened.add_metric([gateway], by_gateway.get(gateway, {}).get("open", 0))
        overdue.add_metric([gateway], by_gateway.get(gateway, {}).get("overdue", 0))
    return [opened, overdue]


def _breakers() -> list[GaugeMetricFamily]:
    state = GaugeMetricFamily(
        "pgi_circuit_breaker_state", "1 for the state each gateway's circuit breaker is in, 0 for the others.", labels=["gateway", "state"]
    )
    failures = GaugeMetricFamily(
        "pgi_circuit_breaker_failures", "Failures the breaker counts within its window, by gateway.", labels=["gateway"]
    )
    for code in configured_codes():
        snapshot = breaker_for(code).snapshot()
        for name in BREAKER_STATES:
            state.add_metric([code, name], 1.0 if snapshot.state.value == name else 0.0)
        failures.add_metric([code], snapshot.failures)
    return [state, failures]


def _counter(name: str, metric: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(metric, documentation, labels=labels)
    for values, count in sorted(counter_values(name).items()):
        if len(values) == len(labels):
            family.add_metric(list(values), count)
    return family


def _counters() -> list[CounterMetricFamily]:
    return [
        _counter(
            PAYMENT_OUTCOMES_COUNTER,
            "pgi_payment_outcomes",
            "Payments reaching an outcome (Authorized, Completed, Failed, Cancelled), by gateway and status.",
            ["gateway", "status"],
        ),
        _counter(
            REFUND_OUTCOMES_COUNTER,
            "pgi_refund_outcomes",
            "Refunds reaching an outcome (Completed, Failed, Cancelled), by gateway and status.",
            ["gateway", "status"],
        ),
        _counter(TASK_FAILURES, "pgi_celery_task_failures", "Celery tasks that raised, by task name.", ["task"]),
    ]


# Each source separately: a database that is down must not hide the breakers, and the other way round.
SOURCES = {
    "database": lambda: [*_operations(timezone.now()), *_outbox(), *_reconciliation()],
    "cache": lambda: [*_breakers(), *_counters()],
}


def collect_all() -> list:
    families = []
    up = GaugeMetricFamily("pgi_metrics_source_up", "1 when /metrics could read this source at its last read, else 0.", labels=["source"])
    for name, read in SOURCES.items():
        try:
            families.extend(read())
            up.add_metric([name], 1.0)
        except Exception as exc:  # noqa: BLE001 - a scrape reports a source it cannot read, it does not fail
            log.warning("metrics: cannot read the %s: %s: %s", name, type(exc).__name__, exc)
            up.add_metric([name], 0.0)
    families.append(up)
    return families


class DomainCollector(Collector):
    """collect_all(), kept for PGI_METRICS_CACHE_SECONDS per process; one scrape reads at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._families: list | None = None
        self._at = 0.0

    def collect(self):
        with self._lock:
            if self._families is None or time.monotonic() - self._at >= settings.PGI_METRICS_CACHE_SECONDS:
                self._families, self._at = collect_all(), time.monotonic()
            return iter(self._families)

    def clear(self) -> None:
        with self._lock:
            self._families, self._at = None, 0.0
