"""The HTTP edge as clients meet it: a real gunicorn started with gunicorn.conf.py, spoken to over
raw sockets, so that what gunicorn answers by itself is seen too. No request here reaches a view
that needs the database."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60
SOCKET_TIMEOUT = 10
MAX_URL_LENGTH = 4096  # docs/04-operations.md

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    env["PGI_VAR_DIR"] = str(tmp_path_factory.mktemp("var"))
    log = open(tmp_path_factory.mktemp("log") / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "pgi.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, "gunicorn exited; see its log"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start listening"
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Answer:
    def __init__(self, raw: bytes, closed: bool):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        self.body = _dechunk(rest) if self.headers.get("transfer-encoding") == "chunked" else rest
        self.closed = closed  # the server closed the connection after this answer

    def error(self) -> dict:
        assert self.headers["content-type"].startswith("application/json"), self.headers
        body = json.loads(self.body)
        assert list(body) == ["error"] and set(body["error"]) == {"code", "message", "details"}, body
        return body["error"]


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def _complete(raw: bytes) -> bool:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    headers = head.lower()
    if b"transfer-encoding: chunked" in headers:
        return rest.endswith(b"0\r\n\r\n")
    for line in headers.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def exchange(port: int, request: bytes, then: bytes | None = None) -> Answer:
    """Send `request` on a fresh connection and read one answer; tell whether the server then closed.

    `then`, when given, is sent after the answer (a second request on the same connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before taking the whole body
        raw = b""
        while not _complete(raw):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a whole answer: {raw[:300]!r}"
            raw += chunk
        if then is not None:
            sock.sendall(then)
        try:
            closed = sock.recv(65536) == b""
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
    return Answer(raw, closed)


def get(path: bytes, *headers: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def test_url_over_the_documented_bound_is_a_json_414_from_pgi(gunicorn_port):
    answer = exchange(gunicorn_port, get(b"/v1/payments?reference=" + b"x" * MAX_URL_LENGTH, b"Connection: close"))

    assert answer.status == 414
    assert answer.error()["code"] == "URI_TOO_LONG"


def test_request_line_over_gunicorns_limit_is_a_json_414(gunicorn_port):
    answer = exchange(gunicorn_port, get(b"/v1/payments?reference=" + b"x" * 9000))

    assert answer.status == 414
    assert answer.error()["code"] == "URI_TOO_LONG"
    assert answer.closed


def test_nul_in_a_header_is_a_json_400(gunicorn_port):
    answer = exchange(gunicorn_port, get(b"/v1/payments", b"X-Note: a\x00b"))

    assert answer.status == 400
    assert answer.error()["code"] == "BAD_REQUEST"


def test_header_over_the_field_size_limit_is_a_json_431(gunicorn_port):
    answer = exchange(gunicorn_port, get(b"/v1/payments", b"X-Note: " + b"x" * 9000))

    assert answer.status == 431
    assert answer.error()["code"] == "REQUEST_HEADERS_TOO_LARGE"


@pytest.mark.parametrize("path", [b"//v1/payments", b"/v1//payments", b"/./v1/payments", b"//v1"])
def test_other_spellings_of_api_paths_are_a_json_404(gunicorn_port, path):
    answer = exchange(gunicorn_port, get(path, b"Connection: close"))

    assert answer.status == 404
    assert answer.error()["code"] == "NOT_FOUND"


def test_body_over_the_upload_limit_is_413_and_the_connection_closes_as_announced(gunicorn_port):
    length = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    request = (
        b"POST /v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n\r\n" + b" " * 65536
    )

    answer = exchange(gunicorn_port, request)

    assert answer.status == 413
    assert answer.error()["code"] == "PAYLOAD_TOO_LARGE"
    assert answer.headers["connection"] == "close"
    assert answer.closed


def test_chunked_body_is_411_and_the_connection_closes_as_announced(gunicorn_port):
    request = (
        b"POST /v1/payments/pay_x/capture HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"amount\": 1.00}\r\n0\r\n\r\n"
    )

    answer = exchange(gunicorn_port, request)

    assert answer.status == 411
    assert answer.error()["code"] == "LENGTH_REQUIRED"
    assert answer.headers["connection"] == "close"
    assert answer.closed


def test_an_ordinary_error_keeps_the_connection_open_for_the_next_request(gunicorn_port):
    answer = exchange(gunicorn_port, get(b"/v1/nothing"), then=get(b"/v1/nothing", b"Connection: close"))

    assert answer.status == 404
    assert answer.headers["connection"] == "keep-alive"
    assert not answer.closed  # the second request was answered, not refused
