#!/usr/bin/env python
"""Reconciliation benchmark: reconcile an N-line simulator report against N captured payments with
`manage.py reconcile --file`, beside a plain SQL COPY plus join doing the same matching on the same
file and rows in the same run.

One run does, in this order (see bench/README.md):
  1. drops and recreates a PostgreSQL database (default pgi_bench_reconciliation) and migrates it;
  2. seeds N Completed payments of the simulator with COPY (settlement_batch.py's seed, no refunds),
     all captured on one day, then VACUUM ANALYZE;
  3. writes the day's report in the simulator's CSV format: one line per payment, except that of
     every 1,000 payments one line has another amount, one another reference (unknown to PGI; its
     payment is then missing at the gateway) and one repeats an earlier line (a duplicate; its own
     payment is missing);
  4. baseline: one psycopg 3 connection COPYs the file into a temporary table and runs the same
     matching (reference, else payment id; duplicates by row_number; the categories; missing by
     anti-join) as one GROUP BY;
  5. the run: `manage.py reconcile --gateway simulator --date … --file …` in a child process (file
     kept, lines loaded by COPY, match, totals, exceptions), timed, its peak memory read (VmHWM);
  6. the rerun: the same command again (the file is recognized, the day matched again);
  7. checks that the run's counts per category equal the baseline's, prints the times, the ratio
     and the peak memory, writes bench/results/reconciliation-<UTC>.json;
  8. drops the database, also on error or Ctrl-C (unless --keep-db).

It never asserts timings. It exits non-zero when the run fails or the counts differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api_load import admin_execute, run_manage  # noqa: E402
from settlement_batch import PEAK_WRAPPER, seed  # noqa: E402  (the same payments, by COPY)

RESULTS_DIR = REPO / "bench" / "results"
HEADER = "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"
CURRENCIES = ("EUR", "USD")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-n", "--payments", type=int, default=1_000_000, help="captured payments, and report lines")
    p.add_argument("--merchants", type=int, default=10)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--database", default="pgi_bench_reconciliation", help="bench database: DROPPED and recreated")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def django_env(args: argparse.Namespace, db_url: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgi.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis_url,
        "PGI_CACHE_PREFIX": "pgibenchrecon",
        "PGI_CELERY_QUEUE": "pgibenchrecon",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PGI_SANDBOX": "true",
        "DJANGO_DEBUG": "0",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def write_report(path: Path, n: int, merchants: int, captured_at: datetime) -> dict[str, int]:
    """The day's report as the simulator writes it, with the planted differences; returns the
    expected count of each category. The amounts are the seed's (the same generator and seed)."""
    rng = random.Random(20261202)
    amounts = [Decimal(rng.randint(100, 50_000)) / 100 for _ in range(n)]
    booked = captured_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = {"matched": 0, "amount_mismatch": 0, "unknown_to_pgi": 0, "duplicate": 0, "missing_at_gateway": 0}
    with open(path, "w") as out:
        out.write(HEADER)
        for i in range(n):
            currency = CURRENCIES[(i // merchants) % 2]
            reference, payment_id, amount = f"sim_{i}", f"pay_{i:026d}", amounts[i]
            slot = i % 1000
            if slot == 1:
                amount += Decimal("0.01")
                expected["amount_mismatch"] += 1
            elif slot == 2:
                reference, payment_id = f"gw_unknown_{i}", ""
                expected["unknown_to_pgi"] += 1
                expected["missing_at_gateway"] += 1
            elif slot == 3 and i >= 3:
                j = i - 3  # an earlier line, again (slot 0: a matched one)
                reference, payment_id, amount = f"sim_{j}", f"pay_{j:026d}", amounts[j]
                currency = CURRENCIES[(j // merchants) % 2]
                expected["duplicate"] += 1
                expected["missing_at_gateway"] += 1
            else:
                expected["matched"] += 1
            fee = (amount * Decimal("0.014") + Decimal("0.25")).quantize(Decimal("0.01"))
            out.write(f"capture,{reference},{payment_id},,{amount:.2f},{currency},{fee},{booked},settled\n")
    return {k: v for k, v in expected.items() if v}


BASELINE_SQL = """
WITH m AS (
  SELECT l.n, l.amount, l.currency, l.ref, l.pid, COALESCE(pr.id, pi.id) AS pay_id,
    COALESCE(COALESCE(pr.captured_amount, pr.amount), COALESCE(pi.captured_amount, pi.amount)) AS pgi_amount,
    COALESCE(pr.currency, pi.currency) AS pgi_currency, COALESCE(pr.status, pi.status) AS pgi_status
  FROM b_lines l
  LEFT JOIN payments_payment pr ON l.ref <> '' AND pr.gateway_reference = l.ref AND pr.gateway = 'simulator'
    AND pr.created_at >= %(since)s
  LEFT JOIN payments_payment pi ON pr.id IS NULL AND l.pid <> '' AND pi.id = l.pid AND pi.gateway = 'simulator'
),
k AS (
  SELECT m.*, row_number() OVER (PARTITION BY COALESCE(pay_id, NULLIF(ref, ''), NULLIF(pid, ''), 'line ' || n)
    ORDER BY n) AS rank
  FROM m
),
lines AS (
  SELECT CASE WHEN rank > 1 THEN 'duplicate' WHEN pay_id IS NULL THEN 'unknown_to_pgi'
    WHEN currency <> pgi_currency THEN 'currency_mismatch'
    WHEN pgi_status NOT IN ('Completed', 'PartiallyRefunded', 'Refunded') THEN 'status_mismatch'
    WHEN amount <> pgi_amount THEN 'amount_mismatch' ELSE 'matched' END AS category, pay_id
  FROM k
)
SELECT category, COUNT(*) FROM lines GROUP BY category
UNION ALL
SELECT 'missing_at_gateway', COUNT(*) FROM payments_payment p
WHERE p.gateway = 'simulator' AND p.status IN ('Completed', 'PartiallyRefunded', 'Refunded')
  AND p.status_changed_at >= %(start)s
  AND EXISTS (SELECT 1 FROM payments_paymentstatuschange c WHERE c.payment_id = p.id AND c.to_status = 'Completed'
    AND c.created_at >= %(start)s AND c.created_at < %(end)s)
  AND NOT EXISTS (SELECT 1 FROM lines x WHERE x.pay_id = p.id)
"""


def baseline(db_url: str, report: Path, day: datetime) -> tuple[float, dict[str, int]]:
    """COPY the file into a temporary table, then the matching as one statement: (seconds, counts)."""
    start = day
    params = {"start": start, "end": start + timedelta(days=1), "since": start - timedelta(days=31)}
    with psycopg.connect(db_url) as conn:
        started = time.perf_counter()
        conn.execute(
            "CREATE TEMP TABLE b_lines (n bigint GENERATED ALWAYS AS IDENTITY, kind text, ref text, pid text,"
            " rid text, amount numeric, currency text, fee numeric, booked_at timestamptz, status text)"
        )
        with conn.cursor().copy(
            "COPY b_lines (kind, ref, pid, rid, amount, currency, fee, booked_at, status) FROM STDIN"
            " WITH (FORMAT csv, HEADER true, FORCE_NOT_NULL (ref, pid, rid))"
        ) as copy:
            with open(report, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
        conn.execute("ANALYZE b_lines")
        rows = conn.execute(BASELINE_SQL, params).fetchall()
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed, {category: count for category, count in rows if count}


def reconcile(env: dict, day: str, report: Path) -> tuple[float, int, str]:
    """`manage.py reconcile` in a child process: (seconds, its peak RSS in KiB, its stdout)."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, "reconcile", "--gateway", "simulator", "--date", day, "--file",
         str(report), "-v0"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py reconcile failed:\n{completed.stdout}\n{completed.stderr}")
    peak = int(re.search(r"VmHWM (\d+)", completed.stderr).group(1))
    return elapsed, peak, completed.stdout


def run_counts(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT t.category, SUM(t.count) FROM settlements_reconciliationtotal t GROUP BY t.category"
        ).fetchall()
    return {category: int(count) for category, count in rows}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_url = f"{args.pg}/{args.database}"
    env = django_env(args, db_url)
    started = datetime.now(UTC)
    # Captured at noon of yesterday (UTC): one whole day, whatever the hour of the run.
    day = (started - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    captured_at = day + timedelta(hours=12)
    failed = False
    workdir = Path(tempfile.mkdtemp(prefix="pgi-bench-recon-"))
    report = workdir / f"simulator_{day.date().isoformat()}.csv"
    try:
        log(f"database {args.database}: drop and create, migrate")
        admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
        run_manage(env, "migrate", "--noinput", "-v0", timeout=600)
        log(f"seed {args.payments} payments")
        t = time.perf_counter()
        seed(db_url, argparse.Namespace(payments=args.payments, merchants=args.merchants, refund_share=0.0), captured_at)
        seed_s = time.perf_counter() - t
        expected = write_report(report, args.payments, args.merchants, captured_at)
        log(f"seeded in {seed_s:.1f} s; report {report.stat().st_size / 1e6:.0f} MB, expected {expected}")

        log("baseline: COPY + join in plain SQL")
        raw_s, raw_counts = baseline(db_url, report, day)
        log(f"baseline: {raw_s:.2f} s {raw_counts}")

        log("run: manage.py reconcile --file")
        run_s, run_kib, run_out = reconcile(env, day.date().isoformat(), report)
        inner_s = float(re.search(r" in ([0-9.]+) s$", run_out.strip()).group(1))
        log(f"run: {run_s:.2f} s ({inner_s:.2f} s reconciling), peak {run_kib / 1024:.0f} MiB")
        rerun_s, rerun_kib, rerun_out = reconcile(env, day.date().isoformat(), report)
        rerun_inner = float(re.search(r" in ([0-9.]+) s$", rerun_out.strip()).group(1))
        log(f"rerun: {rerun_s:.2f} s ({rerun_inner:.2f} s), peak {rerun_kib / 1024:.0f} MiB")

        got = run_counts(db_url)
        same = got == raw_counts == expected
        failed = not same
        result = {
            "started": started.isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "payments": args.payments,
            "report_lines": args.payments,
            "report_mb": round(report.stat().st_size / 1e6, 1),
            "seed_seconds": round(seed_s, 1),
            "baseline_copy_join_seconds": round(raw_s, 2),
            "reconcile_seconds": round(run_s, 2),
            "reconcile_run_seconds": round(inner_s, 2),
            "reconcile_peak_rss_mib": round(run_kib / 1024, 1),
            "rerun_seconds": round(rerun_s, 2),
            "rerun_run_seconds": round(rerun_inner, 2),
            "rerun_peak_rss_mib": round(rerun_kib / 1024, 1),
            "ratio_reconcile_to_baseline": round(run_s / raw_s, 2),
            "ratio_reconcile_run_to_baseline": round(inner_s / raw_s, 2),
            "counts": got,
            "counts_equal_baseline": same,
        }
        print()
        print(f"| {args.payments} payments, {args.payments} report lines | seconds | peak RSS MiB |")
        print("|---|---:|---:|")
        print(f"| plain SQL: COPY + join (psycopg) | {result['baseline_copy_join_seconds']} | - |")
        print(f"| manage.py reconcile --file, whole process | {result['reconcile_seconds']} | {result['reconcile_peak_rss_mib']} |")
        print(f"| of which load + match + write (Django started) | {result['reconcile_run_seconds']} | - |")
        print(f"| manage.py reconcile again (file recognized, day matched again) | {result['rerun_seconds']} | {result['rerun_peak_rss_mib']} |")
        print(
            f"\nreconcile / baseline: {result['ratio_reconcile_to_baseline']}x (process), "
            f"{result['ratio_reconcile_run_to_baseline']}x (load + match); counts equal: {same} {got}"
        )
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"reconciliation-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results in {out}")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        report.unlink(missing_ok=True)
        workdir.rmdir()
        if not args.keep_db:
            admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
