#!/usr/bin/env python
"""Benchmark: one bulk refund file of --rows rows through refunds.bulk.refund_file_upload.

One run:
  1. drops and recreates a PostgreSQL database (default pgi_bench_refunds) and migrates it;
  2. makes one merchant, one staff user and --rows captured USD payments (10.00 each), set-based;
  3. writes the worst case: a CSV with one row per payment (every payment locked), each with an
     idempotency_key (every key looked up), 4.00 each;
  4. times refund_file_upload on it (reading, checks under the locks, the writes, the commit) and,
     apart, the parse alone; checks that the file was accepted with every refund;
  5. prints the figures and drops the database (--keep-db to look at it).

It never asserts a timing: the figure depends on the machine. The target: 100,000 rows in under a
minute on 2 cores, inside the web timeout (gunicorn.conf.py, PGI_WEB_TIMEOUT 60 s).

    .venv/bin/python bench/refund_file_upload.py                 # 100,000 rows
    .venv/bin/python bench/refund_file_upload.py --rows 20000 --keep-db
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent


def admin_execute(pg: str, sql: str) -> None:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server, without a database")
    parser.add_argument("--database", default="pgi_bench_refunds", help="dropped and recreated")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
    os.environ["DATABASE_URL"] = f"{args.pg}/{args.database}"
    os.environ.setdefault("PGI_SANDBOX", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        log(f"migrate {args.database}")
        call_command("migrate", verbosity=0)
        content = prepare(args.rows)
        log(f"file: {args.rows:,} rows, {len(content) / 1e6:.1f} MB")
        run(content, args.rows)
    finally:
        connections.close_all()
        if not args.keep_db:
            admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            log(f"database {args.database} dropped")
    return 0


def prepare(rows: int) -> bytes:
    import csv
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from payments.models import Payment
    from pgi.merchants.models import Merchant, MerchantCurrency

    merchant = Merchant.objects.create(code="bench", name="Bench merchant")
    MerchantCurrency.objects.create(merchant=merchant, currency="USD")
    get_user_model().objects.create_user("bench", password="bench", is_staff=True)
    log(f"{rows:,} captured payments")
    now, ids = timezone.now(), []
    for start in range(0, rows, 10_000):
        made = Payment.objects.bulk_create(
            [
                Payment(
                    merchant=merchant,
                    amount=Decimal("10.00"),
                    currency="USD",
                    from_account="account123",
                    status="Completed",
                    status_changed_at=now,
                    gateway="simulator",
                    captured_amount=Decimal("10.00"),
                )
                for _ in range(min(10_000, rows - start))
            ]
        )
        ids += [p.id for p in made]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["payment_id", "amount", "reason", "idempotency_key"])
    writer.writerows((pid, "4.00", "bench refund", f"bench-{n:06d}") for n, pid in enumerate(reversed(ids)))
    return out.getvalue().encode()


def run(content: bytes, rows: int) -> None:
    from django.contrib.auth import get_user_model

    from refunds.bulk import refund_file_parse, refund_file_upload
    from refunds.models import Refund, RefundFile

    started = time.perf_counter()
    parsed, errors = refund_file_parse(content)
    parse_seconds = time.perf_counter() - started
    assert len(parsed) == rows and not errors, errors[:5]

    user = get_user_model().objects.get(username="bench")
    started = time.perf_counter()
    refund_file = refund_file_upload(name="bench.csv", content=content, user=user)
    seconds = time.perf_counter() - started
    assert refund_file.outcome == RefundFile.Outcome.ACCEPTED, refund_file.error_report[:500]
    made = Refund.objects.filter(refund_file=refund_file).count()
    assert made == rows, made
    log(f"parse alone: {parse_seconds:.2f} s")
    print(
        f"refund_file_upload: {rows:,} rows accepted in {seconds:.1f} s ({rows / seconds:,.0f} rows/s); "
        f"{made:,} refunds, totals {refund_file.total_by_currency}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
