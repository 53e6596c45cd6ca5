#!/usr/bin/env python
"""Finance UI benchmark: the server time and query count of each /finance/ page with 1,000,000
payments in the database.

One run does, in this order (see bench/README.md, "Finance UI"):
  1. drops and recreates a PostgreSQL database (default pgi_bench_finance), migrates it and seeds
     it as bench/settlement_batch.py does (N payments by COPY, 10 % refunded), then settles them
     (`manage.py settle`: one batch per merchant and currency, a line per payment and refund);
  2. spreads the payments over the last 30 days, three gateways and the statuses a day has
     (about 8 % failed, 1 % without an answer), and CLUSTERs the table on created_at, as rows
     written in time order lie; VACUUM ANALYZE;
  3. in a child process with Django set up: a member of Finance signed in (Django's test client,
     so every middleware runs: session, authentication, CSP), the dashboard's first view (which
     rolls the past 29 days up, once), then each page --repeat times: median and slowest server
     time, and the queries it ran; the CSV exports streamed to the end. With a reconciliation run in
     the database (the run with the most exceptions), its pages too;
  4. prints a table, writes bench/results/finance-ui-<UTC>.json, drops the database (unless --keep-db).

Step 2 ends with a reconciliation of today's simulator report (every simulator payment, 1 % with
another amount, 300 lines PGI does not know): a run with over 100,000 exceptions, for the
reconciliation pages.

It never asserts timings. --reuse skips steps 1-2 (it only migrates) on a database a --keep-db run left.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import settlement_batch  # noqa: E402  (the same seed and settle as the settlement benchmark)
from api_load import admin_execute, run_manage  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-n", "--payments", type=int, default=1_000_000)
    p.add_argument("--merchants", type=int, default=10)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--database", default="pgi_bench_finance", help="bench database: DROPPED and recreated")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    p.add_argument("--repeat", type=int, default=15, help="timed requests per page")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--reuse", action="store_true", help="use the database a --keep-db run left; seed nothing")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


SPREAD_SQL = """
UPDATE payments_payment SET
  created_at = now() - (abs(hashtext(id)) % (30 * 86400)) * interval '1 second',
  gateway = (ARRAY['simulator', 'stripe', 'adyen'])[1 + abs(hashtext(id || 'g')) % 3],
  currency = (ARRAY['EUR', 'USD', 'GBP', 'EUR'])[1 + abs(hashtext(id || 'c')) % 4],
  status = CASE WHEN abs(hashtext(id || 's')) % 100 < 8 THEN 'Failed'
                WHEN abs(hashtext(id || 's')) % 100 = 8 THEN 'Processing' ELSE status END
"""

# Run in the child: Django set up on the bench database, every page timed.
TIMER = r"""
import json, statistics, sys, time
import django
django.setup()
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from settlements.models import SettlementBatch

