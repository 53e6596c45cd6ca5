#!/usr/bin/env python
"""Outbox relay benchmark: N outbox rows published by `manage.py relay_events`, beside a raw
confluent-kafka producer loop sending the same messages to the same broker.

One run does, in this order (see bench/README.md):
  1. drops and recreates a PostgreSQL database (default pgi_bench_relay) and migrates it;
  2. starts the bundled broker (Tansu, memory only) on a free port, unless --bootstrap names one,
     and creates the topics of both halves, --partitions each, so no half pays for topic creation;
  3. builds N realistic payment-events rows with the receivers' own code (pgi.events.payloads):
     per payment PAYMENT_CREATED, PAYMENT_STATUS_UPDATED (Processing), PAYMENT_PROCESSED and its
     notification, bodies and keys exactly as PGI writes them;
  4. the relay: starts `manage.py relay_events` (its own process, as in production) on the empty
     outbox, waits until it leads, then bulk-inserts the rows (one transaction) and polls until every
     row is marked sent; events/s counts from the insert's commit to the last mark;
  5. raw: one confluent-kafka Producer with the relay's configuration (acks=all, idempotent, the same
     linger), the same value bytes, keys and headers to topics of their own on the same broker,
     produce() in a loop and flush(); events/s from the first produce() to the last report;
  6. prints both rates and their ratio; writes bench/results/relay-<UTC>.json; stops the relay and
     the broker and drops the database, also on error or Ctrl-C (unless --keep-db).

It never asserts timings. It exits non-zero when the run fails, or when a row stays unsent or a
message has no successful delivery report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api_load import admin_execute, run_manage  # noqa: E402  (the same database setup as api_load)

RESULTS_DIR = REPO / "bench" / "results"
MERCHANT = "merchant456"
RAW_PREFIX = "bench-raw."


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-n", "--events", type=int, default=50_000, help="outbox rows (4 per payment)")
    p.add_argument("--batch-size", type=int, default=None, help="PGI_EVENTS_BATCH_SIZE for the relay (default: the setting's)")
    p.add_argument("--partitions", type=int, default=3, help="partitions of each topic")
    p.add_argument("--bootstrap", default=None, help="a running broker; default: start the bundled one")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--database", default="pgi_bench_relay", help="bench database: DROPPED and recreated")
    p.add_argument("--skip-raw", action="store_true", help="the relay only")
    p.add_argument("--profile", action="store_true", help="run the relay in a thread of this process under cProfile")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database in place for inspection")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def django_env(args: argparse.Namespace, db_url: str, bootstrap: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgi.settings",
        "DATABASE_URL": db_url,
        "PGI_CACHE_PREFIX": "pgibenchrelay",
        "PGI_CELERY_QUEUE": "pgibenchrelay",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PGI_EVENTS_TOPIC_PARTITIONS": str(args.partitions),
        "PGI_EVENTS_IDLE_SECONDS": "0.05",  # the relay notices the insert at once, as it would under load
        "PGI_EVENTS_LOCK_POLL_SECONDS": "1",
        "PGI_SANDBOX": "true",
        "DJANGO_DEBUG": "0",  # no query log growing with every statement
        "PYTHONUNBUFFERED": "1",
    }
    if args.batch_size:
        env["PGI_EVENTS_BATCH_SIZE"] = str(args.batch_size)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def build_rows(n: int) -> list:
    """N unsaved outbox rows as the receivers write them for payments taken by the simulator."""
    from django.utils import timezone as dj_timezone

    from payments.models import Payment, PaymentStatus
    from pgi.events.payloads import outbox_rows, payment_message
    from pgi.merchants.models import Merchant

    merchant = Merchant.objects.get(code=MERCHANT)
    lifecycle = [("", PaymentStatus.PENDING), (PaymentStatus.PENDING, PaymentStatus.PROCESSING),
                 (PaymentStatus.PROCESSING, PaymentStatus.COMPLETED)]
    rows: list = []
    started = dj_timezone.now()
    i = 0
    while len(rows) < n + 1:  # the first is the relay's warm-up
        payment = Payment(
            merchant=merchant, amount=Decimal("50.00") + i % 100, currency="USD", from_account=f"account{i % 997}",
            reference=f"order-{i:07d}", gateway="simulator",
        )
        for from_status, to_status in lifecycle:
            payment.status = to_status
            payment.status_changed_at = started + timedelta(microseconds=i)
            rows.extend(outbox_rows(payment_message(payment=payment, from_status=from_status, now=payment.status_changed_at)))
        i += 1
    return rows[: n + 1]


def topics_create(bootstrap: str, names: list[str], partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names if name not in existing]
    for future in (admin.create_topics(new) if new else {}).values():
        future.result(timeout=15)


def relay_start(env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as out:
        return subprocess.Popen([sys.executable, "manage.py", "relay_events"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def relay_leading(db_url: str, timeout: float = 30) -> None:
    """Wait for the relay's advisory lock (pgi.events.relay.RELAY_LOCK_KEY) to be held."""
    from pgi.events.relay import RELAY_LOCK_KEY

    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            held = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND (classid::bigint << 32) | objid::bigint = %s",
                [RELAY_LOCK_KEY],
            ).fetchone()[0]
            if held:
                return
            time.sleep(0.05)
    raise RuntimeError("the relay did not take the leader lock")


