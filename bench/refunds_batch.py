#!/usr/bin/env python
"""Refunds batch benchmark: N due refunds sent by the batch job against the simulator, beside a raw
SQL loop making the same status updates on the same rows of the same database.

One run does, in this order (see bench/README.md):
  1. drops and recreates a PostgreSQL database (default pgi_bench_refunds_batch) and migrates it;
  2. seeds N due refunds of 1.00, --per-payment on each captured payment of that many units
     (payments, the simulator's charges, refund operations and refunds, by bulk inserts);
  3. baseline: one psycopg 3 connection, per refund one transaction that locks the payment and
     makes the status updates the batch makes (operation finished, refund Completed and its history
     line, payment's refunded amount and status and its history line), then puts the rows back;
  4. the batch: refunds.services.refunds_process, in-process, --batch-size refunds per run (as the
     beat job), until nothing is due; every refund goes through the simulator (its ledger, the
     attempt row, the breaker in Redis), which the baseline does not do;
  5. prints both times, the per-refund rates and the ratio; writes bench/results/refunds-<UTC>.json;
  6. drops the database, also on error or Ctrl-C (unless --keep-db).

It never asserts timings. It exits non-zero when the run itself fails, or when the batch leaves
a refund that is not Completed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api_load import admin_execute, run_manage  # noqa: E402  (the same database setup as api_load)

RESULTS_DIR = REPO / "bench" / "results"
MERCHANT = "merchant456"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-n", "--refunds", type=int, default=100_000, help="due refunds to process")
    p.add_argument("--per-payment", type=int, default=100, help="refunds of 1.00 on each payment of this many units")
    p.add_argument("--batch-size", type=int, default=200, help="refunds per batch (PGI_REFUND_BATCH_SIZE)")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--database", default="pgi_bench_refunds_batch", help="bench database: DROPPED and recreated")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/3", help="Redis for the breaker and outage switch")
    p.add_argument("--skip-baseline", action="store_true", help="the batch only")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database in place for inspection")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def django_env(args: argparse.Namespace, db_url: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgi.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis_url,
        "PGI_CACHE_PREFIX": "pgibenchrefunds",
        "PGI_CELERY_QUEUE": "pgibenchrefunds",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PGI_SIMULATOR_LATENCY": "0",
        "PGI_SANDBOX": "true",
        "DJANGO_DEBUG": "0",  # no query log growing with every statement
        "PGI_REFUND_BATCH_SIZE": str(args.batch_size),
    }


def seed(n: int, per_payment: int) -> list[str]:
    """N due refunds of 1.00 on n / per_payment captured simulator payments. Returns the refund ids."""
    from django.db import transaction
    from django.utils import timezone as dj_timezone

    from gateways.models import SimulatorCharge
    from payments.models import GatewayOperation, OperationKind, OperationStatus, Payment, PaymentStatus
    from pgi.ids import new_id
    from pgi.merchants.models import Merchant, MerchantCurrency
    from refunds.models import Refund, RefundStatus, new_refund_id

    now = dj_timezone.now()
    merchant = Merchant.objects.get(code=MERCHANT)
    MerchantCurrency.objects.get_or_create(merchant=merchant, currency="USD")
    amount = Decimal(per_payment)
    payments_count = -(-n // per_payment)
    with transaction.atomic():
        payments = Payment.objects.bulk_create(
            [
                Payment(
                    merchant=merchant, amount=amount, captured_amount=amount, currency="USD", from_account="account123",
                    status=PaymentStatus.COMPLETED, status_changed_at=now, gateway="simulator",
                    gateway_reference=new_id("sim"),
                )
                for _ in range(payments_count)
            ],
            batch_size=2000,
        )
        SimulatorCharge.objects.bulk_create(
            [
                SimulatorCharge(
                    gateway="simulator", reference=p.gateway_reference, idempotency_key=p.id, amount=amount,
                    currency="USD", account="account123", merchant_code=MERCHANT, capture=True,
                    status=SimulatorCharge.Status.SUCCEEDED, captured_amount=amount, captured_at=now,
                )
                for p in payments
            ],
            batch_size=2000,
        )
        GatewayOperation.objects.bulk_create(
            [
                GatewayOperation(
                    payment=p, kind=OperationKind.AUTHORIZE, amount=amount, idempotency_key=p.id,
                    status=OperationStatus.SUCCEEDED, finished_at=now,
                )
                for p in payments
            ],
            batch_size=2000,
        )
    ids = [new_refund_id() for _ in range(n)]
    chunk = 10_000
    for start in range(0, n, chunk):
        with transaction.atomic():
            part = range(start, min(n, start + chunk))
            operations = GatewayOperation.objects.bulk_create(
                [
                    GatewayOperation(
                        payment=payments[i // per_payment], kind=OperationKind.REFUND, amount=Decimal("1.00"),
                        idempotency_key=ids[i], next_look_at=now,
                    )
                    for i in part
                ],
                batch_size=5000,
            )
            Refund.objects.bulk_create(
                [
                    Refund(
                        id=ids[i], payment=payments[i // per_payment], merchant=merchant, operation=op,
                        amount=Decimal("1.00"), currency="USD", status=RefundStatus.PENDING, status_changed_at=now,
                        gateway="simulator",
                    )
                    for i, op in zip(part, operations)
                ],
                batch_size=5000,
            )
    return ids


# The baseline: what refund_apply_result changes when the gateway says succeeded, as plain SQL.
LOCK_PAYMENT = "SELECT refunded_amount, captured_amount, status FROM payments_payment WHERE id = %s FOR UPDATE"
FINISH_OPERATION = (
    "UPDATE payments_gatewayoperation SET status = 'succeeded', finished_at = now(), next_look_at = NULL,"
    " lease_expires_at = NULL, updated_at = now() WHERE id = %s AND status = 'pending'"
)
COMPLETE_REFUND = (
    "UPDATE refunds_refund SET status = 'Completed', status_changed_at = now(), updated_at = now()"
    " WHERE id = %s AND status = 'Pending'"
)
REFUND_HISTORY = (
    "INSERT INTO refunds_refundstatuschange (refund_id, from_status, to_status, source, reason, failure_code, created_at)"
    " VALUES (%s, 'Pending', 'Completed', 'gateway', 'baseline', '', now())"
)
PAYMENT_REFUNDED = (
    "UPDATE payments_payment SET refunded_amount = %s, status = %s, status_changed_at = now(), updated_at = now()"
    " WHERE id = %s"
)
PAYMENT_HISTORY = (
    "INSERT INTO payments_paymentstatuschange (payment_id, from_status, to_status, source, reason, failure_code, created_at)"
    " VALUES (%s, %s, %s, 'gateway', 'baseline', '', now())"
)


def baseline(db_url: str) -> tuple[float, int]:
    """Per refund one transaction of the status updates; returns (seconds, refunds)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT r.id, r.payment_id, r.operation_id, r.amount FROM refunds_refund r"
            " JOIN payments_gatewayoperation o ON o.id = r.operation_id ORDER BY o.next_look_at, r.id"
        ).fetchall()
        conn.commit()
        started = time.perf_counter()
        for refund_id, payment_id, operation_id, amount in rows:
            with conn.transaction():
                refunded, captured, status = conn.execute(LOCK_PAYMENT, (payment_id,)).fetchone()
                conn.execute(FINISH_OPERATION, (operation_id,))
                conn.execute(COMPLETE_REFUND, (refund_id,))
                conn.execute(REFUND_HISTORY, (refund_id,))
                refunded += amount
                to_status = "Refunded" if refunded >= captured else "PartiallyRefunded"
                conn.execute(PAYMENT_REFUNDED, (refunded, to_status, payment_id))
                conn.execute(PAYMENT_HISTORY, (payment_id, status, to_status))
        elapsed = time.perf_counter() - started
    return elapsed, len(rows)


