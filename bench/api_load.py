#!/usr/bin/env python
"""Load benchmark: POST and GET /v1/payments over gunicorn + PostgreSQL, beside a raw psycopg baseline.

One run does, in this order (see bench/README.md):
  1. drops and recreates a PostgreSQL database (default pgi_bench), migrates it, creates the
     merchant `merchant456` and an API key with the management commands;
  2. counts the SQL statements of one POST and one GET in-process (Django's CaptureQueriesContext);
  3. starts gunicorn `pgi.wsgi` on a free 127.0.0.1 port and waits until it answers;
  4. warms up, then runs for --duration seconds each, at --concurrency client threads:
     api POST /v1/payments (the API specification's example body), then an ANALYZE (as autovacuum
     would after such growth), api GET /v1/payments/{id} (ids created by the POST phase),
     api GET /v1/payments (first page, 50 rows);
  5. runs the baseline in the same process, same database, same concurrency: raw psycopg 3
     single-row INSERT + COMMIT into a payment-shaped table, then SELECT by primary key;
  6. prints a Markdown table and the ratios, writes bench/results/<UTC timestamp>.json;
  7. stops gunicorn and drops the database, also on error or Ctrl-C.

It never asserts timings: the figures depend on the machine. It exits non-zero only when the run
itself fails (setup error, or every request of a scenario failed).

Only 127.0.0.1 is loaded. Every loop is bounded by a deadline and a maximum count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wrk_client import run_wrk, wrk_path, wrk_version, write_scripts  # noqa: E402

import naive_build  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
HOST = "127.0.0.1"
MERCHANT = "merchant456"
# The API specification's example body, byte for byte: fromAccount account123 completes at the simulator.
POST_BODY = b'{"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")
REQUEST_TIMEOUT = 30.0
STOP = threading.Event()  # set on Ctrl-C or SIGTERM: client threads stop at their next operation
API_SCENARIOS = ("api POST /v1/payments", "api GET /v1/payments/{id}", "api GET /v1/payments (list, 50)")
LATENCY_SCENARIOS = ("api POST, gateway 0 ms", "api POST, gateway {latency_ms} ms")
RSS_SCENARIO = "api mix (1 POST : 4 GET), worker memory"
BASELINE_SCENARIOS = ("psycopg INSERT + COMMIT", "psycopg SELECT by id")


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    kind: str  # "api" or "psycopg"
    concurrency: int
    elapsed_s: float
    ok: int
    errors: int
    latencies_ms: list[float]
    error_samples: list[str] = field(default_factory=list)
    cpu: dict = field(default_factory=dict)
    # From wrk, which reports its own percentiles: {"p50": ms, "p90": ms, "p99": ms, "max": ms, "mean": ms}.
    reported_ms: dict | None = None
    client: str = "python"
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_ms_per_op(self) -> float | None:
        """CPU the benchmark's own processes (client, gunicorn, the bench database's PostgreSQL
        backends) spent per successful operation. Unlike ops/s, it hardly moves when other programs
        compete for the cores."""
        if not self.cpu or not self.ok:
            return None
        spent = self.cpu["load_generator"] + self.cpu["gunicorn"] + self.cpu["pg_bench_backends"]
        return 1000 * spent / self.ok

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the successful operations' latencies (wrk's own figure with wrk)."""
        if self.reported_ms is not None:
            return self.reported_ms.get(f"p{int(p)}")
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "concurrency": self.concurrency,
            "elapsed_s": round(self.elapsed_s, 3),
            "ok": self.ok,
            "errors": self.errors,
            "rate_per_s": round(self.rate, 1),
            "latency_ms": {
                "p50": _round(self.percentile(50)),
                "p90": _round(self.percentile(90)),
                "p99": _round(self.percentile(99)),
                "max": _round(self.max_ms),
                "mean": _round(self.mean_ms),
            },
            "cpu_s": self.cpu,
            "cpu_ms_per_op": _round(self.cpu_ms_per_op, 3),
            "error_samples": self.error_samples[:5],
            "client": self.client,
            **self.extra,
        }

    @property
    def max_ms(self) -> float | None:
        if self.reported_ms is not None:
            return self.reported_ms.get("max")
        return max(self.latencies_ms) if self.latencies_ms else None

    @property
    def mean_ms(self) -> float | None:
        if self.reported_ms is not None:
            return self.reported_ms.get("mean")
        return sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def process_table() -> dict[int, tuple[str, int, int]]:
    """{pid: (comm, ppid, utime + stime in clock ticks)} of every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            # proc(5): state ppid ... utime(14) stime(15); fields[0] is field 3 (state).
            table[int(entry)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def children_of(pid: int) -> list[int]:
    return [child for child, (_, ppid, _) in process_table().items() if ppid == pid]


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat; idle and iowait are not busy."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


CPU_GROUPS = ("load_generator", "gunicorn", "pg_bench_backends", "pg_other", "redis", "kernel", "other_programs")


class CpuMeter:
    """CPU seconds spent during a scenario, per group of processes:

    load_generator     this process: the client threads (and the psycopg baseline's client side)
    gunicorn           the gunicorn master and its workers
    pg_bench_backends  PostgreSQL backends connected to the bench database
    pg_other           every other PostgreSQL process: WAL writer, checkpointer, other databases' sessions
    redis              redis-server (the throttle counters)
    kernel             kernel threads
    other_programs     everything else still running at the end (other users of a shared machine)
    unattributed       busy time of the machine not in the above (processes that exited meanwhile,
                       interrupts)
    """

    def __init__(self, gunicorn_pid: int | None, backend_pids: Callable[[], list[int]]):
        self.gunicorn_pid = gunicorn_pid
        self.backend_pids = backend_pids

    def _snapshot(self) -> dict[int, tuple[str, int]]:
        table = process_table()
        backends = set(self.backend_pids())
        me = os.getpid()
        groups = {}
        for pid, (comm, ppid, ticks) in table.items():
            if pid == me:
                group = "load_generator"
            elif self.gunicorn_pid and (pid == self.gunicorn_pid or ppid == self.gunicorn_pid):
                group = "gunicorn"
            elif pid in backends:
                group = "pg_bench_backends"
            elif comm.startswith("postgres"):
                group = "pg_other"
            elif comm.startswith("redis"):
                group = "redis"
            elif pid == 2 or ppid == 2:
                group = "kernel"
            else:
                group = "other_programs"
            groups[pid] = (group, ticks)
        return groups

    def start(self) -> None:
        self._before = self._snapshot()
        self._machine = machine_ticks()

    def stop(self) -> dict:
        after = self._snapshot()
        busy, total = machine_ticks()
        seconds = dict.fromkeys(CPU_GROUPS, 0.0)
        for pid, (group, ticks) in after.items():
            seconds[group] += (ticks - self._before.get(pid, (group, 0))[1]) / CLK_TCK
        d_busy, d_total = busy - self._machine[0], total - self._machine[1]
        result = {name: round(value, 2) for name, value in seconds.items()}
        result["unattributed"] = round(d_busy / CLK_TCK - sum(seconds.values()), 2)
        result["machine_busy_s"] = round(d_busy / CLK_TCK, 2)
        result["machine_busy_pct"] = round(100 * d_busy / d_total, 1) if d_total else None
        return result


def run_load(
    *,
    name: str,
    kind: str,
    concurrency: int,
    duration: float,
    max_ops: int,
    setup: Callable[[int], object],
    operation: Callable[[object, int], str | None],
    teardown: Callable[[object], None],
    meter: CpuMeter | None = None,
) -> ScenarioResult:
    """Run `operation` in `concurrency` threads for `duration` seconds (or `max_ops` in total).

    `setup(i)` builds a thread's client (connection, session) before the clock starts; `operation`
    returns None on success or a short error text. Latency is measured around each operation.
    """
    per_thread = max(1, math.ceil(max_ops / concurrency))
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    samples: list[str] = []
    clients: list[object] = [None] * concurrency
    setup_failures: list[str] = []
    ready = threading.Barrier(concurrency + 1, timeout=60)
    go = threading.Event()
    deadline = [0.0]

    def worker(i: int) -> None:
        try:
            clients[i] = setup(i)
        except Exception as exc:  # reported after the run; the thread still meets the barrier
            setup_failures.append(f"setup: {exc!r}"[:300])
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        go.wait(timeout=60)
        if clients[i] is None:
            return
        mine = latencies[i]
        perf = time.perf_counter
        for n in range(per_thread):
            start = perf()
            if start >= deadline[0] or STOP.is_set():
                break
            try:
                error = operation(clients[i], n)
            except Exception as exc:
                error = repr(exc)
            if error is None:
                mine.append((perf() - start) * 1000)
            else:
                errors[i] += 1
                if len(samples) < 20:
                    samples.append(error[:300])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True, name=f"{name}-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    ready.wait()
    if meter:
        meter.start()
    began = time.perf_counter()
    deadline[0] = began + duration
    go.set()
    for t in threads:
        t.join(timeout=duration + REQUEST_TIMEOUT + 30)
    elapsed = time.perf_counter() - began
    cpu = meter.stop() if meter else {}
    for client in clients:
        if client is not None:
            try:
                teardown(client)
            except Exception:
                pass
    all_latencies = [x for chunk in latencies for x in chunk]
    return ScenarioResult(
        name=name,
        kind=kind,
        concurrency=concurrency,
        elapsed_s=elapsed,
        ok=len(all_latencies),
        errors=sum(errors) + len(setup_failures),
        latencies_ms=all_latencies,
        error_samples=setup_failures + samples,
        cpu=cpu,
    )


# --------------------------------------------------------------------------------------------
# The API client: http.client, one connection object per thread (far lighter than requests,
# which matters because the load generator shares the CPUs with gunicorn and PostgreSQL).
# --------------------------------------------------------------------------------------------


class ApiClient:
    def __init__(self, port: int, api_key: str):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
        self.headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self.post_headers = {**self.headers, "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=self.post_headers if body else self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # the next request opens a fresh connection
            raise
        if response.will_close:
            self.conn.close()  # gunicorn's sync worker closes after every response
        return response.status, data

    def close(self) -> None:
        self.conn.close()


def post_payment(ids: list[str] | None) -> Callable[[ApiClient, int], str | None]:
    def operation(client: ApiClient, n: int) -> str | None:
        status, data = client.request("POST", "/v1/payments", POST_BODY)
        if status != 201:
            return f"POST {status}: {data[:200]!r}"
        payment = json.loads(data)
        if payment.get("status") != "Completed":
            return f"POST 201 but status {payment.get('status')!r}"
        if ids is not None:
            ids.append(payment["id"])  # list.append is atomic under the GIL
        return None

    return operation


def get_payment(ids: list[str]) -> Callable[[ApiClient, int], str | None]:
    def operation(client: ApiClient, n: int) -> str | None:
        payment_id = random.choice(ids)
        status, data = client.request("GET", f"/v1/payments/{payment_id}")
        if status != 200:
            return f"GET {status}: {data[:200]!r}"
        if b'"id":"' + payment_id.encode() + b'"' not in data:
            return "GET 200 with another payment"
        return None

    return operation


def list_payments(client: ApiClient, n: int) -> str | None:
    status, data = client.request("GET", "/v1/payments")
    if status != 200:
        return f"LIST {status}: {data[:200]!r}"
    rows = data.count(b'"id":"pay_')
    if rows != 50:
        return f"LIST 200 with {rows} rows instead of a full page of 50"
    return None


# --------------------------------------------------------------------------------------------
# The raw psycopg baseline
# --------------------------------------------------------------------------------------------

BASELINE_TABLE = """
CREATE TABLE bench_raw_payment (
    id varchar(32) PRIMARY KEY,
    amount numeric(20, 4) NOT NULL,
    currency varchar(3) NOT NULL,
    from_account varchar(64) NOT NULL,
    status varchar(20) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)
"""
INSERT_SQL = (
    "INSERT INTO bench_raw_payment (id, amount, currency, from_account, status, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, now(), now())"
)
SELECT_SQL = (
    "SELECT id, amount, currency, from_account, status, created_at, updated_at FROM bench_raw_payment WHERE id = %s"
)


def raw_insert(ids: list[str]) -> Callable[[psycopg.Connection, int], str | None]:
    from decimal import Decimal

    amount = Decimal("50.00")

    def operation(conn: psycopg.Connection, n: int) -> str | None:
        payment_id = "pay_" + secrets.token_hex(12)
        conn.execute(INSERT_SQL, (payment_id, amount, "USD", "account123", "Completed"))
        conn.commit()
        ids.append(payment_id)
        return None

    return operation


def raw_select(ids: list[str]) -> Callable[[psycopg.Connection, int], str | None]:
    def operation(conn: psycopg.Connection, n: int) -> str | None:
        row = conn.execute(SELECT_SQL, (random.choice(ids),)).fetchone()
        return None if row is not None else "SELECT found nothing"

    return operation


# --------------------------------------------------------------------------------------------
# Setup and teardown of the database and gunicorn
# --------------------------------------------------------------------------------------------


def analyze(conn: psycopg.Connection, log: Callable[[str], None]) -> None:
    """ANALYZE the database between its write and read phases, as autovacuum would in production
    after tables grew this much. Without it a read phase can run on statistics taken when the
    tables were empty (autovacuum is off on the CI machines' PostgreSQL)."""
    autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
    log(f"ANALYZE (autovacuum is {autovacuum} on this server)")
    conn.execute("ANALYZE")


def admin_execute(server_url: str, sql: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def run_manage(env: dict, *args: str, timeout: float = 300) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


# Run in a subprocess (Django is configured there, not here): the SQL statements of one POST and
# one GET, through Django's test client, grouped by their first word.
QUERY_PROFILE = r"""
import json, collections, time
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
key = input()
body = {body!r}
client = Client(HTTP_AUTHORIZATION="Bearer " + key)
time.sleep(2.5)  # past the new key's tombstone in the lookup cache (pgi.lookups): measured warm
client.post("/v1/payments", body, content_type="application/json")  # warm: imports, connection, caches
profile = {{}}
for name, call in (
    ("POST /v1/payments", lambda: client.post("/v1/payments", body, content_type="application/json")),
    ("GET /v1/payments/{{id}}", lambda: client.get("/v1/payments/" + created)),
    ("GET /v1/payments", lambda: client.get("/v1/payments")),
):
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    if name.startswith("POST"):
        created = response.json()["id"]
    kinds = collections.Counter(q["sql"].split(None, 1)[0].upper() for q in ctx.captured_queries)
    profile[name] = {{"status": response.status_code, "queries": len(ctx.captured_queries), "by_kind": dict(kinds),
                     "sql": [q["sql"][:160] for q in ctx.captured_queries]}}
print(json.dumps(profile))
"""


def query_profile(env: dict, api_key: str) -> dict:
    code = QUERY_PROFILE.format(body=POST_BODY.decode())
    completed = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=env,
        input=api_key + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(port: int, api_key: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode} before it was ready")
        try:
            client = ApiClient(port, api_key)
            status, data = client.request("GET", "/v1/payments?limit=1")
            client.close()
            if status == 200:
                return
            last = f"{status} {data[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready after {timeout:.0f}s: {last}")


def stop_process(process: subprocess.Popen | None, grace: float = 20) -> None:
    """SIGTERM to gunicorn's master (it stops its workers), then SIGKILL to it and its workers."""
    if process is None or process.poll() is not None:
        return
    workers = children_of(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        for pid in [process.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)


def worker_rss_kib(master_pid: int) -> dict[int, int]:
    """{pid: VmRSS in KiB} of gunicorn's workers."""
    sizes = {}
    for pid in children_of(master_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1])
        except OSError:
            continue
    return sizes


def rss_scenario(args, scenario, gunicorn, port, get_op, post_op, log) -> ScenarioResult:
    """Worker memory over --rss-requests requests (one POST to four GETs by id), in rounds of
    --rss-round seconds: the workers' RSS after the first round (warm) and after the last."""
    mix_count = [0]

    def python_mix(client, n):
        mix_count[0] += 1
        return post_op(client, n) if mix_count[0] % 5 == 0 else get_op(client, n)

    samples: list[dict] = []
    total = ok = errors = 0
    elapsed = 0.0
    rounds = 0
    log(f"memory: {args.rss_requests} requests in rounds of {args.rss_round:.0f}s")
    while total < args.rss_requests and not STOP.is_set():
        result = scenario(RSS_SCENARIO, "mix", port, gunicorn, args.concurrency, args.rss_round, python_mix, meter_on=False)
        rounds += 1
        total += result.ok + result.errors
        ok += result.ok
        errors += result.errors
        elapsed += result.elapsed_s
        rss = worker_rss_kib(gunicorn.pid)
        samples.append({"requests": total, "rss_kib": sum(rss.values()), "workers": len(rss)})
        log(f"  {total} requests: workers' RSS {sum(rss.values()) / 1024:.1f} MiB ({len(rss)} workers)")
    first, last = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    growth = round(100 * (last - first) / first, 1) if first else None
    return ScenarioResult(
        name=RSS_SCENARIO, kind="api", concurrency=args.concurrency, elapsed_s=elapsed, ok=ok, errors=errors,
        latencies_ms=[], reported_ms={}, client="wrk" if result.client == "wrk" else "python",
        extra={"rss": {"after_first_round_kib": first, "after_last_kib": last, "growth_pct": growth,
                       "max_kib": max(x["rss_kib"] for x in samples), "samples": samples}},
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def gunicorn_shape(args) -> dict:
    """The web process shape the run used: gunicorn.conf.py's, overridden by the flags."""
    import runpy

    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    pool = dict(item.split("=", 1) for item in conf.get("raw_env", [])).get("PGI_DB_POOL_SIZE", "0")
    return {
        "workers": args.workers or conf.get("workers"),
        "worker_class": args.worker_class or conf.get("worker_class"),
        "threads": args.threads or conf.get("threads"),
        "db_pool": args.db_pool if args.db_pool is not None else int(pool),
    }


def run_naive(args, env, workdir: Path, scenario, results: list, log) -> None:
    """The naive DRF build (bench/naive_build.py) in PGI's process shape: POST, then GET by id.
    wrk only: the Python client speaks PGI's key and ids."""
    if args.client == "python" or wrk_path() is None:
        log("naive DRF build: skipped (it is driven by wrk only)")
        return
    shape = gunicorn_shape(args)
    naive_env = naive_build.environment(env, args.pg, args.naive_database, shape["db_pool"])
    log(f"naive DRF build: database {args.naive_database}")
    naive_build.prepare(naive_env, args.pg, args.naive_database)
    port = free_port()
    process = subprocess.Popen(naive_build.command(host=HOST, port=port, shape=shape), cwd=naive_build.NAIVE_DIR,
                               env=naive_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_ready(port, naive_build.API_KEY, process)
    monitor = psycopg.connect(f"{args.pg}/{args.naive_database}", autocommit=True)

    def pids() -> list[int]:
        rows = monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return [row[0] for row in rows]

    ids_file = workdir / "naive-ids.txt"
    (workdir / "naive").mkdir(exist_ok=True)
    scripts = write_scripts(workdir / "naive", api_key=naive_build.API_KEY, post_body=POST_BODY, ids_file=ids_file)
    ids: list[str] = []
    try:
        scenario("naive warm-up POST", "post", port, process, args.concurrency, args.warmup, post_payment(ids),
                 meter_on=False, scenario_scripts=scripts)
        log(f"{naive_build.SCENARIOS[0]} for {args.duration:.0f}s")
        results.append(scenario(naive_build.SCENARIOS[0], "post", port, process, args.concurrency, args.duration,
                                post_payment(ids), pids=pids, scenario_scripts=scripts))
        ids = naive_build.ids(args.pg, args.naive_database) or ids
        analyze(monitor, log)
        ids_file.write_text("\n".join(ids) + "\n")
        log(f"{naive_build.SCENARIOS[1]} for {args.duration:.0f}s")
        results.append(scenario(naive_build.SCENARIOS[1], "get", port, process, args.concurrency, args.duration,
                                get_payment(ids), pids=pids, scenario_scripts=scripts))
    finally:
        monitor.close()
        stop_process(process)


def goal_rows(post, get, page, insert, select, latency_zero, latency_slow, rss) -> list[dict]:
    """The performance goals of docs/scaling.md as measured in this run: PGI, its baseline, the ratio."""
    rows = []

    def add(name, pgi, baseline, baseline_name, value, target, p99, p99_target, ok):
        rows.append({"goal": name, "pgi_per_s": pgi, "baseline_per_s": baseline, "baseline": baseline_name,
                     "ratio": value, "target": target, "p99_ms": p99, "p99_target_ms": p99_target, "met": ok})

    if post and insert:
        r = ratio(post, insert)
        add("POST /v1/payments", round(post.rate, 1), round(insert.rate, 1), "psycopg INSERT + COMMIT", r, ">= 0.08",
            post.percentile(99), "< 150", bool(r and r >= 0.08 and (post.percentile(99) or 1e9) < 150 and post.errors == 0))
    if get and select:
        r = ratio(get, select)
        add("GET /v1/payments/{id}", round(get.rate, 1), round(select.rate, 1), "psycopg SELECT by id", r, ">= 0.25",
            get.percentile(99), "< 50", bool(r and r >= 0.25 and (get.percentile(99) or 1e9) < 50 and get.errors == 0))
    if page and get:
        r = ratio(page, get)
        add("GET /v1/payments (50)", round(page.rate, 1), round(get.rate, 1), "GET by id of this run", r, ">= 0.5",
            page.percentile(99), "", bool(r and r >= 0.5 and page.errors == 0))
    if latency_zero and latency_slow:
        r = ratio(latency_slow, latency_zero)
        add(latency_slow.name, round(latency_slow.rate, 1), round(latency_zero.rate, 1), latency_zero.name, r, ">= 0.6",
            latency_slow.percentile(99), "< 1000",
            bool(r and r >= 0.6 and latency_slow.errors == 0 and (latency_slow.percentile(99) or 1e9) < 1000))
    if rss:
        growth = rss.extra["rss"]["growth_pct"]
        add(f"worker RSS over {rss.ok + rss.errors} requests", None, None, "RSS after the first round",
            growth, "growth < 10 %", None, "", bool(growth is not None and growth < 10 and rss.errors == 0))
    return rows


def goals_table(goals: list[dict]) -> str:
    lines = ["| goal | PGI /s | baseline /s (same run) | ratio | target | p99 ms | p99 target | met |",
             "|---|---:|---:|---:|---|---:|---|---|"]
    for g in goals:
        lines.append(
            f"| {g['goal']} | {_fmt(g['pgi_per_s'])} | {_fmt(g['baseline_per_s'])} ({g['baseline']}) | {g['ratio']} | "
            f"{g['target']} | {_fmt(g['p99_ms'])} | {g['p99_target_ms']} | {'yes' if g['met'] else 'no'} |"
        )
    return "\n".join(lines)


def markdown_table(results: list[ScenarioResult]) -> str:
    lines = [
        "| scenario | ops | ops/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU ms/op "
        "| CPU s: client / gunicorn / pg backends / pg other / others | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        cpu = r.cpu
        lines.append(
            f"| {r.name} | {r.ok} | {r.rate:.1f} | {_fmt(r.percentile(50))} | {_fmt(r.percentile(90))} | "
            f"{_fmt(r.percentile(99))} | {_fmt(r.max_ms)} | {r.errors} | "
            f"{_fmt(r.cpu_ms_per_op, 2)} | "
            f"{cpu.get('load_generator', '-')} / {cpu.get('gunicorn', '-')} / {cpu.get('pg_bench_backends', '-')} / "
            f"{cpu.get('pg_other', '-')} / {_others(cpu)} | "
            f"{cpu.get('machine_busy_pct', '-')}% |"
        )
    return "\n".join(lines)


def _others(cpu: dict) -> str:
    """CPU seconds of everything outside the benchmark's own processes and PostgreSQL."""
    if not cpu:
        return "-"
    return f"{sum(cpu[k] for k in ('redis', 'kernel', 'other_programs', 'unattributed')):.2f}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: ScenarioResult | None, b: ScenarioResult | None) -> float | None:
    if a is None or b is None or b.rate == 0:
        return None
    return round(a.rate / b.rate, 4)


def cost_ratio(a: ScenarioResult | None, b: ScenarioResult | None) -> float | None:
    if a is None or b is None or not a.cpu_ms_per_op or not b.cpu_ms_per_op:
        return None
    return round(a.cpu_ms_per_op / b.cpu_ms_per_op, 1)


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=20, help="seconds of measured load per scenario")
    p.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load before the API and the baseline")
    p.add_argument("--concurrency", type=int, default=32, help="connections (API) and client connections (baseline)")
    p.add_argument("--baseline-concurrency", type=int, default=4,
                   help="psycopg connections of the raw baseline (4 threads, as the performance goals define it)")
    p.add_argument("--client", default="auto", choices=["auto", "wrk", "python"],
                   help="load generator: wrk (compiled; auto uses it when installed) or the Python client")
    p.add_argument("--wrk-threads", type=int, default=cores, help="wrk's threads")
    p.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py's)")
    p.add_argument("--worker-class", default=None, choices=["sync", "gthread"], help="default: gunicorn.conf.py's")
    p.add_argument("--threads", type=int, default=None, help="threads per gunicorn worker (default: gunicorn.conf.py's)")
    p.add_argument("--db-pool", type=int, default=None, help="PGI_DB_POOL_SIZE for the workers (default: gunicorn.conf.py's; 0: none)")
    p.add_argument("--gateway-latency", type=float, default=0.3, help="the simulator's latency (s) of the slow-gateway scenario")
    p.add_argument("--latency-concurrency", type=int, default=128, help="connections of both gateway-latency scenarios")
    p.add_argument("--skip-latency", action="store_true", help="no gateway-latency scenarios")
    p.add_argument("--naive", action="store_true",
                   help="also run the naive DRF build (bench/naive) in PGI's process shape: POST and GET by id")
    p.add_argument("--naive-database", default="pgi_bench_naive", help="its database (dropped and recreated)")
    p.add_argument("--rss-requests", type=int, default=0, help="run the memory scenario over this many requests (e.g. 100000)")
    p.add_argument("--rss-round", type=float, default=30, help="seconds per round of the memory scenario")
    p.add_argument("--max-ops", type=int, default=1_000_000, help="upper bound on operations per scenario")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--database", default="pgi_bench", help="bench database: DROPPED and recreated")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/3", help="Redis for the throttle cache")
    p.add_argument("--skip-baseline", action="store_true", help="API scenarios only")
    p.add_argument("--skip-api", action="store_true", help="baseline only")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database in place for inspection")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if not args.database.replace("_", "").isalnum() or args.database in {"postgres", "pgi", "template0", "template1"}:
        p.error("--database must be a plain name of a database that may be dropped (not postgres, pgi, templates)")
    if not (HOST in args.pg or "localhost" in args.pg) or not args.redis_url.startswith(f"redis://{HOST}"):
        p.error("this benchmark only loads 127.0.0.1")
    if args.concurrency < 1 or args.duration <= 0 or (args.workers is not None and args.workers < 1):
        p.error("--concurrency, --duration and --workers must be positive")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM behaves like Ctrl-C so that the finally blocks stop gunicorn and drop the database.
    signal.signal(signal.SIGTERM, _interrupt)

    db_url = f"{args.pg}/{args.database}"
    workdir = Path(tempfile.mkdtemp(prefix="pgi-bench-"))
    (workdir / "var" / "staticfiles").mkdir(parents=True)  # no static files are served; keeps WhiteNoise quiet
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgi.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis_url,
        "PGI_CACHE_PREFIX": "pgibench",
        "PGI_CELERY_QUEUE": "pgibench",
        # Throttling off in practice: the bench measures the service, not its rate limit.
        "PGI_API_RATE": "1000000/min",
        # The web process does not talk to Kafka per request; a closed port makes sure of it.
        "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:9",
        "PGI_SIMULATOR_LATENCY": "0",
        "PGI_SIMULATOR_ENABLED": "true",
        "PGI_SIMULATOR_WEBHOOK_SECRET": "whsec_bench_" + secrets.token_hex(8),
        "DJANGO_DEBUG": "0",
        "PGI_VAR_DIR": str(workdir / "var"),
        "PGI_MANIFEST_STATIC": "0",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    if args.db_pool is not None:
        env["PGI_DB_POOL_SIZE"] = str(args.db_pool)
    use_wrk = args.client == "wrk" or (args.client == "auto" and wrk_path() is not None)
    if args.client == "wrk" and wrk_path() is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    client_name = wrk_version() if use_wrk else "python http.client, one connection per thread"

    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results: list[ScenarioResult] = []
    gunicorn: subprocess.Popen | None = None
    gunicorn_log = workdir / "gunicorn.log"
    profile: dict = {}
    server_version = pg_settings = None
    monitor: psycopg.Connection | None = None
    failed = False

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    try:
        log(f"database {args.database}: drop and create")
        admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(args.pg, f'CREATE DATABASE "{args.database}"')
        log("migrate, create merchant and API key")
        run_manage(env, "migrate", "--noinput", "-v0")
        run_manage(env, "create_merchant", MERCHANT, "--name", "Bench merchant", "--currencies", "USD")
        api_key = run_manage(env, "create_api_key", MERCHANT).strip().splitlines()[-1].strip()
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(BASELINE_TABLE)
            server_version = conn.execute("SHOW server_version").fetchone()[0]
            pg_settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections', 'wal_sync_method')"
                ).fetchall()
            )

        log("query profile: SQL statements per request (Django CaptureQueriesContext)")
        profile = query_profile(env, api_key)

        # One connection for looking up the bench database's backend pids (not itself measured).
        monitor = psycopg.connect(db_url, autocommit=True)

        def backend_pids() -> list[int]:
            rows = monitor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            return [row[0] for row in rows]

        common = dict(concurrency=args.baseline_concurrency, max_ops=args.max_ops)

        if not args.skip_api:
            servers: list[subprocess.Popen] = []

            def start_server(latency: float) -> tuple[subprocess.Popen, int]:
                port = free_port()
                command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "pgi.wsgi",
                           "--bind", f"{HOST}:{port}", "--log-level", "warning", "--error-logfile", str(gunicorn_log)]
                for flag, value in (("--workers", args.workers), ("--threads", args.threads), ("--worker-class", args.worker_class)):
                    if value is not None:
                        command += [flag, str(value)]
                log(f"gunicorn (gateway {latency * 1000:.0f} ms): {' '.join(command[2:])}")
                # Same process group as this script: Ctrl-C reaches it too; stop_process() ends it by pid.
                process = subprocess.Popen(command, cwd=REPO, env={**env, "PGI_SIMULATOR_LATENCY": str(latency)},
                                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                servers.append(process)
                wait_ready(port, api_key, process)
                return process, port

            ids_file = workdir / "ids.txt"
            scripts = write_scripts(workdir, api_key=api_key, post_body=POST_BODY, ids_file=ids_file)

            def scenario(name: str, kind: str, port: int, process, concurrency: int, duration: float,
                         python_op, post_check: bool = False, meter_on: bool = True, pids=None,
                         scenario_scripts=None) -> ScenarioResult:
                meter = CpuMeter(process.pid, pids or backend_pids) if meter_on else None
                script_of = scenario_scripts or scripts
                since = db_now()
                if use_wrk:
                    if meter:
                        meter.start()
                    out = run_wrk(url=f"http://{HOST}:{port}", script=script_of[kind], connections=concurrency,
                                  duration=duration, threads=args.wrk_threads)
                    cpu = meter.stop() if meter else {}
                    if cpu:  # wrk ran as a child of this process: its CPU is the load generator's
                        cpu["load_generator"] = round(cpu["load_generator"] + out["cpu_s"], 2)
                        cpu["unattributed"] = round(cpu["unattributed"] - out["cpu_s"], 2)
                    errors = out["connect"] + out["read"] + out["write"] + out["status"] + out["timeout"]
                    result = ScenarioResult(
                        name=name, kind="api", concurrency=concurrency, elapsed_s=out["duration_us"] / 1e6,
                        ok=out["requests"] - out["status"], errors=errors, latencies_ms=[], cpu=cpu,
                        reported_ms={k: out[k] for k in ("p50", "p90", "p99", "max", "mean")}, client="wrk",
                        error_samples=[f"wrk errors: {({k: out[k] for k in ('connect', 'read', 'write', 'status', 'timeout')})}"]
                        if errors else [],
                    )
                else:
                    result = run_load(name=name, kind="api", duration=duration, operation=python_op, meter=meter,
                                      setup=lambda i: ApiClient(port, api_key), teardown=ApiClient.close,
                                      concurrency=concurrency, max_ops=args.max_ops)
                if post_check:
                    # Every payment the scenario made must have Completed (wrk sees only the status code).
                    # Requests still in flight when the clock stopped finish on their own: wait for them.
                    deadline = time.monotonic() + 30
                    while payment_statuses(since).get("Processing") and time.monotonic() < deadline:
                        time.sleep(0.5)
                    statuses = payment_statuses(since)
                    failed_payments = sum(n for status, n in statuses.items() if status != "Completed")
                    result.extra["payments_by_status"] = statuses
                    if failed_payments:
                        result.errors += failed_payments
                        result.ok -= failed_payments
                        result.error_samples.append(f"payments not Completed: {statuses}")
                return result

            def db_now():
                return monitor.execute("SELECT now()").fetchone()[0]

            def payment_statuses(since) -> dict:
                rows = monitor.execute(
                    "SELECT status, count(*) FROM payments_payment WHERE created_at >= %s GROUP BY status", (since,)
                ).fetchall()
                return {status: count for status, count in rows}

            def write_ids() -> list[str]:
                rows = monitor.execute("SELECT id FROM payments_payment ORDER BY created_at DESC LIMIT 20000").fetchall()
                ids = [row[0] for row in rows]
                ids_file.write_text("\n".join(ids) + "\n")
                return ids

            gunicorn, port = start_server(0.0)
            log(f"api warm-up {args.warmup:.0f}s ({'wrk' if use_wrk else 'python client'})")
            warm_ids: list[str] = []
            warm = scenario("warm-up POST", "post", port, gunicorn, args.concurrency, args.warmup,
                            post_payment(warm_ids), meter_on=False)
            if warm.ok == 0:
                raise RuntimeError(f"warm-up: every POST failed: {warm.error_samples[:3]}")
            write_ids()
            scenario("warm-up GET", "get", port, gunicorn, args.concurrency, min(args.warmup, 2),
                     get_payment(warm_ids), meter_on=False)

            ids: list[str] = []
            log(f"api POST /v1/payments for {args.duration:.0f}s at concurrency {args.concurrency}")
            results.append(scenario(API_SCENARIOS[0], "post", port, gunicorn, args.concurrency, args.duration,
                                    post_payment(ids), post_check=True))
            ids = write_ids() if use_wrk else (ids or warm_ids)
            analyze(monitor, log)
            log(f"api GET /v1/payments/{{id}} over {len(ids)} ids")
            results.append(scenario(API_SCENARIOS[1], "get", port, gunicorn, args.concurrency, args.duration, get_payment(ids)))
            log("api GET /v1/payments (first page, 50 rows)")
            results.append(scenario(API_SCENARIOS[2], "list", port, gunicorn, args.concurrency, args.duration, list_payments))

            if not args.skip_latency:
                c = args.latency_concurrency
                log(f"api POST, gateway 0 ms, {c} connections")
                results.append(scenario(f"{LATENCY_SCENARIOS[0]}, {c} connections", "post", port, gunicorn, c,
                                        args.duration, post_payment(None), post_check=True))
            if args.rss_requests:
                results.append(rss_scenario(args, scenario, gunicorn, port, get_payment(ids), post_payment(None), log))
            stop_process(gunicorn)
            gunicorn = None

            if args.naive:
                run_naive(args, env, workdir, scenario, results, log)

            if not args.skip_latency:
                c, latency_ms = args.latency_concurrency, round(args.gateway_latency * 1000)
                gunicorn, port = start_server(args.gateway_latency)
                scenario("warm-up POST", "post", port, gunicorn, c, min(args.warmup, 2), post_payment(None), meter_on=False)
                log(f"api POST, gateway {latency_ms} ms, {c} connections")
                results.append(scenario(f"{LATENCY_SCENARIOS[1].format(latency_ms=latency_ms)}, {c} connections", "post",
                                        port, gunicorn, c, args.duration, post_payment(None), post_check=True))
                stop_process(gunicorn)
                gunicorn = None

        if not args.skip_baseline:
            meter = CpuMeter(None, backend_pids)

            def pg_setup(i: int) -> psycopg.Connection:
                return psycopg.connect(db_url, connect_timeout=10)

            pg = dict(setup=pg_setup, teardown=psycopg.Connection.close, **common)
            raw_ids: list[str] = []
            log(f"psycopg warm-up {min(args.warmup, 2):.0f}s")
            run_load(name="warm-up INSERT", kind="psycopg", duration=min(args.warmup, 2), operation=raw_insert(raw_ids), **pg)
            log(f"psycopg INSERT + COMMIT for {args.duration:.0f}s at concurrency {args.baseline_concurrency}")
            results.append(run_load(name=BASELINE_SCENARIOS[0], kind="psycopg", duration=args.duration,
                                    operation=raw_insert(raw_ids), meter=meter, **pg))  # fmt: skip
            with psycopg.connect(db_url, autocommit=True) as conn:
                analyze(conn, log)
            log(f"psycopg SELECT by id over {len(raw_ids)} ids")

            def pg_select_setup(i: int) -> psycopg.Connection:
                return psycopg.connect(db_url, connect_timeout=10, autocommit=True)

            results.append(run_load(name=BASELINE_SCENARIOS[1], kind="psycopg", duration=args.duration,
                                    operation=raw_select(raw_ids), meter=meter,
                                    **{**pg, "setup": pg_select_setup}))  # fmt: skip
    except KeyboardInterrupt:
        STOP.set()
        log("interrupted")
        failed = True
    except Exception as exc:
        log(f"FAILED: {exc}")
        failed = True
        if gunicorn_log.exists():
            tail = gunicorn_log.read_text(errors="replace")[-3000:]
            if tail:
                log(f"gunicorn log tail:\n{tail}")
    finally:
        stop_process(gunicorn)
        if monitor is not None:
            monitor.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_db:
            try:
                if args.naive:
                    naive_build.drop(args.pg, args.naive_database)
                admin_execute(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
                log(f"database {args.database} dropped")
            except Exception as exc:
                log(f"could not drop {args.database}: {exc}")
                failed = True

    if not results:
        return 1

    by_name = {r.name: r for r in results}
    post, get, page = (by_name.get(n) for n in API_SCENARIOS)
    insert, select = (by_name.get(n) for n in BASELINE_SCENARIOS)
    naive_post, naive_get = (by_name.get(n) for n in naive_build.SCENARIOS)
    # Throughput ratios: API requests/s over psycopg operations/s (below 1: the API is slower).
    ratios = {
        "api_post_per_psycopg_insert": ratio(post, insert),
        "api_get_per_psycopg_select": ratio(get, select),
        "api_list_per_psycopg_select": ratio(page, select),
        "api_post_per_naive_post": ratio(post, naive_post),
        "api_get_per_naive_get": ratio(get, naive_get),
        "naive_post_per_psycopg_insert": ratio(naive_post, insert),
        "naive_get_per_psycopg_select": ratio(naive_get, select),
    }
    # Cost ratios: CPU per API request over CPU per psycopg operation (above 1: the API costs more).
    cost_ratios = {
        "api_post_cpu_per_psycopg_insert_cpu": cost_ratio(post, insert),
        "api_get_cpu_per_psycopg_select_cpu": cost_ratio(get, select),
        "api_list_cpu_per_psycopg_select_cpu": cost_ratio(page, select),
        "api_post_cpu_per_naive_post_cpu": cost_ratio(post, naive_post),
        "api_get_cpu_per_naive_get_cpu": cost_ratio(get, naive_get),
    }
    shape = gunicorn_shape(args)
    latency_zero = next((r for r in results if r.name.startswith(LATENCY_SCENARIOS[0])), None)
    latency_slow = next((r for r in results if r.name.startswith("api POST, gateway") and r is not latency_zero), None)
    rss = by_name.get(RSS_SCENARIO)
    goals = goal_rows(post, get, page, insert, select, latency_zero, latency_slow, rss)
    report = {
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "git_commit": git_commit(),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "postgres": server_version,
            "postgres_settings": pg_settings,
            "note": "load generator, gunicorn and PostgreSQL share these cores",
        },
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "baseline_concurrency": args.baseline_concurrency,
            "gunicorn": shape,
            "client": client_name,
            "gateway_latency_s": None if args.skip_latency else args.gateway_latency,
            "latency_concurrency": None if args.skip_latency else args.latency_concurrency,
            "post_body": POST_BODY.decode(),
        },
        "query_profile": profile,
        "scenarios": [r.summary() for r in results],
        "ratios": ratios,
        "cost_ratios": cost_ratios,
        "goals": goals,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"api-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n## PGI API load benchmark, {report['started_at']} (commit {report['git_commit']})\n")
    print(
        f"{os.cpu_count()} cores shared by the load generator, gunicorn and PostgreSQL {report['machine']['postgres']}; "
        f"gunicorn {shape['workers']} x {shape['worker_class']} ({shape['threads']} threads, "
        f"PGI_DB_POOL_SIZE {shape['db_pool']}); load generator: {client_name}; "
        f"concurrency {args.concurrency}; {args.duration:.0f}s per scenario.\n"
    )
    print(goals_table(goals))
    print()
    print(markdown_table(results))
    print()
    labels = {
        "api_post_per_psycopg_insert": "API POST req/s ÷ psycopg INSERT+COMMIT ops/s",
        "api_get_per_psycopg_select": "API GET by id req/s ÷ psycopg SELECT by id ops/s",
        "api_list_per_psycopg_select": "API GET list req/s ÷ psycopg SELECT by id ops/s",
        "api_post_cpu_per_psycopg_insert_cpu": "CPU per API POST ÷ CPU per psycopg INSERT+COMMIT",
        "api_get_cpu_per_psycopg_select_cpu": "CPU per API GET by id ÷ CPU per psycopg SELECT",
        "api_list_cpu_per_psycopg_select_cpu": "CPU per API GET list ÷ CPU per psycopg SELECT",
        "api_post_per_naive_post": "API POST req/s ÷ naive DRF build POST req/s",
        "api_get_per_naive_get": "API GET by id req/s ÷ naive DRF build GET req/s",
        "naive_post_per_psycopg_insert": "naive DRF build POST req/s ÷ psycopg INSERT+COMMIT ops/s",
        "naive_get_per_psycopg_select": "naive DRF build GET req/s ÷ psycopg SELECT by id ops/s",
        "api_post_cpu_per_naive_post_cpu": "CPU per API POST ÷ CPU per naive DRF build POST",
        "api_get_cpu_per_naive_get_cpu": "CPU per API GET by id ÷ CPU per naive DRF build GET",
    }
    for key, value in {**ratios, **cost_ratios}.items():
        if value is not None:
            print(f"- {labels[key]}: **{value}**")
    for name, item in profile.items():
        if isinstance(item, dict) and "queries" in item:
            print(f"- SQL statements per {name}: {item['queries']} {item['by_kind']}")
    print(f"\nresults: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")

    if any(r.ok == 0 for r in results):
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