def relay_run(rows: list, db_url: str, warm_up) -> dict:
    """One row first (the relay connects its producer and checks the topics on its first batch, as
    the raw producer connects before its clock starts); then the rows in one transaction, and poll
    until all are marked sent."""
    from django.db import transaction

    from pgi.events.models import OutboxEvent

    OutboxEvent.objects.bulk_create([warm_up])
    with psycopg.connect(db_url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM events_outboxevent WHERE sent_at IS NULL").fetchone()[0]:
            time.sleep(0.02)
    t0 = time.perf_counter()
    with transaction.atomic():
        OutboxEvent.objects.bulk_create(rows, batch_size=2000)
    committed = time.perf_counter()
    log(f"relay: {len(rows)} rows inserted in {committed - t0:.1f} s; waiting for every mark")
    with psycopg.connect(db_url, autocommit=True) as conn:
        last_report = committed
        # The cheapest question that ends the wait (the first unsent row in the partial index), so
        # that the poll takes as little as possible of the cores the relay shares with it.
        while conn.execute("SELECT EXISTS (SELECT FROM events_outboxevent WHERE sent_at IS NULL)").fetchone()[0]:
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                log(f"relay: still publishing after {last_report - committed:.0f} s")
            time.sleep(0.02)
        done = time.perf_counter()
        # The relay's own clock: from the first row it marked to the last (its read of the first batch excluded).
        first, last = conn.execute(
            "SELECT min(sent_at), max(sent_at) FROM events_outboxevent WHERE id <> %s", [warm_up.id]
        ).fetchone()
    seconds = done - committed
    return {
        "events": len(rows),
        "insert_seconds": round(committed - t0, 2),
        "seconds": round(seconds, 3),
        "per_second": round(len(rows) / seconds, 1),
        "first_to_last_mark_seconds": round((last - first).total_seconds(), 3),
    }


def raw_run(rows: list, bootstrap: str, linger_ms: int) -> dict:
    """The same messages through one idempotent producer, acks=all, no database at all."""
    from confluent_kafka import Producer

    from pgi.events.relay import message_bytes

    messages = [
        (RAW_PREFIX + row.topic, message_bytes(row), row.key.encode(),
         [("eventId", str(row.event_id).encode()), ("eventType", row.event_type.encode())])
        for row in rows
    ]
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": linger_ms,
         "client.id": "pgi-bench-raw"}
    )
    producer.list_topics(timeout=10)  # connected before the clock starts, as the relay is
    outcome = {"delivered": 0, "failed": 0}

    def report(err, msg):
        outcome["failed" if err else "delivered"] += 1

    started = time.perf_counter()
    for topic, value, key, headers in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
                break
            except BufferError:  # the local queue is full: let reports drain it
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - started
    return {
        "events": len(messages),
        "seconds": round(seconds, 3),
        "per_second": round(len(messages) / seconds, 1),
        "bytes": sum(len(m[1]) for m in messages),
        **outcome,
        "unreported": left,
    }


