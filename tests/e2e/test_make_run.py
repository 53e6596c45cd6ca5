"""`make run` end to end: scripts/run.py on the embedded defaults (SQLite, Celery's filesystem
transport, the bundled broker), driven with `requests` exactly as the API specification's snippet does, then
stopped. Needs no test database: everything it touches lives in a temporary PGI_VAR_DIR."""

import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180  # migrate + collectstatic + four processes, on a busy 2-core CI machine
WEBHOOK_TIMEOUT = 30
REFUND_TIMEOUT = 20  # the worker's task sends it at once; beat's batch job comes only every 60 s
RECOVERY_TIMEOUT = 150  # beat runs recovery every 60 s; its first run comes one interval after start
STOP_TIMEOUT = 40
KAFKA_CONSUMER_TIMEOUT = 60  # the consumer joins its group (~5 s on the bundled broker), then pays
HTTP_TIMEOUT = 15

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(720)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunOutput:
    """Collects the child's stdout on a thread, so reading it never blocks the test."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, marker: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                return False
            self.lines.append(line)
            if marker in line:
                return True
        return False

    def drain(self, timeout: float = 5) -> str:
        self._thread.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


def banner_value(text: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+(\S+)\s*$", text, re.MULTILINE)
    assert match, f"no {label!r} in the banner:\n{text}"
    return match.group(1)


def group_is_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def run_env(var_dir: Path, port: int) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "PGI_PUBLIC_URL",
            "PYTEST_XDIST_WORKER",
            # make run's own sandbox: the simulator on, its webhook secret generated in PGI_VAR_DIR.
            "PGI_SANDBOX",
            "PGI_SIMULATOR_ENABLED",
            "PGI_SIMULATOR_WEBHOOK_SECRET",
        }
    }
    # Recovery may look at a timed-out payment at once, so beat's first run settles it.
    env.update(PGI_VAR_DIR=str(var_dir), PORT=str(port), PYTHONUNBUFFERED="1", PGI_RECOVERY_GRACE_SECONDS="0")
    return env


def start_run(env: dict) -> tuple[subprocess.Popen, RunOutput]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the children can be found and cleaned up
    )
    output = RunOutput(process.stdout)
    started = output.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
    assert started, f"run.py did not print its banner (exit code {process.poll()}):\n{output.drain()}"
    return process, output


def stop_run(process: subprocess.Popen, output: RunOutput) -> None:
    """SIGTERM to run.py alone: it must stop every child it started, and exit 0."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT) == 0, output.drain()
    assert "Stopped." in output.drain()
    assert group_is_gone(process.pid, timeout=10), "a child of run.py outlived it"


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def simulator_command(env: dict, *args: str) -> str:
    """`manage.py simulator …` from another shell, as the banner shows it (PGI_SANDBOX=true)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "simulator", *args],
        cwd=ROOT, env={**env, "PGI_SANDBOX": "true"}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_serves_the_specifications_snippet_then_stops_every_process(tmp_path):
    port = free_port()
    var_dir = tmp_path / "var"
    env = run_env(var_dir, port)
    process, output = start_run(env)
    try:
        banner = output.text
        merchant_key = banner_value(banner, "Merchant key")
        admin_password = banner_value(banner, "password")
        base_url = banner_value(banner, "API base URL")
        assert base_url == f"http://127.0.0.1:{port}/v1"
        assert banner_value(banner, "Credentials") == str(var_dir / "demo-credentials.env")
        assert stat.S_IMODE((var_dir / "demo-credentials.env").stat().st_mode) == 0o600
        assert stat.S_IMODE(var_dir.stat().st_mode) == 0o700
        for private in ("pgi.sqlite3", "log/web.log"):  # payment data, key hashes, request logs
            assert stat.S_IMODE((var_dir / private).stat().st_mode) & 0o077 == 0, private
        headers = {"Authorization": f"Bearer {merchant_key}"}

        # The finance UI and its demo user, who signs in there and is no admin.
        finance_url = banner_value(banner, "Finance UI")
        assert finance_url == f"http://127.0.0.1:{port}/finance/"
        assert banner_value(banner, "finance user") == "finance"
        finance = requests.Session()
        login = finance.get(f"{finance_url}login", timeout=HTTP_TIMEOUT)
        signed_in = finance.post(
            f"{finance_url}login",
            data={"username": "finance", "password": banner_value(banner, "finance password"),
                  "csrfmiddlewaretoken": finance.cookies["csrftoken"]},
            headers={"Referer": login.url}, timeout=HTTP_TIMEOUT,
        )
        assert signed_in.status_code == 200 and signed_in.url == finance_url
        assert 'id="kpi-today"' in signed_in.text
        assert "/admin/login/" in finance.get(f"http://127.0.0.1:{port}/admin/", timeout=HTTP_TIMEOUT).url

        # The API specification's snippet, with the base URL and the Authorization header added.
        new_payment = {"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}
        response = requests.post(f"{base_url}/payments", json=new_payment, headers=headers, timeout=HTTP_TIMEOUT)

        assert response.status_code == 201, response.text
        payment = response.json()
        assert payment["id"].startswith("pay_")
        assert payment["amount"] == 50.00
        assert '"amount":50.00' in response.text.replace(" ", "")  # exact decimal, two places
        assert payment["currency"] == "USD"
        assert payment["fromAccount"] == "account123"
        assert payment["toMerchant"] == "merchant456"
        assert payment["status"] == "Completed"
        assert payment["timestamp"].endswith("Z")

        payment_id = payment["id"]
        response = requests.get(f"{base_url}/payments/{payment_id}", headers=headers, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text
        assert response.json() == payment

        # The banner's refund example: accepted as Pending, sent to the simulator by the Celery
        # worker's task right after the commit, Completed within seconds.
        assert f"{base_url}/payments/{{id}}/refunds" in banner
        refund_body = {"amount": 20.00, "reason": "Returned item"}
        response = requests.post(
            f"{base_url}/payments/{payment_id}/refunds", json=refund_body, headers=headers, timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 202, response.text
        refund = response.json()
        assert (refund["paymentId"], refund["amount"], refund["status"]) == (payment_id, 20.00, "Pending")
        deadline = time.monotonic() + REFUND_TIMEOUT
        while time.monotonic() < deadline:
            refund = requests.get(f"{base_url}/refunds/{refund['id']}", headers=headers, timeout=HTTP_TIMEOUT).json()
            if refund["status"] != "Pending":
                break
            time.sleep(0.5)
        assert refund["status"] == "Completed", f"refund still {refund['status']} after {REFUND_TIMEOUT}s"
        refunded = requests.get(f"{base_url}/payments/{payment_id}", headers=headers, timeout=HTTP_TIMEOUT).json()
        assert (refunded["status"], refunded["refundedAmount"]) == ("PartiallyRefunded", 20.00)

        # Settlement on the run's SQLite database, from another shell: the payment less its refund
        # and fee, to the cent, in one batch; a second run adds nothing.
        time.sleep(1)  # the cut-off is to the second: after the refund's completion
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for created in ("batches created 1,", "batches created 0,"):
            settle = subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "settle", "--cutoff", cutoff],
                cwd=ROOT, env={**env, "PGI_SANDBOX": "true"}, capture_output=True, text=True, timeout=120,
            )
            assert settle.returncode == 0 and created in settle.stdout, settle.stdout + settle.stderr
        [settlement] = requests.get(f"{base_url}/settlements", headers=headers, timeout=HTTP_TIMEOUT).json()["results"]
        assert (settlement["grossAmount"], settlement["refundAmount"]) == (50.00, 20.00), settlement
        fee = Decimal(str(settlement["feeAmount"]))
        assert Decimal(str(settlement["netAmount"])) == Decimal("30.00") - fee, settlement

        def pay(**overrides) -> dict:
            answer = requests.post(f"{base_url}/payments", json=dict(new_payment, **overrides), headers=headers, timeout=HTTP_TIMEOUT)
            assert answer.status_code == 201, answer.text
            return answer.json()

        # A bank system's payment request on Kafka: taken once by the consumer, however often sent.
        request = b'{"requestId": "tps-e2e-0001", "amount": 12.50, "currency": "USD", ' \
            b'"fromAccount": "account123", "toMerchant": "merchant456"}'
        producer = Producer({"bootstrap.servers": banner_value(banner, "Kafka bootstrap")})
        for _ in range(2):
            producer.produce("payment-requests", value=request, key=b"tps")
        assert producer.flush(10) == 0
        found = []
        deadline = time.monotonic() + KAFKA_CONSUMER_TIMEOUT
        while time.monotonic() < deadline and [p["status"] for p in found] != ["Completed"]:
            found = requests.get(
                f"{base_url}/payments", params={"reference": "tps-e2e-0001"}, headers=headers, timeout=HTTP_TIMEOUT
            ).json()["results"]
            time.sleep(0.5)
        assert [(p["amount"], p["status"]) for p in found] == [(12.50, "Completed")], found
        consumer_log = var_dir / "log" / "consumer.log"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "request tps-e2e-0001 had already created" not in consumer_log.read_text():
            time.sleep(0.2)
        again = requests.get(f"{base_url}/payments", params={"reference": "tps-e2e-0001"}, headers=headers, timeout=HTTP_TIMEOUT)
        assert [p["id"] for p in again.json()["results"]] == [found[0]["id"]], consumer_log.read_text()

        # The consumer killed (SIGKILL) is started again, and the next request is taken.
        os.kill(child_pid(var_dir, "consume_payment_requests"), signal.SIGKILL)
        assert output.wait_for("consumer exited with code -9; started it again", 15), output.drain()
        producer.produce("payment-requests", value=request.replace(b"0001", b"0002"), key=b"tps")
        assert producer.flush(10) == 0
        taken = []
        deadline = time.monotonic() + KAFKA_CONSUMER_TIMEOUT
        while time.monotonic() < deadline and [p["status"] for p in taken] != ["Completed"]:
            taken = requests.get(
                f"{base_url}/payments", params={"reference": "tps-e2e-0002"}, headers=headers, timeout=HTTP_TIMEOUT
            ).json()["results"]
            time.sleep(0.5)
        assert [p["status"] for p in taken] == ["Completed"], consumer_log.read_text()

        # A client's mistake is no warning in the web log.
        assert requests.get(f"{base_url}/payments/pay_unknown", headers=headers, timeout=HTTP_TIMEOUT).status_code == 404

        # 0503 fails that payment alone, however often: the breaker (default: 5 failures) stays closed.
        staged = [pay(fromAccount="account0503") for _ in range(7)]
        assert {(p["status"], p["failureCode"]) for p in staged} == {("Failed", "GATEWAY_UNAVAILABLE")}
        assert [pay()["status"] for _ in range(4)] == ["Completed"] * 4

        # The outage switch, thrown from another process, is seen by every gunicorn worker.
        assert simulator_command(env, "outage", "simulator", "on").strip() == "simulator: down (switched off)"
        assert simulator_command(env, "status").strip() == "simulator: down (switched off)"
        down = [pay() for _ in range(3)]  # below the breaker's threshold, over both workers
        assert [(p["status"], p["failureCode"]) for p in down] == [("Failed", "GATEWAY_UNAVAILABLE")] * 3
        assert simulator_command(env, "outage", "simulator", "off").strip() == "simulator: up"
        assert [pay()["status"] for _ in range(4)] == ["Completed"] * 4

        # An account ending 0202 is completed later by the simulator's signed webhook, which the
        # Celery worker sends back to this server.
        pending = dict(new_payment, fromAccount="account0202")
        response = requests.post(f"{base_url}/payments", json=pending, headers=headers, timeout=HTTP_TIMEOUT)
        assert response.status_code == 201, response.text
        assert response.json()["status"] in {"Pending", "Processing"}
        pending_id = response.json()["id"]
        deadline = time.monotonic() + WEBHOOK_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            status = requests.get(f"{base_url}/payments/{pending_id}", headers=headers, timeout=HTTP_TIMEOUT).json()[
                "status"
            ]
            if status == "Completed":
                break
            time.sleep(0.5)
        assert status == "Completed", f"0202 payment still {status} after {WEBHOOK_TIMEOUT}s"
        # Signed with a secret make run generated, readable by its owner only.
        secret_file = var_dir / "simulator-webhook-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert secret_file.read_text().strip() != "whsec_simulator_local"

        # Authorize now, capture part of it later.
        held = dict(new_payment, capture=False)
        response = requests.post(f"{base_url}/payments", json=held, headers=headers, timeout=HTTP_TIMEOUT)
        assert (response.status_code, response.json()["status"]) == (201, "Authorized"), response.text
        response = requests.post(
            f"{base_url}/payments/{response.json()['id']}/capture", json={"amount": 20.00}, headers=headers, timeout=HTTP_TIMEOUT
        )
        assert (response.status_code, response.json()["status"]) == (200, "Completed"), response.text
        assert '"capturedAmount":20.00' in response.text.replace(" ", "")

        # 0408: the simulator charges, then its answer times out. The payment stays Processing until
        # the recovery job, run by beat on the worker, asks the simulator and completes it.
        lost = dict(new_payment, fromAccount="account0408")
        response = requests.post(f"{base_url}/payments", json=lost, headers=headers, timeout=HTTP_TIMEOUT)
        assert (response.status_code, response.json()["status"]) == (201, "Processing"), response.text
        lost_id = response.json()["id"]
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            status = requests.get(f"{base_url}/payments/{lost_id}/status", headers=headers, timeout=HTTP_TIMEOUT).json()[
                "status"
            ]
            if status == "Completed":
                break
            time.sleep(1)
        assert status == "Completed", f"0408 payment still {status} after {RECOVERY_TIMEOUT}s"

        # The admin answers, and the printed password logs in.
        admin_url = base_url.removesuffix("/v1") + "/admin/"
        session = requests.Session()
        login_page = session.get(f"{admin_url}login/", timeout=HTTP_TIMEOUT)
        assert login_page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        response = session.post(
            f"{admin_url}login/?next=/admin/",
            data={"username": "admin", "password": admin_password, "csrfmiddlewaretoken": token, "next": "/admin/"},
            headers={"Referer": f"{admin_url}login/"},
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 200
        assert response.url == admin_url, "the printed admin password did not log in"

        # The docs show this instance's address, not the default port.
        guide = requests.get(base_url.removesuffix("/v1") + "/docs/01-integration-guide/", timeout=HTTP_TIMEOUT).text
        assert f"export PGI=http://127.0.0.1:{port}/v1" in guide

        # gunicorn's control socket is this instance's own.
        assert (var_dir / "gunicorn.ctl").is_socket()

        stop_run(process, output)
    finally:
        kill_group(process)

    # Logs a person can read: no broker hostname warning, no warning per client 4xx, Celery's
    # root warning said once by run.py (when root) instead of by the worker.
    logs = {name: (var_dir / "log" / f"{name}.log").read_text() for name in ("web", "worker", "beat")}
    assert not [name for name, text in logs.items() if "No hostname was supplied" in text]
    assert "WARNING django.request" not in logs["web"]
    assert "superuser privileges" not in logs["worker"]
    assert "broker_connection_retry" not in logs["worker"]
    assert f"Control socket listening at {var_dir / 'gunicorn.ctl'}" in logs["web"]

    # Started again on the same var directory: the same credentials, and they still work.
    process, output = start_run(env)
    try:
        again = output.text
        for label in ("Merchant key", "Platform key", "password"):
            assert banner_value(again, label) == banner_value(banner, label)
        assert pay_with(base_url, merchant_key)["status"] == "Completed"
        stop_run(process, output)
    finally:
        kill_group(process)


def child_pid(var_dir: Path, marker: str) -> int:
    """The pid of this instance's child whose command line has `marker` (found by its PGI_VAR_DIR)."""
    wanted = f"PGI_VAR_DIR={var_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no process of {var_dir} runs {marker}")


