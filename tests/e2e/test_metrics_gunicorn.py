"""/metrics under a real gunicorn (gunicorn.conf.py): the request metrics of all its workers summed
through prometheus_client's multiprocess directory, emptied at start; the request id on gunicorn's
access line and on the application's JSON log lines."""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-metrics-token"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    var_dir = tmp_path / "var"
    stale = var_dir / "prometheus" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier server")
    # No DATABASE_URL: an empty SQLite file in the var directory. Nothing here needs a table; the
    # figures read from the database are reported missing (pgi_metrics_source_up), fast.
    unwanted = ("PYTEST_XDIST_WORKER", "PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL")
    env = {key: value for key, value in os.environ.items() if key not in unwanted}
    env.update(PGI_VAR_DIR=str(var_dir), PGI_METRICS_TOKEN=TOKEN, PGI_LOG_FORMAT="json", PGI_METRICS_CACHE_SECONDS="0")
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "pgi.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a worker still loading PGI
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz"
            time.sleep(0.2)
        yield base, log_path, stale
    finally:
        process.terminate()
        process.wait(timeout=30)


def healthz_count(base: str) -> float:
    text = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pgi_http_requests_total" and sample.labels["route"] == "healthz"
    )


def test_metrics_sum_every_worker_and_the_request_id_is_on_the_access_and_json_lines(gunicorn):
    base, log_path, stale = gunicorn
    assert not stale.exists()  # the last server's counts are not this one's
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
    before = healthz_count(base)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{base}/healthz", timeout=10), range(40)))
    traced = requests.get(f"{base}/v1/no-such-thing", headers={"X-Request-Id": "e2e-trace-1"}, timeout=10)

    assert [answer.status_code for answer in answers] == [200] * 40
    assert traced.status_code == 404 and traced.headers["X-Request-Id"] == "e2e-trace-1"
    assert healthz_count(base) - before == 40
    time.sleep(0.5)  # the log lines are flushed as written; give the pipe a moment
    lines = log_path.read_text().splitlines()
    assert any('"GET /v1/no-such-thing HTTP/1.1" 404' in line and line.endswith("request_id=e2e-trace-1") for line in lines)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r for r in records if r["logger"] == "django.request" and r.get("request_id") == "e2e-trace-1"], lines
