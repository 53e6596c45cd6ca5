"""Real processes for the fault tests: gunicorn (with gunicorn.conf.py), a Celery worker and a
redis-server of the test's own, each started on the test's database (transactional tests: what they
commit is what the processes see) and stopped, with whatever they started, when the test ends."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import requests

from ..e2e.test_idempotency_crash import (
    children_of,
    database_url_of_this_test,
    wait_until,
)
from ..e2e.test_make_run import free_port

ROOT = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT = 30


def base_env(**extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    env.update(DATABASE_URL=database_url_of_this_test(), PYTHONUNBUFFERED="1", **extra)
    return env


class Process:
    """A child in a process group of its own (its workers go with it), logging to a file."""

    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM) -> None:
        self.signal(sig)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)  # whatever of its group is left
        self.popen.wait(timeout=15)

    def signal(self, sig) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass


class Web(Process):
    def __init__(self, env: dict, log: Path, api_key: str):
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "pgi.wsgi",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "2", "--preload", "--graceful-timeout", "2"],
            env, log,
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def post(self, path: str, body: dict, key: str | None = None) -> requests.Response:
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        return requests.post(f"{self.base_url}{path}", json=body, headers=headers, timeout=HTTP_TIMEOUT)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base_url}{path}", headers=self.headers, timeout=HTTP_TIMEOUT)

    def worker(self) -> int:
        workers = children_of(self.pid)
        assert len(workers) == 1, f"expected one gunicorn worker, found {workers}"
        return workers[0]

    def wait_ready(self) -> "Web":
        def ready():
            assert self.alive(), f"gunicorn exited:\n{self.log_text()}"
            try:
                return self.get("/v1/payments?limit=1").ok
            except requests.ConnectionError:
                return False

        wait_until(ready, 60, "gunicorn to answer")
        return self


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: stopped, it forgets
    everything, as a Redis that crashed or was replaced."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "no redis-server on PATH: apt-get install redis-server"
        self.process = Process(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            os.environ.copy(), self.directory / "redis.log",
        )
        wait_until(self.answers, 15, "redis-server to answer")

    def answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(signal.SIGKILL)
            self.process = None
        with socket.socket() as sock:  # nothing listens there any more
            assert sock.connect_ex(("127.0.0.1", self.port)) != 0


class Processes:
    """What a test starts; all of it is stopped at its end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[Process] = []

    def web(self, api_key: str, **env: str) -> Web:
        web = Web(base_env(**env), self.tmp_path / f"web-{len(self.started)}.log", api_key)
        self.started.append(web)
        return web.wait_ready()

    def celery_worker(self, queue: str, **env: str) -> Process:
        worker = Process(
            [sys.executable, "-m", "celery", "-A", "pgi", "worker", "-Q", queue, "--pool", "solo",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
            base_env(**{"PGI_CELERY_QUEUE": queue, **env}),
            self.tmp_path / f"worker-{len(self.started)}.log",
        )
        self.started.append(worker)
        wait_until(lambda: "ready." in worker.log_text() or not worker.alive(), 60, "the Celery worker")
        assert worker.alive(), worker.log_text()
        return worker

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@pytest.fixture
def processes(transactional_db, tmp_path):
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def terminate_backends(where: str = "") -> int:
    """pg_terminate_backend every other connection to the test's database (`where`: and this SQL
    condition on pg_stat_activity); returns how many were ended."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = current_database() AND pid <> pg_backend_pid() {where}"
        )
        return cursor.fetchone()[0]

