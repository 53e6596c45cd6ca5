"""What the webhooks tests share: a local HTTP receiver on 127.0.0.1 that records what PGI posts and
answers as told, private URLs allowed (the receiver is one), and endpoints made through the services."""

import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgi.webhooks.services import endpoint_create


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every POST; answers with the next of `answers` (status, body), then `default`."""

    def __init__(self):
        self.received: list[Received] = []
        self.answers: deque[tuple[int, bytes]] = deque()
        self.default: tuple[int, bytes] = (200, b"ok")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                status, text = receiver.answers.popleft() if receiver.answers else receiver.default
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def allow_private(settings):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": True}


@pytest.fixture
def refuse_private(settings):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": False}


@pytest.fixture
def receiver(allow_private):
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def endpoint_for(receiver):
    """endpoint_for(merchant, event_types=["*"], path="/hooks") -> (endpoint, secret)."""

    def make(merchant, event_types=("*",), path="/hooks", **kwargs):
        url = receiver.url.rsplit("/", 1)[0] + path
        return endpoint_create(merchant=merchant, url=url, event_types=list(event_types), **kwargs)

    return make
