#!/usr/bin/env python
"""In-process profile of the payments API: what one POST, GET by id and list page cost.

Runs N requests of each through Django's test client in this process (no gunicorn, no network)
against the database of DATABASE_URL (a merchant `merchant456` and an API key are created if
missing) and reports, per request: SQL statements and commits (CaptureQueriesContext), Redis
round trips (commands sent through redis-py's connections), CPU ms and wall ms. With --cprofile
it also prints the top functions of a cProfile over the requests. It reports the CPU of its
connection's PostgreSQL backend per request too, when the server runs on this machine.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/profile_requests.py -n 300 [--cprofile post]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")
os.environ.setdefault("PGI_API_RATE", "1000000/min")
os.environ.setdefault("PGI_SIMULATOR_LATENCY", "0")
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
os.environ.setdefault("PGI_SIMULATOR_ENABLED", "true")
os.environ.setdefault("PGI_SIMULATOR_WEBHOOK_SECRET", "whsec_profile")

BODY = {"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}


class RedisCounter:
    """Counts commands sent to Redis: every send_command and every pipeline's execute."""

    def __init__(self):
        self.count = 0

    def install(self):
        import redis.client
        import redis.connection

        counter = self
        original_send = redis.connection.AbstractConnection.send_packed_command

        def send_packed_command(conn, command, check_health=True):
            counter.count += 1
            return original_send(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = send_packed_command


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=200, help="requests of each kind")
    p.add_argument("--cprofile", choices=["post", "get", "list"], help="print cProfile's top functions of this kind")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--cpu-timer", action="store_true", help="profile CPU time (process_time) instead of wall time")
    p.add_argument("--dump", metavar="FILE", help="also write the cProfile statistics to FILE (pstats format)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from pgi.merchants.models import Merchant
    from pgi.merchants.services import api_key_create

    if not Merchant.objects.filter(code="merchant456").exists():
        call_command("create_merchant", "merchant456", "--name", "Profile merchant", "--currencies", "USD", verbosity=0)
    merchant = Merchant.objects.get(code="merchant456")
    _, key = api_key_create(merchant=merchant, name="profile")
    time.sleep(2.5)  # past the new key's tombstone in the lookup cache (pgi.lookups)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    redis_counter = RedisCounter()
    try:
        redis_counter.install()
    except ImportError:
        pass

    body = json.dumps(BODY)
    ids: list[str] = []

    def post():
        r = client.post("/v1/payments", body, content_type="application/json")
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])

    def get():
        r = client.get(f"/v1/payments/{ids[len(ids) // 2]}")
        assert r.status_code == 200, r.content

    def page():
        r = client.get("/v1/payments")
        assert r.status_code == 200, r.content

    for _ in range(60):  # warm: imports, caches, the connection, a full first page
        post()
    get()
    page()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = Path(f"/proc/{cursor.fetchone()[0]}/stat")

    def backend_cpu() -> float:
        """CPU seconds of this connection's PostgreSQL backend, when the server runs on this machine."""
        try:
            fields = backend.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    figures = {}
    for name, call in (("post", post), ("get", get), ("list", page)):
        with CaptureQueriesContext(connection) as ctx:
            call()
        kinds = collections.Counter(q["sql"].split(None, 1)[0].upper() for q in ctx.captured_queries)
        statements = [q["sql"] for q in ctx.captured_queries]
        profiler = None
        if args.cprofile == name:
            profiler = cProfile.Profile(time.process_time) if args.cpu_timer else cProfile.Profile()
        redis_before = redis_counter.count
        cpu0, wall0, pg0 = time.process_time(), time.perf_counter(), backend_cpu()
        if profiler:
            profiler.enable()
        for _ in range(args.n):
            call()
        if profiler:
            profiler.disable()
            if args.dump:
                profiler.dump_stats(args.dump)
        cpu, wall, pg = time.process_time() - cpu0, time.perf_counter() - wall0, backend_cpu() - pg0
        figures[name] = {
            "statements": len(statements),
            "commits": kinds.get("COMMIT", 0) + kinds.get("RELEASE", 0) * 0,
            "by_kind": dict(kinds),
            "redis_round_trips": round((redis_counter.count - redis_before) / args.n, 2),
            "cpu_ms": round(1000 * cpu / args.n, 2),
            "wall_ms": round(1000 * wall / args.n, 2),
            "postgres_cpu_ms": round(1000 * pg / args.n, 2),
            "sql": [s[:150] for s in statements],
        }
        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, f in figures.items():
            print(
                f"{name:5} statements {f['statements']:3} commits {f['commits']} redis {f['redis_round_trips']:5} "
                f"cpu {f['cpu_ms']:6.2f} ms  postgres cpu {f['postgres_cpu_ms']:5.2f} ms  wall {f['wall_ms']:6.2f} ms  {f['by_kind']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