def reset(db_url: str) -> None:
    """Put back what the baseline changed, then VACUUM ANALYZE: the batch starts from the same rows."""
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM refunds_refundstatuschange")
        conn.execute("DELETE FROM payments_paymentstatuschange")
        conn.execute("UPDATE refunds_refund SET status = 'Pending'")
        conn.execute(
            "UPDATE payments_gatewayoperation SET status = 'pending', finished_at = NULL, next_look_at = created_at"
            " WHERE kind = 'refund'"
        )
        conn.execute("UPDATE payments_payment SET refunded_amount = 0, status = 'Completed'")
        conn.commit()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def batch(batch_size: int) -> tuple[float, int, dict[str, int], int]:
    """refunds_process until nothing is due; returns (seconds, refunds, counts, SQL statements)."""
    from django.db import connection

    from refunds.services import refunds_process

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    totals = {"completed": 0, "failed": 0, "waiting": 0, "flagged": 0}
    started = time.perf_counter()
    last_report = started
    with connection.execute_wrapper(count):
        while True:
            counts = refunds_process(limit=batch_size)
            if not sum(counts.values()):
                break
            for outcome, value in counts.items():
                totals[outcome] += value
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                done = sum(totals.values())
                log(f"batch: {done} refunds in {last_report - started:.0f} s ({done / (last_report - started):.0f}/s)")
    elapsed = time.perf_counter() - started
    return elapsed, sum(totals.values()), totals, statements


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_url = f"{args.pg}/{args.database}"
    env = django_env(args, db_url)
    env.pop("PYTEST_XDIST_WORKER", None)
    started = datetime.now(timezone.utc)
    failed = False
    try:
        log(f"database {args.database}: drop and create, migrate")
        admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
        run_manage(env, "migrate", "--noinput", "-v0")
        run_manage(env, "create_merchant", MERCHANT, "--name", "Bench merchant", "--currencies", "USD")

        os.environ.update(env)  # Django in this process, on the bench database
        import django

        django.setup()
        from django.core.cache import cache

        cache.clear()  # the breaker and the outage switch of an earlier run
        log(f"seed {args.refunds} due refunds on {-(-args.refunds // args.per_payment)} payments")
        t = time.perf_counter()
        seed(args.refunds, args.per_payment)
        log(f"seeded in {time.perf_counter() - t:.1f} s")

        raw_s = raw_n = None
        if not args.skip_baseline:
            log("baseline: raw SQL status updates, one transaction per refund")
            raw_s, raw_n = baseline(db_url)
            log(f"baseline: {raw_n} in {raw_s:.1f} s; putting the rows back")
            reset(db_url)

        log(f"batch: refunds_process, {args.batch_size} per run, against the simulator")
        batch_s, batch_n, counts, statements = batch(args.batch_size)

        from refunds.models import Refund, RefundStatus

        left = Refund.objects.exclude(status=RefundStatus.COMPLETED).count()
        failed = left > 0 or batch_n != args.refunds

        result = {
            "started": started.isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "refunds": args.refunds,
            "per_payment": args.per_payment,
            "batch_size": args.batch_size,
            "batch": {
                "seconds": round(batch_s, 2),
                "refunds": batch_n,
                "per_second": round(batch_n / batch_s, 1),
                "ms_per_refund": round(1000 * batch_s / batch_n, 3),
                "sql_statements_per_refund": round(statements / batch_n, 1),
                "outcomes": counts,
                "not_completed_after": left,
            },
        }
        if raw_s is not None:
            result["baseline"] = {
                "seconds": round(raw_s, 2),
                "refunds": raw_n,
                "per_second": round(raw_n / raw_s, 1),
                "ms_per_refund": round(1000 * raw_s / raw_n, 3),
                "sql_statements_per_refund": 6,
            }
            result["ratio_batch_to_baseline"] = round(batch_s / raw_s, 2)

        print()
        print(f"| {args.refunds} due refunds | seconds | refunds/s | ms/refund | SQL/refund |")
        print("|---|---:|---:|---:|---:|")
        b = result["batch"]
        print(f"| batch (refunds_process, simulator) | {b['seconds']} | {b['per_second']} | {b['ms_per_refund']} | {b['sql_statements_per_refund']} |")
        if raw_s is not None:
            r = result["baseline"]
            print(f"| raw SQL status updates (psycopg) | {r['seconds']} | {r['per_second']} | {r['ms_per_refund']} | 6 |")
            print(f"\nbatch / baseline: {result['ratio_batch_to_baseline']}x")
        print(f"outcomes: {counts}; not Completed afterwards: {left}")
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"refunds-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results in {out}")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        if not args.keep_db:
            from django.db import connections

            try:
                connections.close_all()
            except Exception:  # Django may not be set up yet
                pass
            admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
