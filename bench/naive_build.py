"""The naive DRF build (bench/naive/naivepay) that `api_load.py --naive` measures beside PGI.

The same two endpoints, paths, API key header and POST body as PGI's, the way a first DRF version
would write them: a ModelSerializer and DRF's generic views, an API key read from PostgreSQL on each
request, one INSERT per POST (no gateway, history, events, idempotency or throttle), one SELECT per
GET. It runs under gunicorn with PGI's process shape (worker class, workers, threads, the same psycopg
pool size) against its own database, so that the two are compared on the same machine in one run.
"""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

REPO = Path(__file__).resolve().parents[1]
NAIVE_DIR = REPO / "bench" / "naive"
API_KEY = "naive_bench_key_0123456789abcdef"
SCENARIOS = ("naive DRF build POST /v1/payments", "naive DRF build GET /v1/payments/{id}")


def environment(base: dict, server_url: str, database: str, pool: int) -> dict:
    parts = urlsplit(server_url)
    env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "naivepay.settings",
        "PYTHONPATH": str(NAIVE_DIR),
        "NAIVE_DB_NAME": database,
        "NAIVE_DB_HOST": parts.hostname or "127.0.0.1",
        "NAIVE_DB_PORT": str(parts.port or 5432),
        "NAIVE_DB_USER": parts.username or "postgres",
        "PGI_DB_POOL_SIZE": str(pool),
    }
    env.pop("DATABASE_URL", None)
    return env


def prepare(env: dict, server_url: str, database: str) -> None:
    """A new database with the build's tables and its one API key."""
    with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    subprocess.run([sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v0"], cwd=NAIVE_DIR, env=env,
                   check=True, capture_output=True, timeout=300)
    with psycopg.connect(f"{server_url}/{database}", autocommit=True) as conn:
        conn.execute("INSERT INTO naivepay_apikey (key, merchant) VALUES (%s, %s)", (API_KEY, "merchant456"))


def drop(server_url: str, database: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def command(*, host: str, port: int, shape: dict) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "naivepay.wsgi", "--chdir", str(NAIVE_DIR),
        "--worker-class", shape["worker_class"], "--workers", str(shape["workers"]), "--threads", str(shape["threads"]),
        "--bind", f"{host}:{port}", "--log-level", "warning",
    ]  # fmt: skip


def ids(server_url: str, database: str, limit: int = 20000) -> list[str]:
    with psycopg.connect(f"{server_url}/{database}", autocommit=True) as conn:
        rows = conn.execute("SELECT id FROM naivepay_payment ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return [str(row[0]) for row in rows]


if __name__ == "__main__":  # the build alone, for a look: python bench/naive_build.py PORT
    server, database = "postgres://postgres@127.0.0.1:5432", "pgi_bench_naive"
    env = environment(dict(os.environ), server, database, pool=8)
    prepare(env, server, database)
    shape = {"worker_class": "gthread", "workers": 4, "threads": 32}
    print(f"Bearer {API_KEY}", file=sys.stderr)
    subprocess.run(command(host="127.0.0.1", port=int(sys.argv[1]), shape=shape), env=env)
