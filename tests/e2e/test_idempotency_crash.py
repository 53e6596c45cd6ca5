"""A gunicorn worker killed (SIGKILL) in the middle of a POST with an Idempotency-Key: retries
converge on exactly one payment. Gunicorn serves the test database (committed rows: transactional
tests); the simulator is slowed down (PGI_SIMULATOR_LATENCY) so the worker can be killed while it
waits on the gateway, or a row lock holds it before the payment is created."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from django.db import connection

from gateways.models import SimulatorCharge
from payments.models import Payment
from payments.services import payment_recover
from pgi.api.models import IdempotencyRecord
from pgi.merchants.services import api_key_create

from ..api.helpers import assert_error
from ..factories import MerchantFactory
from .test_make_run import free_port, group_is_gone

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 10  # long enough to see the 409 on a busy machine; the default is 15
LATENCY_SECONDS = 5
HTTP_TIMEOUT = 30
BODY = {"amount": 50.00, "currency": "USD", "fromAccount": "account123"}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.django_db(transaction=True)]


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def database_url_of_this_test() -> str:
    """DATABASE_URL pointing at the database this test runs on (pytest-django's test database)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


class Web:
    def __init__(self, process: subprocess.Popen, base_url: str, api_key: str, log: Path):
        self.process = process
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.log = log

    def post(self, key: str) -> requests.Response:
        return requests.post(
            f"{self.base_url}/v1/payments",
            json=BODY,
            headers={**self.headers, "Idempotency-Key": key},
            timeout=HTTP_TIMEOUT,
        )

    def post_in_background(self, key: str) -> threading.Thread:
        """The request whose worker gets killed: it never gets an answer."""

        def send():
            try:
                self.post(key)
            except requests.RequestException:
                pass

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread

    def worker(self) -> int:
        workers = children_of(self.process.pid)
        assert len(workers) == 1, f"expected one gunicorn worker, found {workers}"
        return workers[0]

    def kill_worker(self) -> None:
        killed = self.worker()
        os.kill(killed, signal.SIGKILL)
        # The master forks a new worker (the app is preloaded, so it is ready at once).
        wait_until(lambda: children_of(self.process.pid) not in ([], [killed]), 30, "a new gunicorn worker")

    def retry_until_answered(self, key: str) -> requests.Response:
        """Retries as a client would: while 409, wait as long as Retry-After says."""
        deadline = time.monotonic() + LEASE_SECONDS * 3
        while True:
            response = self.post(key)
            if response.status_code != 409 or time.monotonic() > deadline:
                return response
            time.sleep(int(response.headers["Retry-After"]))


@pytest.fixture
def web(transactional_db, tmp_path):
    merchant = MerchantFactory(code="merchant456", name="Demo Shop")
    _, api_key = api_key_create(name="checkout", merchant=merchant)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    env.update(
        DATABASE_URL=database_url_of_this_test(),
        PGI_SIMULATOR_LATENCY=str(LATENCY_SECONDS),
        PGI_IDEMPOTENCY_LEASE_SECONDS=str(LEASE_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "web.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "pgi.wsgi",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "1",
                "--preload",
                "--timeout", "60",
                "--graceful-timeout", "5",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the worker goes with it
        )
    web = Web(process, f"http://127.0.0.1:{port}", api_key, log)

    def ready():
        assert process.poll() is None, f"gunicorn exited:\n{log.read_text()}"
        try:
            return requests.get(f"{web.base_url}/v1/payments?limit=1", headers=web.headers, timeout=5).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(ready, 60, "gunicorn to answer")
        yield web
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        if not group_is_gone(process.pid, 15):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def test_worker_killed_while_waiting_on_the_gateway_retry_gets_the_payment_it_created(web):
    web.post_in_background("order-1")
    payment = wait_until(lambda: Payment.objects.filter(status="Processing").first(), 30, "the payment")
    record = IdempotencyRecord.objects.get(key="order-1")
    assert (record.linked_id, record.response_status) == (payment.id, None)  # linked in the same commit
    time.sleep(0.5)  # the worker now sleeps in the simulator's latency

    web.kill_worker()
    within_lease = web.post("order-1")

    assert_error(within_lease, 409, "IDEMPOTENCY_IN_PROGRESS")
    assert 1 <= int(within_lease.headers["Retry-After"]) <= LEASE_SECONDS

    after_lease = web.retry_until_answered("order-1")

    assert after_lease.status_code == 201, after_lease.text
    assert after_lease.headers["Idempotent-Replayed"] == "true"
    assert (after_lease.json()["id"], after_lease.json()["status"]) == (payment.id, "Processing")
    assert Payment.objects.count() == 1

    # Recovery settles the payment (the killed worker never reached the gateway: it is sent now,
    # under its own id as the gateway's idempotency key); the key then answers with the outcome,
    # stored for good.
    assert payment_recover(payment_id=payment.id) == "settled"
    settled = web.post("order-1")

    assert (settled.status_code, settled.json()["id"], settled.json()["status"]) == (201, payment.id, "Completed")
    assert IdempotencyRecord.objects.get(key="order-1").response_status == 201
    assert Payment.objects.count() == 1
    assert SimulatorCharge.objects.count() == 1


def test_worker_killed_before_the_payment_was_created_retry_runs_the_request_once(web):
    with psycopg.connect(database_url_of_this_test(), autocommit=False) as blocker:
        # A table lock that lets reads through and holds back any INSERT: the request stops at the
        # first statement of the transaction that creates the payment, after it claimed the key.
        # (A row lock would not do: foreign keys are checked at COMMIT, after the claim's link.)
        blocker.execute(f"LOCK TABLE {Payment._meta.db_table} IN SHARE MODE")
        web.post_in_background("order-2")
        wait_until(lambda: IdempotencyRecord.objects.filter(key="order-2").exists(), 30, "the claim")
        wait_until(waiting_on_a_lock, 30, "the request to wait on the lock")

        web.kill_worker()
        within_lease = web.post("order-2")

        assert_error(within_lease, 409, "IDEMPOTENCY_IN_PROGRESS")
        assert 1 <= int(within_lease.headers["Retry-After"]) <= LEASE_SECONDS
        blocker.rollback()

    record = IdempotencyRecord.objects.get(key="order-2")
    assert (record.linked_id, record.response_status) == ("", None)
    assert not Payment.objects.exists()

    after_lease = web.retry_until_answered("order-2")

    assert after_lease.status_code == 201, after_lease.text
    assert "Idempotent-Replayed" not in after_lease.headers  # it ran, this time to the end
    assert list(Payment.objects.values_list("id", flat=True)) == [after_lease.json()["id"]]
    replay = web.post("order-2")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == after_lease.json()["id"]
    assert Payment.objects.count() == 1


def waiting_on_a_lock() -> bool:
    # Asked on the test's own connection: a transaction sees one snapshot of pg_stat_activity.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0
