#!/usr/bin/env python
"""Settlement benchmark: settle N captured payments (and their refunds) with `manage.py settle`,
beside a plain SQL GROUP BY doing the same aggregation on the same rows in the same run.

One run does, in this order (see bench/README.md):
  1. drops and recreates a PostgreSQL database (default pgi_bench_settlement) and migrates it;
  2. seeds with COPY: --merchants merchants (fee plan 1.40 % + 0.25), N Completed payments spread
     over them and over EUR and USD, each with its history line to Completed, and --refund-share of
     them with a Completed refund of a third (its gateway operation too); then VACUUM ANALYZE;
  3. baseline: one psycopg 3 connection runs the GROUP BY (per merchant and currency: payments,
     gross, fees with the same half-even SQL, refunds) over the same rows and filters;
  4. the batch: `manage.py settle --cutoff …` in a child process (batches, lines, payout files,
     outbox events), timed, its peak resident memory read from the kernel (wait4);
  5. the rerun: the same command again, which must add nothing;
  6. checks that the batches' totals equal the baseline's to the cent, prints the times, the ratio
     and the peak memory, writes bench/results/settlement-<UTC>.json;
  7. drops the database, also on error or Ctrl-C (unless --keep-db).

It never asserts timings. It exits non-zero when the run fails or the totals differ.
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
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api_load import admin_execute, run_manage  # noqa: E402  (the same database setup as api_load)

from settlements.fees import Fee, fee_params, fee_sql  # noqa: E402  (pure: no Django setup needed)

RESULTS_DIR = REPO / "bench" / "results"
CURRENCIES = ("EUR", "USD")
FEE = Fee(basis_points=140, fixed=Decimal("0.25"), minimum=None)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-n", "--payments", type=int, default=1_000_000, help="captured payments to settle")
    p.add_argument("--merchants", type=int, default=10, help="merchants (each settles EUR and USD)")
    p.add_argument("--refund-share", type=float, default=0.1, help="share of payments with a completed refund")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--database", default="pgi_bench_settlement", help="bench database: DROPPED and recreated")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/3", help="Redis (the settle command's cache)")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database in place for inspection")
    p.add_argument("--seed-only", action="store_true", help="seed and keep the database; time nothing")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def django_env(args: argparse.Namespace, db_url: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgi.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis_url,
        "PGI_CACHE_PREFIX": "pgibenchsettle",
        "PGI_CELERY_QUEUE": "pgibenchsettle",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PGI_SANDBOX": "true",
        "DJANGO_DEBUG": "0",  # no query log
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def seed(db_url: str, args: argparse.Namespace, captured_at: datetime) -> None:
    """Merchants and fee plans by INSERT; payments, their history lines, refund operations and
    refunds by COPY. Ids are made here: pay_/ref_ and 26 characters, as pgi.ids makes them."""
    rng = random.Random(20261202)
    n, refunds = args.payments, int(args.payments * args.refund_share)
    with psycopg.connect(db_url) as conn:
        merchants = []
        for i in range(args.merchants):
            merchant_id = conn.execute(
                "INSERT INTO merchants_merchant"
                " (code, name, is_active, settlement_iban, settlement_bic, api_rate_limit, created_at, updated_at)"
                " VALUES (%s, %s, true, 'DE89370400440532013000', 'COBADEFFXXX', '', now(), now()) RETURNING id",
                (f"bench-{i:03d}", f"Bench merchant {i}"),
            ).fetchone()[0]
            plan_id = conn.execute(
                "INSERT INTO settlements_feeplan (merchant_id, basis_points, created_at, updated_at)"
                " VALUES (%s, %s, now(), now()) RETURNING id",
                (merchant_id, FEE.basis_points),
            ).fetchone()[0]
            for currency in CURRENCIES:
                conn.execute(
                    "INSERT INTO settlements_feeplancurrency (plan_id, currency, fixed) VALUES (%s, %s, %s)",
                    (plan_id, currency, FEE.fixed),
                )
            merchants.append(merchant_id)
        ids = [f"pay_{i:026d}" for i in range(n)]
        amounts = [Decimal(rng.randint(100, 50_000)) / 100 for _ in range(n)]
        at = captured_at.isoformat()
        payment_columns = (
            "id, merchant_id, amount, currency, from_account, reference, description, metadata, status,"
            " status_changed_at, gateway, gateway_reference, failure_code, failure_message, refunded_amount,"
            " capture, captured_amount, needs_attention, attention_reason, attention_code, created_at, updated_at"
        )
        with conn.cursor().copy(f"COPY payments_payment ({payment_columns}) FROM STDIN") as copy:
            for i in range(n):
                refunded = (amounts[i] / 3).quantize(Decimal("0.01")) if i < refunds else Decimal(0)
                copy.write_row((
                    ids[i], merchants[i % len(merchants)], amounts[i], CURRENCIES[(i // len(merchants)) % 2], "account123",
                    "", "", "{}", "PartiallyRefunded" if refunded else "Completed", at, "simulator", f"sim_{i}", "", "",
                    refunded, True, None, False, "", "", at, at,
                ))
        log(f"seed: {n} payments copied")
        with conn.cursor().copy(
            "COPY payments_paymentstatuschange (payment_id, from_status, to_status, source, reason, failure_code, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row((ids[i], "Processing", "Completed", "gateway", "", "", at))
        log(f"seed: {n} history lines copied")
        with conn.cursor().copy(
            "COPY payments_gatewayoperation (id, payment_id, kind, amount, idempotency_key, status, by_expiry, attempts,"
            " created_at, updated_at, finished_at) FROM STDIN"
        ) as copy:
            for i in range(refunds):
                refund_amount = (amounts[i] / 3).quantize(Decimal("0.01"))
                copy.write_row((i + 1, ids[i], "refund", refund_amount, f"ref_{i:026d}", "succeeded", False, 0, at, at, at))
        conn.execute("SELECT setval(pg_get_serial_sequence('payments_gatewayoperation', 'id'), %s)", (refunds + 1,))
        with conn.cursor().copy(
            "COPY refunds_refund (id, payment_id, merchant_id, operation_id, amount, currency, reason, metadata, source,"
            " status, status_changed_at, gateway, gateway_reference, failure_code, failure_message, needs_attention,"
            " attention_reason, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(refunds):
                refund_amount = (amounts[i] / 3).quantize(Decimal("0.01"))
                copy.write_row((
                    f"ref_{i:026d}", ids[i], merchants[i % len(merchants)], i + 1, refund_amount,
                    CURRENCIES[(i // len(merchants)) % 2], "", "{}", "api", "Completed", at, "simulator", "", "", "",
                    False, "", at, at,
                ))
        log(f"seed: {refunds} refunds copied")
        conn.commit()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # The seed's gigabyte of WAL would otherwise be written out by a checkpoint during the
        # timed part: both sides start with it done.
        conn.execute("CHECKPOINT")


def baseline(db_url: str, cutoff: datetime) -> tuple[float, dict]:
    """The same aggregation as one GROUP BY per kind: {(merchant_id, currency): [gross, fees, refunds]}."""
    # The same window as the run's (PGI_SETTLEMENT lookback_days, 31 by default).
    since = cutoff - timedelta(days=31)
    params = {"cutoff": cutoff, "since": since, **fee_params(FEE, "EUR")}  # EUR and USD have the same digits
    sql = (
        "WITH pay AS (SELECT p.merchant_id, p.currency, SUM(a.amount) AS gross, SUM(" + fee_sql("a.amount") + ") AS fees"
        " FROM payments_payment p JOIN payments_paymentstatuschange c ON c.payment_id = p.id AND c.to_status = 'Completed'"
        " CROSS JOIN LATERAL (SELECT COALESCE(p.captured_amount, p.amount) AS amount) a"
        " WHERE p.status IN ('Completed', 'PartiallyRefunded', 'Refunded') AND NOT p.needs_attention"
        " AND c.created_at <= %(cutoff)s AND p.status_changed_at >= %(since)s GROUP BY 1, 2),"
        " ref AS (SELECT merchant_id, currency, SUM(amount) AS refunds FROM refunds_refund"
        " WHERE status = 'Completed' AND status_changed_at <= %(cutoff)s AND created_at >= %(since)s GROUP BY 1, 2)"
        " SELECT pay.merchant_id, pay.currency, pay.gross, pay.fees, COALESCE(ref.refunds, 0)"
        " FROM pay LEFT JOIN ref USING (merchant_id, currency)"
    )
    with psycopg.connect(db_url) as conn:
        started = time.perf_counter()
        rows = conn.execute(sql, params).fetchall()
        elapsed = time.perf_counter() - started
    return elapsed, {(m, c): [g, f, r] for m, c, g, f, r in rows}


# Runs manage.py in this child and, at its exit, writes the peak resident memory of the child's own
# memory (VmHWM). Not ru_maxrss: that also counts the memory of the parent the child was forked
# from, here the seed's million ids.
PEAK_WRAPPER = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0].split()[1]\n"
    "    sys.stderr.write(f'\\nVmHWM {hwm}\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv = ['manage.py', *sys.argv[1:]]\n"
    "runpy.run_path('manage.py', run_name='__main__')\n"
)


def settle(env: dict, cutoff: datetime) -> tuple[float, int, str]:
    """`manage.py settle` in a child process: (seconds, its peak RSS in KiB, its stdout)."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, "settle", "--cutoff", cutoff.isoformat(), "-v0"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py settle failed:\n{completed.stdout}\n{completed.stderr}")
    peak = int(re.search(r"VmHWM (\d+)", completed.stderr).group(1))
    return elapsed, peak, completed.stdout