repeat = int(sys.argv[1])
user, _ = User.objects.get_or_create(username="bench-finance")
user.groups.add(Group.objects.get(name="Finance"))
client = Client()
client.force_login(user)
biggest = SettlementBatch.objects.order_by("-payment_count").first()
middle = biggest.lines.order_by("id").values_list("id", flat=True)[biggest.payment_count // 2]
merchant = biggest.merchant.code

def fetch(url):
    response = client.get(url)
    size = sum(len(c) for c in response.streaming_content) if response.streaming else len(response.content)
    assert response.status_code == 200, (url, response.status_code)
    return size

def measure(url, times):
    timings, queries, size = [], 0, 0
    for _ in range(times):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            size = fetch(url)
            timings.append((time.perf_counter() - started) * 1000)
        queries = len(ctx.captured_queries)
    return {"url": url, "median_ms": round(statistics.median(timings), 1), "max_ms": round(max(timings), 1),
            "queries": queries, "bytes": size, "requests": times}

results = {"cold_dashboard": measure(reverse("finance:dashboard"), 1)}
pages = {
    "dashboard": reverse("finance:dashboard"),
    "batches": reverse("finance:batches"),
    "batches_filtered": reverse("finance:batches") + f"?merchant={merchant}&currency={biggest.currency}&status={biggest.status}",
    "batch_first_lines": reverse("finance:batch", args=[biggest.id]),
    "batch_middle_lines": reverse("finance:batch", args=[biggest.id]) + f"?after={middle}",
    "batch_last_lines": reverse("finance:batch", args=[biggest.id]) + "?last=1",
    "payout_file_pain001": reverse("finance:payout-file", args=[biggest.id, "pain001"]),
}
from settlements.reconciliation.models import ReconciliationException, ReconciliationRun
run = ReconciliationRun.objects.order_by("-exception_count").first()
if run is not None:
    sample = ReconciliationException.objects.filter(run=run).order_by("id").values_list("reference", flat=True)[1000]
    pages.update({
        "reconciliation_runs": reverse("finance:runs"),
        "run_open_exceptions": reverse("finance:run", args=[run.pk]),
        "run_exceptions_page_100": reverse("finance:run", args=[run.pk]) + "?page=100",
        "run_filtered_category_amount": reverse("finance:run", args=[run.pk]) + "?category=amount_mismatch&currency=EUR&amount_min=100&amount_max=200",
        "exceptions_search": reverse("finance:exceptions") + f"?status=all&q={sample}",
    })
    results["run_exceptions"] = run.exception_count
for name, url in pages.items():
    fetch(url)  # warm: connections, templates, the database's cache
    results[name] = measure(url, repeat)
exports = {
    "csv_dashboard_30_days": reverse("finance:dashboard-export", args=["payments-30-days"]),
    "csv_batches": reverse("finance:batches-export"),
    "csv_batch_lines": reverse("finance:batch-lines-export", args=[biggest.id]),
}
if run is not None:
    exports["csv_run_exceptions"] = reverse("finance:run-exceptions-export", args=[run.pk]) + "?status=all"
for name, url in exports.items():
    results[name] = measure(url, 3)
results["biggest_batch_lines"] = biggest.payment_count + biggest.refund_count
print(json.dumps(results))
"""


def seed_and_spread(args: argparse.Namespace, db_url: str, env: dict) -> dict:
    admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
    run_manage(env, "migrate", "--noinput", "-v0", timeout=600)
    started = datetime.now(UTC)
    seed_args = settlement_batch.parse_args(["-n", str(args.payments), "--merchants", str(args.merchants)])
    t = time.perf_counter()
    settlement_batch.seed(db_url, seed_args, started - timedelta(hours=2))
    seed_s = time.perf_counter() - t
    log(f"seeded {args.payments} payments in {seed_s:.0f} s; settling")
    t = time.perf_counter()
    settlement_batch.settle(env, (started - timedelta(hours=1)).replace(microsecond=0))
    settle_s = time.perf_counter() - t
    log(f"settled in {settle_s:.0f} s; spreading the payments over 30 days, gateways and statuses")
    t = time.perf_counter()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(SPREAD_SQL)
        index = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'payments_payment' AND indexdef LIKE '%(created_at)'"
        ).fetchone()[0]
        conn.execute(f'CLUSTER payments_payment USING "{index}"')
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    spread_s = time.perf_counter() - t
    log(f"spread and clustered in {spread_s:.0f} s; reconciling today's simulator report")
    t = time.perf_counter()
    reconcile(db_url, env, started.date())
    reconcile_s = time.perf_counter() - t
    log(f"reconciled in {reconcile_s:.0f} s")
    return {"seed_seconds": round(seed_s, 1), "settle_seconds": round(settle_s, 1), "spread_seconds": round(spread_s, 1),
            "reconcile_seconds": round(reconcile_s, 1)}


# The simulator's report of the day: a line per simulator payment (1 % with another amount), and
# 300 lines PGI does not know. With the seed's failed and unanswered payments that makes a run
# with over a hundred thousand exceptions: a heavy day for the run's pages.
REPORT_SQL = """
COPY (
  SELECT 'payment' AS kind, 'sim_' || id AS gateway_reference, id AS payment_id, '' AS refund_id,
         (CASE WHEN abs(hashtext(id || 'm')) % 100 = 0 THEN amount + 1 ELSE amount END)::numeric(18, 2) AS amount,
         currency, 0.25 AS fee, %(booked)s AS booked_at, 'settled' AS status
  FROM payments_payment WHERE gateway = 'simulator'
  UNION ALL
  SELECT 'payment', 'sim_unknown_' || i, '', '', 12.34, 'EUR', 0.25, %(booked)s, 'settled' FROM generate_series(1, 300) i
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def reconcile(db_url: str, env: dict, day) -> None:
    report = Path(f"/tmp/pgi-bench-finance-{os.getpid()}.csv")
    try:
        with psycopg.connect(db_url) as conn, report.open("wb") as out:
            with conn.cursor().copy(REPORT_SQL, {"booked": f"{day.isoformat()}T07:00:00Z"}) as copy:
                for chunk in copy:
                    out.write(chunk)
        run_manage(env, "reconcile", "--gateway", "simulator", "--date", day.isoformat(), "--file", str(report), timeout=900)
    finally:
        report.unlink(missing_ok=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE settlements_reconciliationexception")


def counts(db_url: str) -> dict:
    with psycopg.connect(db_url) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "payments": one("SELECT count(*) FROM payments_payment"),
            "payments_today": one("SELECT count(*) FROM payments_payment WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
            "batches": one("SELECT count(*) FROM settlements_settlementbatch"),
            "lines": one("SELECT count(*) FROM settlements_settlementline"),
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_url = f"{args.pg}/{args.database}"
    env = {**settlement_batch.django_env(args, db_url), "PGI_CACHE_PREFIX": "pgibenchfinance", "PGI_CELERY_QUEUE": "pgibenchfinance"}
    started = datetime.now(UTC)
    try:
        if args.reuse:
            run_manage(env, "migrate", "--noinput", "-v0", timeout=600)  # tables added since the seed
        prep = {} if args.reuse else seed_and_spread(args, db_url, env)
        rows = counts(db_url)
        log(f"timing pages: {rows}")
        child = subprocess.run([sys.executable, "-c", TIMER, str(args.repeat)], cwd=REPO, env=env, capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(child.stderr[-4000:])
        pages = json.loads(child.stdout.strip().splitlines()[-1])
        result = {
            "started": started.isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            **rows, **prep, "pages": pages,
        }
        print()
        print(f"| page ({rows['payments']:,} payments, {rows['payments_today']:,} today, {rows['lines']:,} settlement lines) | median ms | slowest ms | queries |")
        print("|---|---:|---:|---:|")
        for name, page in pages.items():
            if isinstance(page, dict):  # (counts of rows are plain numbers)
                print(f"| {name} `{page['url']}` | {page['median_ms']} | {page['max_ms']} | {page['queries']} |")
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"finance-ui-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results in {out}")
    finally:
        if not args.keep_db:
            admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