class ProfiledRelay:
    """The Relay class in a thread of this process, under cProfile (the thread's calls only)."""

    def __init__(self):
        import cProfile
        import threading

        from pgi.events.relay import Relay

        self.relay = Relay(name="relay-profiled")
        self.profile = cProfile.Profile()

        def run():
            self.profile.enable()
            try:
                self.relay.run()
            finally:
                self.profile.disable()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self, path: Path) -> None:
        import pstats

        self.relay.stop()
        self.thread.join(30)
        self.profile.dump_stats(path)
        pstats.Stats(str(path), stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        log(f"profile in {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_url = f"{args.pg}/{args.database}"
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    broker = relay = None
    failed = False
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            from pgi.embedded_broker import start_broker

            broker, bootstrap = start_broker(log_path=args.results_dir / f"relay-{stamp}-broker.log")
            log(f"bundled broker at {bootstrap}")
        env = django_env(args, db_url, bootstrap)
        log(f"database {args.database}: drop and create, migrate")
        admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
        run_manage(env, "migrate", "--noinput", "-v0")
        run_manage(env, "create_merchant", MERCHANT, "--name", "Bench merchant", "--currencies", "USD")

        os.environ.update(env)  # Django in this process, on the bench database
        import django

        django.setup()
        from django.conf import settings

        config = settings.PGI_EVENTS
        topics = [config["payment_events_topic"], config["notifications_topic"]]
        topics_create(bootstrap, topics + [RAW_PREFIX + t for t in topics], args.partitions)

        log(f"building {args.events} outbox rows with pgi.events.payloads")
        warm_up, *rows = build_rows(args.events)

        if args.profile:
            profiled = ProfiledRelay()
            relay_leading(db_url)
            relay_result = relay_run(rows, db_url, warm_up)
            profiled.stop(args.results_dir / f"relay-{stamp}.pstats")
        else:
            relay = relay_start(env, args.results_dir / f"relay-{stamp}-relay.log")
            relay_leading(db_url)
            log(f"relay: manage.py relay_events leads (batch size {config['batch_size']})")
            relay_result = relay_run(rows, db_url, warm_up)
            relay.send_signal(signal.SIGTERM)
            relay.wait(30)
        log(f"relay: {relay_result['events']} in {relay_result['seconds']} s")

        raw_result = None
        if not args.skip_raw:
            log("raw: confluent-kafka producer loop, the same messages")
            raw_result = raw_run(rows, bootstrap, linger_ms=5)
            log(f"raw: {raw_result['events']} in {raw_result['seconds']} s")
            failed = raw_result["failed"] > 0 or raw_result["unreported"] > 0

        result = {
            "started": started.isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "broker": "bundled Tansu (memory)" if broker else bootstrap,
            "events": args.events,
            "batch_size": config["batch_size"],
            "partitions": args.partitions,
            "relay": relay_result,
        }
        print()
        print(f"| {args.events} events | seconds | events/s |")
        print("|---|---:|---:|")
        print(f"| relay (manage.py relay_events), commit to last mark | {relay_result['seconds']} | {relay_result['per_second']} |")
        if raw_result:
            result["raw"] = raw_result
            result["ratio_relay_to_raw"] = round(relay_result["per_second"] / raw_result["per_second"], 2)
            print(f"| raw confluent-kafka producer loop | {raw_result['seconds']} | {raw_result['per_second']} |")
            print(f"\nrelay / raw: {result['ratio_relay_to_raw']} (events/s)")
        out = args.results_dir / f"relay-{stamp}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results in {out}")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        for process in (relay, broker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
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