def batch_totals(db_url: str, cutoff: datetime) -> dict:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT merchant_id, currency, gross_amount, fee_amount, refund_amount, payment_count, refund_count"
            " FROM settlements_settlementbatch WHERE cutoff = %s",
            (cutoff,),
        ).fetchall()
        lines = conn.execute("SELECT count(*) FROM settlements_settlementline").fetchone()[0]
    return {"batches": {(m, c): [g, f, r] for m, c, g, f, r, _, _ in rows}, "lines": lines,
            "payments": sum(r[5] for r in rows), "refunds": sum(r[6] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_url = f"{args.pg}/{args.database}"
    env = django_env(args, db_url)
    started = datetime.now(UTC)
    captured_at = started - timedelta(hours=2)
    cutoff = (started - timedelta(hours=1)).replace(microsecond=0)
    failed = False
    try:
        log(f"database {args.database}: drop and create, migrate")
        admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
        run_manage(env, "migrate", "--noinput", "-v0", timeout=600)
        log(f"seed {args.payments} payments over {args.merchants} merchants, {args.refund_share:.0%} refunded")
        t = time.perf_counter()
        seed(db_url, args, captured_at)
        seed_s = time.perf_counter() - t
        log(f"seeded in {seed_s:.1f} s")
        if args.seed_only:
            args.keep_db = True
            log(f"cut-off for a run by hand: {cutoff.isoformat()}")
            return 0

        log("baseline: plain SQL GROUP BY over the same rows")
        raw_s, expected = baseline(db_url, cutoff)
        log(f"baseline: {raw_s:.2f} s")

        log("batch: manage.py settle")
        batch_s, batch_kib, batch_out = settle(env, cutoff)
        run_s = float(re.search(r" in ([0-9.]+) s$", batch_out.strip()).group(1))
        log(f"batch: {batch_s:.2f} s ({run_s:.2f} s settling), peak {batch_kib / 1024:.0f} MiB")
        rerun_s, rerun_kib, rerun_out = settle(env, cutoff)
        log(f"rerun: {rerun_s:.2f} s ({rerun_out.strip().splitlines()[-1] if rerun_out.strip() else ''})")

        got = batch_totals(db_url, cutoff)
        same = got["batches"] == expected
        refunds = int(args.payments * args.refund_share)
        complete = got["payments"] == args.payments and got["refunds"] == refunds and got["lines"] == args.payments + refunds
        failed = not (same and complete)

        result = {
            "started": started.isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "payments": args.payments,
            "refunds": refunds,
            "merchants": args.merchants,
            "batches": len(got["batches"]),
            "seed_seconds": round(seed_s, 1),
            "baseline_group_by_seconds": round(raw_s, 2),
            "settle_seconds": round(batch_s, 2),
            "settle_run_seconds": round(run_s, 2),
            "settle_peak_rss_mib": round(batch_kib / 1024, 1),
            "rerun_seconds": round(rerun_s, 2),
            "rerun_peak_rss_mib": round(rerun_kib / 1024, 1),
            "ratio_settle_to_group_by": round(batch_s / raw_s, 2),
            "ratio_settle_run_to_group_by": round(run_s / raw_s, 2),
            "totals_equal_group_by": same,
            "every_row_settled_once": complete,
        }
        print()
        print(f"| {args.payments} payments, {refunds} refunds, {len(got['batches'])} batches | seconds | peak RSS MiB |")
        print("|---|---:|---:|")
        print(f"| plain SQL GROUP BY (psycopg) | {result['baseline_group_by_seconds']} | - |")
        print(f"| manage.py settle, whole process (batches, lines, files, events) | {result['settle_seconds']} | {result['settle_peak_rss_mib']} |")
        print(f"| of which settlement_run (Django started) | {result['settle_run_seconds']} | - |")
        print(f"| manage.py settle again (adds nothing) | {result['rerun_seconds']} | {result['rerun_peak_rss_mib']} |")
        print(
            f"\nsettle / GROUP BY: {result['ratio_settle_to_group_by']}x (process), {result['ratio_settle_run_to_group_by']}x"
            f" (settlement_run); totals equal: {same}; every row once: {complete}"
        )
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"settlement-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results in {out}")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        if not args.keep_db:
            admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