def pay_with(base_url: str, key: str) -> dict:
    body = {"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}
    response = requests.post(f"{base_url}/payments", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()


def test_processes_of_the_embedded_defaults_share_the_outage_switch(tmp_path):
    """Without Redis every process still sees one cache: a switch thrown by one is read by another."""
    env = run_env(tmp_path / "var", free_port())

    simulator_command(env, "outage", "simulator", "on")

    assert simulator_command(env, "status").strip() == "simulator: down (switched off)"
    simulator_command(env, "outage", "simulator", "off")
    assert simulator_command(env, "status").strip() == "simulator: up"


def test_demo_setup_keeps_one_merchant_and_its_credentials_on_the_same_var_dir(tmp_path):
    """`make run` calls demo_setup on every start: the merchant stays, and so do its credentials."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "PYTEST_XDIST_WORKER"}}
    env["PGI_VAR_DIR"] = str(tmp_path / "var")

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def values(output: str) -> dict:
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    manage("migrate", "--noinput", "-v0")
    first = values(manage("demo_setup"))
    second = values(manage("demo_setup"))

    assert first["PGI_DEMO_MERCHANT"] == second["PGI_DEMO_MERCHANT"] == "merchant456"
    for name in ("PGI_DEMO_MERCHANT_KEY", "PGI_DEMO_PLATFORM_KEY", "PGI_ADMIN_PASSWORD"):
        assert first[name] == second[name]
    assert (tmp_path / "var" / "demo-credentials.env").stat().st_mode & 0o777 == 0o600
    state = manage(
        "shell",
        "-c",
        "from django.contrib.auth import authenticate;"
        "from pgi.merchants.models import ApiKey, Merchant;"
        "m = Merchant.objects.get(code='merchant456');"
        "print('MERCHANTS', Merchant.objects.count(), m.name, ','.join(sorted(m.currencies.values_list('currency', flat=True))));"
        "print('ACTIVE', sorted(ApiKey.objects.filter(revoked_at=None).values_list('name', flat=True)));"
        "print('REVOKED', ApiKey.objects.exclude(revoked_at=None).count());"
        f"print('LOGIN', authenticate(username='admin', password='{second['PGI_ADMIN_PASSWORD']}').is_superuser)",
    )
    assert "MERCHANTS 1 Demo Merchant EUR,GBP,JPY,KWD,USD" in state
    assert "ACTIVE ['demo', 'demo-platform']" in state
    assert "REVOKED 0" in state
    assert "LOGIN True" in state
