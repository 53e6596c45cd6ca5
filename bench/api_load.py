#!/usr/bin/env python
"""Load benchmark: POST and GET /v1/payments over gunicorn + PostgreSQL, beside a raw psycopg baseline.

One run does, in this order (see bench/README.md):
  1. drops and recreates a PostgreSQL database (default pgi_bench), migrates it, creates the
     merchant `merchant456` and an API key with the management commands;
  2. counts the SQL statements of one POST and one GET in-process (Django's CaptureQueriesContext);
  3. starts gunicorn `pgi.wsgi` on a free 127.0.0.1 port and waits until it answers;
  4. warms up, then runs for --duration seconds each, at --concurrency client threads:
     api POST /v1/payments (the API specification's example body), api GET /v1/payments/{id} (ids created by
     the POST phase), api GET /v1/payments (first page, 50 rows);
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
        """Nearest-rank percentile of the successful operations' latencies."""
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
                "max": _round(max(self.latencies_ms) if self.latencies_ms else None),
                "mean": _round(sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else None),
            },
            "cpu_s": self.cpu,
            "cpu_ms_per_op": _round(self.cpu_ms_per_op, 3),
            "error_samples": self.error_samples[:5],
        }


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
import json, collections
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
key = input()
body = {body!r}
client = Client(HTTP_AUTHORIZATION="Bearer " + key)
client.post("/v1/payments", body, content_type="application/json")  # warm: imports, connection
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


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


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
            f"{_fmt(r.percentile(99))} | {_fmt(max(r.latencies_ms) if r.latencies_ms else None)} | {r.errors} | "
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
    p.add_argument("--concurrency", type=int, default=16, help="client threads (API) and connections (baseline)")
    p.add_argument("--workers", type=int, default=2 * cores + 1, help="gunicorn workers (default 2 * cores + 1)")
    p.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="gunicorn worker class")
    p.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread only)")
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
    if args.concurrency < 1 or args.duration <= 0 or args.workers < 1:
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
        "DATABASE_CONN_MAX_AGE": "60",
        "REDIS_URL": args.redis_url,
        "PGI_CACHE_PREFIX": "pgibench",
        "PGI_CELERY_QUEUE": "pgibench",
        # Throttling off in practice: the bench measures the service, not its rate limit.
        "PGI_API_RATE": "1000000/min",
        # The web process does not talk to Kafka per request; a closed port makes sure of it.
        "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:9",
        "PGI_SIMULATOR_LATENCY": "0",
        "DJANGO_DEBUG": "0",
        "PGI_VAR_DIR": str(workdir / "var"),
        "PGI_MANIFEST_STATIC": "0",
    }
    env.pop("PYTEST_XDIST_WORKER", None)

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

        common = dict(concurrency=args.concurrency, max_ops=args.max_ops)

        if not args.skip_api:
            port = free_port()
            command = [
                sys.executable, "-m", "gunicorn", "pgi.wsgi",
                "--bind", f"{HOST}:{port}",
                "--workers", str(args.workers),
                "--worker-class", args.worker_class,
                "--threads", str(args.threads),
                "--timeout", "60",
                "--log-level", "warning",
                "--error-logfile", str(gunicorn_log),
            ]  # fmt: skip
            log(f"gunicorn: {' '.join(command[2:])}")
            # Same process group as this script: Ctrl-C reaches it too; stop_process() ends it by pid.
            gunicorn = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL)
            wait_ready(port, api_key, gunicorn)
            meter = CpuMeter(gunicorn.pid, backend_pids)

            def api_setup(i: int) -> ApiClient:
                return ApiClient(port, api_key)

            api = dict(setup=api_setup, teardown=ApiClient.close, **common)
            log(f"api warm-up {args.warmup:.0f}s")
            warm_ids: list[str] = []
            warm = run_load(name="warm-up POST", kind="api", duration=args.warmup, operation=post_payment(warm_ids), **api)
            if warm.ok == 0:
                raise RuntimeError(f"warm-up: every POST failed: {warm.error_samples[:3]}")
            run_load(name="warm-up GET", kind="api", duration=min(args.warmup, 2), operation=get_payment(warm_ids), **api)

            ids: list[str] = []
            log(f"api POST /v1/payments for {args.duration:.0f}s at concurrency {args.concurrency}")
            results.append(run_load(name=API_SCENARIOS[0], kind="api", duration=args.duration,
                                    operation=post_payment(ids), meter=meter, **api))  # fmt: skip
            ids = ids or warm_ids
            log(f"api GET /v1/payments/{{id}} over {len(ids)} ids")
            results.append(run_load(name=API_SCENARIOS[1], kind="api", duration=args.duration,
                                    operation=get_payment(ids), meter=meter, **api))  # fmt: skip
            log("api GET /v1/payments (first page, 50 rows)")
            results.append(run_load(name=API_SCENARIOS[2], kind="api", duration=args.duration,
                                    operation=list_payments, meter=meter, **api))  # fmt: skip
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
            log(f"psycopg INSERT + COMMIT for {args.duration:.0f}s at concurrency {args.concurrency}")
            results.append(run_load(name=BASELINE_SCENARIOS[0], kind="psycopg", duration=args.duration,
                                    operation=raw_insert(raw_ids), meter=meter, **pg))  # fmt: skip
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
    # Throughput ratios: API requests/s over psycopg operations/s (below 1: the API is slower).
    ratios = {
        "api_post_per_psycopg_insert": ratio(post, insert),
        "api_get_per_psycopg_select": ratio(get, select),
        "api_list_per_psycopg_select": ratio(page, select),
    }
    # Cost ratios: CPU per API request over CPU per psycopg operation (above 1: the API costs more).
    cost_ratios = {
        "api_post_cpu_per_psycopg_insert_cpu": cost_ratio(post, insert),
        "api_get_cpu_per_psycopg_select_cpu": cost_ratio(get, select),
        "api_list_cpu_per_psycopg_select_cpu": cost_ratio(page, select),
    }
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
            "gunicorn": {"workers": args.workers, "worker_class": args.worker_class, "threads": args.threads},
            "client": "http.client, one connection per thread",
            "post_body": POST_BODY.decode(),
        },
        "query_profile": profile,
        "scenarios": [r.summary() for r in results],
        "ratios": ratios,
        "cost_ratios": cost_ratios,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n## PGI API load benchmark, {report['started_at']} (commit {report['git_commit']})\n")
    print(
        f"{os.cpu_count()} cores shared by the load generator, gunicorn and PostgreSQL {report['machine']['postgres']}; "
        f"gunicorn {args.workers} x {args.worker_class}"
        + (f" ({args.threads} threads)" if args.worker_class == "gthread" else "")
        + f"; concurrency {args.concurrency}; {args.duration:.0f}s per scenario.\n"
    )
    print(markdown_table(results))
    print()
    labels = {
        "api_post_per_psycopg_insert": "API POST req/s ÷ psycopg INSERT+COMMIT ops/s",
        "api_get_per_psycopg_select": "API GET by id req/s ÷ psycopg SELECT by id ops/s",
        "api_list_per_psycopg_select": "API GET list req/s ÷ psycopg SELECT by id ops/s",
        "api_post_cpu_per_psycopg_insert_cpu": "CPU per API POST ÷ CPU per psycopg INSERT+COMMIT",
        "api_get_cpu_per_psycopg_select_cpu": "CPU per API GET by id ÷ CPU per psycopg SELECT",
        "api_list_cpu_per_psycopg_select_cpu": "CPU per API GET list ÷ CPU per psycopg SELECT",
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
