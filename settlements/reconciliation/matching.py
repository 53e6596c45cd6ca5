"""The matching of one report to PGI's records, in SQL: every report line and every payment and
refund of the gateway's day lands in one row of a temporary result table with its category; the
run's totals are a GROUP BY over it and its exceptions an upsert of its non-matched rows.

A line is matched by the gateway's reference, else by PGI's id as the report carries it:
payment lines to payments of the gateway created within lookback_days before the day, refund lines
to its refunds; a line whose references contradict each other matches nothing. Of the lines of the
same payment or refund, one that agrees in full is the booking (else the first), judged (currency,
then status, then amount); the others are duplicates. Lines matching nothing, chargebacks, fee and
other lines, and the day's webhooks the gateway layer kept as `unmatched` (when no line names the
same reference) are unknown to PGI; the day's operations (recon_ops: captured payments and completed
refunds) that no line booked are missing at the gateway. dialect.py: the few fragments that differ
on SQLite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection

from gateways.models import GatewayNotification
from payments.models import Payment, PaymentStatus, PaymentStatusChange
from refunds.models import Refund, RefundStatus
from settlements import dialect
from settlements.models import LineKind as SettlementLineKind
from settlements.models import SettlementLine

from .models import Category, GatewayReportLine, ReconciliationException, ReconciliationTotal
from .timing import phase

P = Payment._meta.db_table
C = PaymentStatusChange._meta.db_table
R = Refund._meta.db_table
N = GatewayNotification._meta.db_table
S = SettlementLine._meta.db_table
LINES = GatewayReportLine._meta.db_table
T = ReconciliationTotal._meta.db_table
X = ReconciliationException._meta.db_table
RESULT = "recon_result"
OPS = "recon_ops"
CHARGED = (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
_CHARGED_SQL = ", ".join(f"'{status}'" for status in CHARGED)
m = dialect.money
NUL = "CAST(NULL AS numeric)"  # typed, so UNION ALL branches agree


@dataclass
class Totals:
    """A run's totals: {(category, currency): [count, report_amount, pgi_amount, report_fee, pgi_fee,
    fee_differences, webhook_amount]}, and its counts."""

    by_category: dict[tuple[str, str], list] = field(default_factory=dict)
    lines: int = 0
    operations: int = 0

    def count(self, category: str) -> int:
        return sum(values[0] for (cat, _), values in self.by_category.items() if cat == category)

    @property
    def matched(self) -> int:
        return self.count(Category.MATCHED)

    @property
    def exceptions(self) -> int:
        return sum(values[0] for (cat, _), values in self.by_category.items() if cat != Category.MATCHED)


def _operations_sql() -> str:
    """The day's operations (what PGI moved that day with the gateway): payments that moved to
    Completed during the day and are still charged, with their captured amount; refunds completed
    during the day. Each is counted once in pgi_amount, whatever its category."""
    return f"""
    CREATE TEMP TABLE {OPS} AS
    SELECT 'payment' AS kind, p.id, {dialect.stored(m("COALESCE(p.captured_amount, p.amount)"))} AS amount, p.currency,
      p.gateway_reference, p.status, p.id AS payment_id, NULL AS refund_id
    FROM {P} p
    WHERE p.gateway = %(gateway)s AND p.status IN ({_CHARGED_SQL}) AND p.status_changed_at >= %(start)s
      AND EXISTS (SELECT 1 FROM {C} c WHERE c.payment_id = p.id AND c.to_status = '{PaymentStatus.COMPLETED}'
        AND c.created_at >= %(start)s AND c.created_at < %(end)s)
    UNION ALL
    SELECT 'refund', r.id, r.amount, r.currency, r.gateway_reference, r.status, r.payment_id, r.id
    FROM {R} r
    WHERE r.gateway = %(gateway)s AND r.status = '{RefundStatus.COMPLETED}'
      AND r.status_changed_at >= %(start)s AND r.status_changed_at < %(end)s
    """


def _lines_sql() -> str:
    """One row per report line: what it matched (the payment's or refund's values), whether its
    references contradict each other (then it matches nothing), and its rank among the lines of the
    same payment, refund or reference (a line that agrees in full ranks first)."""
    charged = f"k.pgi_status IN ({_CHARGED_SQL})"
    return f"""
    WITH m0 AS (
      SELECT l.line_no, l.kind, l.gateway_reference, l.payment_id AS report_payment_id,
        l.refund_id AS report_refund_id, l.amount AS report_amount, l.currency AS report_currency,
        l.fee AS report_fee, l.status AS report_status,
        COALESCE(pr.id, pi.id) AS found_pay, COALESCE(rr.id, ri.id) AS found_ref,
        CASE
          WHEN pr.id IS NOT NULL AND l.payment_id <> '' AND l.payment_id <> pr.id
            THEN 'conflicting references: the gateway reference is payment ' || pr.id || '''s, the payment id '
              || l.payment_id
          WHEN pi.id IS NOT NULL AND l.gateway_reference <> '' AND pi.gateway_reference <> ''
              AND pi.gateway_reference <> l.gateway_reference
            THEN 'conflicting references: payment ' || pi.id || '''s gateway reference is ' || pi.gateway_reference
          WHEN rr.id IS NOT NULL AND l.refund_id <> '' AND l.refund_id <> rr.id
            THEN 'conflicting references: the gateway reference is refund ' || rr.id || '''s, the refund id '
              || l.refund_id
          WHEN ri.id IS NOT NULL AND l.gateway_reference <> '' AND ri.gateway_reference <> ''
              AND ri.gateway_reference <> l.gateway_reference
            THEN 'conflicting references: refund ' || ri.id || '''s gateway reference is ' || ri.gateway_reference
          WHEN COALESCE(rr.id, ri.id) IS NOT NULL AND l.payment_id <> ''
              AND l.payment_id <> COALESCE(rr.payment_id, ri.payment_id)
            THEN 'conflicting references: refund ' || COALESCE(rr.id, ri.id) || ' is of payment '
              || COALESCE(rr.payment_id, ri.payment_id) || ', the line names payment ' || l.payment_id
        END AS conflict,
        COALESCE(COALESCE(pr.captured_amount, pr.amount), COALESCE(pi.captured_amount, pi.amount), rr.amount, ri.amount)
          AS pgi_amount,
        COALESCE(pr.currency, pi.currency, rr.currency, ri.currency) AS pgi_currency,
        COALESCE(pr.status, pi.status, rr.status, ri.status) AS pgi_status
      FROM {LINES} l
      LEFT JOIN {P} pr ON l.kind = 'payment' AND l.gateway_reference <> '' AND pr.gateway_reference = l.gateway_reference
        AND pr.gateway = %(gateway)s AND pr.created_at >= %(since)s
      LEFT JOIN {P} pi ON l.kind = 'payment' AND pr.id IS NULL AND l.payment_id <> '' AND pi.id = l.payment_id
        AND pi.gateway = %(gateway)s
      LEFT JOIN {R} rr ON l.kind = 'refund' AND l.gateway_reference <> '' AND rr.gateway_reference = l.gateway_reference
        AND rr.gateway = %(gateway)s
      LEFT JOIN {R} ri ON l.kind = 'refund' AND rr.id IS NULL AND l.refund_id <> '' AND ri.id = l.refund_id
        AND ri.gateway = %(gateway)s
      WHERE l.report_id = %(report)s
    ),
    m AS (
      SELECT line_no, kind, gateway_reference, report_payment_id, report_refund_id, report_amount, report_currency,
        report_fee, report_status, conflict,
        CASE WHEN conflict IS NULL THEN found_pay END AS pay_id, CASE WHEN conflict IS NULL THEN found_ref END AS ref_id,
        CASE WHEN conflict IS NULL THEN pgi_amount END AS pgi_amount,
        CASE WHEN conflict IS NULL THEN pgi_currency END AS pgi_currency,
        CASE WHEN conflict IS NULL THEN pgi_status END AS pgi_status
      FROM m0
    ),
    k0 AS (
      SELECT m.*, COALESCE(pay_id, ref_id, NULLIF(gateway_reference, ''), NULLIF(report_payment_id, ''),
          'line ' || line_no) AS target,
        CASE WHEN (pay_id IS NOT NULL OR ref_id IS NOT NULL) AND report_currency = pgi_currency
          AND ((pay_id IS NOT NULL AND pgi_status IN ({_CHARGED_SQL}))
            OR (ref_id IS NOT NULL AND pgi_status = '{RefundStatus.COMPLETED}'))
          AND {m("report_amount")} = {m("pgi_amount")} THEN 0 ELSE 1 END AS inexact
      FROM m
    ),
    k AS (
      SELECT k0.*, row_number() OVER (PARTITION BY kind, target ORDER BY inexact, line_no) AS rank FROM k0
    )
    SELECT
      CASE
        WHEN k.rank > 1 THEN '{Category.DUPLICATE}'
        WHEN k.pay_id IS NULL AND k.ref_id IS NULL THEN '{Category.UNKNOWN_TO_PGI}'
        WHEN k.report_currency <> k.pgi_currency THEN '{Category.CURRENCY_MISMATCH}'
        WHEN (k.pay_id IS NOT NULL AND NOT ({charged}))
          OR (k.ref_id IS NOT NULL AND k.pgi_status <> '{RefundStatus.COMPLETED}') THEN '{Category.STATUS_MISMATCH}'
        WHEN k.inexact = 1 THEN '{Category.AMOUNT_MISMATCH}'
        ELSE '{Category.MATCHED}'
      END AS category,
      CASE WHEN k.pay_id IS NULL AND k.ref_id IS NULL THEN k.kind || ':' || k.target ELSE k.target END
        || CASE WHEN k.rank > 1 THEN '#' || k.rank ELSE '' END AS reference,
      k.kind, k.line_no, k.report_currency AS currency, k.report_amount AS amount,
      k.report_amount, k.report_currency, k.report_fee, k.report_status, k.report_payment_id,
      k.report_refund_id, k.gateway_reference,
      k.pgi_amount, COALESCE(k.pgi_currency, '') AS pgi_currency, s.fee AS pgi_fee, COALESCE(k.pgi_status, '') AS pgi_status,
      k.pay_id AS payment_id, k.ref_id AS refund_id,
      CASE WHEN k.rank > 1 THEN 'repeats an earlier line' ELSE COALESCE(k.conflict, '') END AS detail,
      CASE WHEN k.rank = 1 AND k.report_fee IS NOT NULL AND s.fee IS NOT NULL
        AND {m("k.report_fee")} <> {m("s.fee")} THEN 1 ELSE 0 END AS fee_difference,
      CASE WHEN k.rank = 1 AND o.id IS NOT NULL THEN 1 ELSE 0 END AS pgi_counted,
      CAST(NULL AS numeric) AS webhook_amount
    FROM k
    LEFT JOIN {S} s ON k.kind = 'payment' AND s.payment_id = k.pay_id AND s.kind = '{SettlementLineKind.PAYMENT}'
    LEFT JOIN {OPS} o ON o.kind = k.kind AND o.id = COALESCE(k.pay_id, k.ref_id)
    """


_RESULT_COLUMNS = (
    "category, reference, kind, line_no, currency, amount, report_amount, report_currency, report_fee, report_status,"
    " report_payment_id, report_refund_id, gateway_reference, pgi_amount, pgi_currency, pgi_fee, pgi_status,"
    " payment_id, refund_id, detail, fee_difference, pgi_counted, webhook_amount"
)


def _missing_sql() -> str:
    return f"""
    INSERT INTO {RESULT} ({_RESULT_COLUMNS})
    SELECT '{Category.MISSING_AT_GATEWAY}', o.id, o.kind, NULL, o.currency, o.amount,
      NULL, '', NULL, '', '', '', o.gateway_reference, o.amount, o.currency, s.fee, o.status,
      o.payment_id, o.refund_id,
      CASE o.kind WHEN 'payment' THEN 'captured at PGI, not in the report' ELSE 'refunded at PGI, not in the report' END,
      0, 1, NULL
    FROM {OPS} o
    LEFT JOIN {S} s ON o.kind = 'payment' AND s.payment_id = o.id AND s.kind = '{SettlementLineKind.PAYMENT}'
    WHERE NOT EXISTS (SELECT 1 FROM {RESULT} x WHERE x.pgi_counted = 1 AND x.kind = o.kind
      AND COALESCE(x.refund_id, x.payment_id) = o.id)
    """


def _unmatched_webhooks_sql() -> str:
    # Webhook-only entries: counted as unknown to PGI, their amount in webhook_amount (neither the
    # report's nor PGI's money).
    return f"""
    INSERT INTO {RESULT} ({_RESULT_COLUMNS})
    SELECT '{Category.UNKNOWN_TO_PGI}', 'webhook:' || n.event_id, '', NULL, n.currency, COALESCE(n.amount, 0),
      NULL, '', NULL, n.status, n.payment_id, n.refund_id, n.gateway_reference, NULL, '', NULL, '',
      NULL, NULL, 'webhook ' || n.event_type || ' for no payment at PGI', 0, 0, n.amount
    FROM {N} n
    WHERE n.gateway = %(gateway)s AND n.outcome = '{GatewayNotification.Outcome.UNMATCHED}'
      AND n.received_at >= %(start)s AND n.received_at < %(end)s
      AND NOT EXISTS (SELECT 1 FROM {RESULT} x WHERE x.line_no IS NOT NULL AND (
        (n.gateway_reference <> '' AND x.gateway_reference = n.gateway_reference)
        OR (n.payment_id <> '' AND x.report_payment_id = n.payment_id)))
    """


def _totals_sql() -> str:
    """Per category and currency: the count (by the row's currency: the report's, else PGI's), the
    report's amounts (its lines, in their currency), PGI's (the day's operations, each once, in
    PGI's currency) and the webhook-only amounts."""
    return f"""
    SELECT category, currency, SUM(n), SUM(report_amount), SUM(pgi_amount), SUM(report_fee), SUM(pgi_fee),
      SUM(fee_difference), SUM(webhook_amount)
    FROM (
      SELECT category, COALESCE(currency, '') AS currency, 1 AS n, {NUL} AS report_amount, {NUL} AS pgi_amount,
        {NUL} AS report_fee, {NUL} AS pgi_fee, fee_difference, {m("webhook_amount")} AS webhook_amount
      FROM {RESULT}
      UNION ALL
      SELECT category, report_currency, 0, {m("report_amount")}, {NUL}, {m("report_fee")}, {NUL}, 0, {NUL}
      FROM {RESULT} WHERE line_no IS NOT NULL
      UNION ALL
      SELECT category, pgi_currency, 0, {NUL}, {m("pgi_amount")}, {NUL}, {m("pgi_fee")}, 0, {NUL}
      FROM {RESULT} WHERE pgi_counted = 1
    ) t
    GROUP BY category, currency ORDER BY category, currency
    """


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def match(*, run_id: int | None, gateway: str, day: dt.date, report_id: int | None, now: dt.datetime,
          progress=None) -> Totals:  # fmt: skip
    """Match the report to PGI's day and, when run_id is given, write the run's totals and upsert
    its exceptions (a dry run passes None: the totals are returned, nothing is written)."""
    start, end = day_bounds(day)
    lookback = settings.PGI_RECONCILIATION["lookback_days"]
    params = {
        "gateway": gateway,
        "report": report_id if report_id is not None else -1,
        "since": dialect.moment(start - dt.timedelta(days=lookback)),
        "start": dialect.moment(start),
        "end": dialect.moment(end),
    }
    step = progress or (lambda name: None)
    totals = Totals()
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {RESULT}")
        cursor.execute(f"DROP TABLE IF EXISTS {OPS}")
        with phase("operations"):
            cursor.execute(_operations_sql(), params)
        if postgresql:
            cursor.execute(f"ANALYZE {OPS}")
        else:
            cursor.execute(f"CREATE INDEX {OPS}_id ON {OPS} (id)")
        cursor.execute(f"SELECT COUNT(*) FROM {OPS}")
        totals.operations = cursor.fetchone()[0] or 0
        with phase("lines matched"):
            cursor.execute(f"CREATE TEMP TABLE {RESULT} AS {_lines_sql()}", params)
        step("report lines matched")
        totals.lines = cursor.rowcount if cursor.rowcount and cursor.rowcount > 0 else 0
        if postgresql:
            # Statistics for the anti-joins below (hash joins over the result; no index to build).
            with phase("result analyzed"):
                cursor.execute(f"ANALYZE {RESULT}")
        else:
            # SQLite has no hash join: the anti-joins look the result up by payment and refund id.
            cursor.execute(f"CREATE INDEX {RESULT}_payment ON {RESULT} (payment_id)")
            cursor.execute(f"CREATE INDEX {RESULT}_refund ON {RESULT} (refund_id)")
        with phase("missing"):
            cursor.execute(_missing_sql(), params)
        step("PGI's payments and refunds of the day matched")
        with phase("webhooks"):
            cursor.execute(_unmatched_webhooks_sql(), params)
        with phase("totals"):
            cursor.execute(_totals_sql())
        rows = cursor.fetchall()
        if not totals.lines:
            cursor.execute(f"SELECT COUNT(*) FROM {RESULT} WHERE line_no IS NOT NULL")
            totals.lines = cursor.fetchone()[0]
        zero = Decimal(0)
        for category, currency, count, *amounts, differences, webhook in rows:
            values = [dialect.to_decimal(v) if v is not None else zero for v in (*amounts, webhook)]
            totals.by_category[(category, currency)] = [count, *values[:4], int(differences or 0), values[4]]
        step("totals")
        if run_id is not None:
            with phase("totals and exceptions written"):
                _write(cursor, run_id=run_id, gateway=gateway, day=day, now=now, totals=totals)
            step("exceptions")
        cursor.execute(f"DROP TABLE IF EXISTS {RESULT}")
        cursor.execute(f"DROP TABLE IF EXISTS {OPS}")
    return totals


def _write(cursor, *, run_id: int, gateway: str, day: dt.date, now: dt.datetime, totals: Totals) -> None:
    cursor.execute(f"DELETE FROM {T} WHERE run_id = %s", [run_id])
    rows = [
        (run_id, category, currency, count, *(str(v) for v in amounts), differences, str(webhook))
        for (category, currency), (count, *amounts, differences, webhook) in totals.by_category.items()
    ]
    if rows:
        cursor.executemany(
            f"INSERT INTO {T} (run_id, category, currency, count, report_amount, pgi_amount, report_fee, pgi_fee,"
            " fee_differences, webhook_amount) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    params = {"run": run_id, "gateway": gateway, "day": dialect.moment(day), "now": dialect.moment(now)}
    refreshed = (
        "run_id", "currency", "amount", "report_amount", "report_currency", "report_fee", "report_status",
        "report_kind", "report_payment_id", "report_refund_id", "line_no", "gateway_reference", "pgi_amount",
        "pgi_currency", "pgi_fee", "pgi_status", "payment_id", "refund_id", "detail", "present", "last_seen_at",
    )  # fmt: skip
    cursor.execute(
        f"""
        INSERT INTO {X} (run_id, gateway, day, category, reference, currency, amount, report_amount, report_currency,
          report_fee, report_status, report_kind, report_payment_id, report_refund_id, line_no, gateway_reference,
          pgi_amount, pgi_currency, pgi_fee, pgi_status, payment_id, refund_id, detail, present, first_seen_at,
          last_seen_at, resolution, resolution_note)
        SELECT %(run)s, %(gateway)s, %(day)s, category, reference, COALESCE(currency, ''), amount, report_amount,
          COALESCE(report_currency, ''), report_fee, COALESCE(report_status, ''), COALESCE(kind, ''),
          COALESCE(report_payment_id, ''), COALESCE(report_refund_id, ''), line_no, COALESCE(gateway_reference, ''),
          pgi_amount, COALESCE(pgi_currency, ''), pgi_fee, COALESCE(pgi_status, ''), payment_id, refund_id,
          substr(COALESCE(detail, ''), 1, 255), TRUE, %(now)s, %(now)s, '', ''
        FROM {RESULT} WHERE category <> '{Category.MATCHED}'
        ON CONFLICT (gateway, day, category, reference) DO UPDATE SET
        """
        + ", ".join(f"{name} = EXCLUDED.{name}" for name in refreshed),
        params,
    )
    # What this run did not find (its last_seen_at is not this run's): an open one is gone, a
    # resolved one is kept, marked not present. No join with the result: each exception is written
    # once per rerun (an anti-join per exception against the result was a nested loop, minutes).
    gone = "gateway = %(gateway)s AND day = %(day)s AND last_seen_at <> %(now)s"
    cursor.execute(f"DELETE FROM {X} WHERE {gone} AND resolution = ''", params)
    cursor.execute(f"UPDATE {X} SET present = FALSE WHERE {gone} AND present", params)
