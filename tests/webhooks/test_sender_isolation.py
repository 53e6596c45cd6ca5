"""One receiver's trouble stays its own: a slow endpoint holds at most its share of the sender's
slots, and a delivery whose attempt fails in PGI's own code is retried on the schedule while the
others are sent."""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from pgi.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from pgi.webhooks.services import deliveries_fan_out, deliveries_send_due
from tests.events.conftest import processed

pytestmark = pytest.mark.django_db


class SilentServer:
    """Accepts connections and never answers, counting how many are open at once."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow"
        self.open = 0
        self.most_open = 0
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn):
        with self.lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            conn.settimeout(5)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.open -= 1
            conn.close()

    def close(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def quick_sender(settings):
    settings.PGI_WEBHOOKS = {
        **settings.PGI_WEBHOOKS,
        "read_timeout": 1.0,
        "connect_timeout": 1.0,
        "send_concurrency": 4,
        "endpoint_concurrency": 2,
    }


def test_a_silent_receiver_takes_at_most_its_share_of_slots_and_the_others_are_sent_meanwhile(
    principal, merchant, endpoint_for, receiver, silent, quick_sender
):
    healthy, _ = endpoint_for(merchant)
    slow, _ = endpoint_for(merchant, path="/other")
    WebhookEndpoint.objects.filter(pk=slow.pk).update(url=silent.url)
    processed(principal)
    processed(principal, amount="12.00")
    deliveries_fan_out()
    per_endpoint = WebhookDelivery.objects.filter(endpoint=healthy).count()
    assert per_endpoint >= 4 and WebhookDelivery.objects.filter(endpoint=slow).count() == per_endpoint

    started = time.monotonic()
    assert deliveries_send_due() == 2 * per_endpoint
    elapsed = time.monotonic() - started

    assert silent.most_open == 2  # the endpoint's cap, though 4 slots were free at the start
    # Every healthy delivery went out while the silent receiver still held its first two attempts.
    first_slow_answer = WebhookAttempt.objects.filter(delivery__endpoint=slow).order_by("finished_at")[0].finished_at
    healthy_attempts = WebhookAttempt.objects.filter(delivery__endpoint=healthy)
    assert healthy_attempts.count() == per_endpoint and all(a.succeeded for a in healthy_attempts)
    assert max(a.finished_at for a in healthy_attempts) < first_slow_answer
    assert len(receiver.received) == per_endpoint
    # The silent one's attempts ran two at a time, each ending at the read timeout, and will retry.
    assert elapsed >= (per_endpoint / 2) * 1.0 * 0.9
    slow_deliveries = WebhookDelivery.objects.filter(endpoint=slow)
    assert all(d.status == DeliveryStatus.PENDING and d.attempts == 1 for d in slow_deliveries)
    assert all(d.next_attempt_at > timezone.now() + timedelta(seconds=30) for d in slow_deliveries)


def test_an_attempt_that_fails_in_pgi_is_recorded_and_retried_and_the_other_deliveries_are_sent(
    principal, merchant, endpoint_for, receiver
):
    healthy, _ = endpoint_for(merchant)
    broken, _ = endpoint_for(merchant, path="/other")
    # A URL stored before PGI refused whitespace in URLs: posting to it fails before any request.
    WebhookEndpoint.objects.filter(pk=broken.pk).update(url=" " + receiver.url)
    processed(principal)
    deliveries_fan_out()

    count = WebhookDelivery.objects.filter(endpoint=healthy).count()
    assert deliveries_send_due() == 2 * count

    assert set(WebhookDelivery.objects.filter(endpoint=healthy).values_list("status", flat=True)) == {
        DeliveryStatus.SUCCEEDED
    }
    assert len(receiver.received) == count
    for delivery in WebhookDelivery.objects.filter(endpoint=broken):
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
        assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=30)  # the schedule, not the lease
        [attempt] = delivery.attempt_rows.all()
        assert attempt.finished_at is not None and attempt.response_status is None
        assert "spaces" in attempt.error
