"""`manage.py consume_payment_requests` against the bundled broker: a request becomes one payment
however often it is delivered, poison goes to the dead-letter topic and the consumer goes on, and
an offset is committed only once the message's outcome is stored.

A consumer group takes ~3 s to form on the bundled broker (with the 6 s session timeout set here;
librdkafka's default of 45 s makes it ~23 s), so each test starts as few consumers as it can.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import OperationalError

from payment_requests import consumer as consumer_module
from payment_requests.consumer import PaymentRequestConsumer
from payment_requests.models import PaymentRequest
from payments.models import Payment, PaymentStatus
from pgi.events.models import OutboxEvent
from pgi.events.relay import topics_create_missing

from .conftest import request_bytes

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def topics(settings, kafka_bootstrap):
    """A topic, its dead-letter topic and a group of this test's own, one partition (so a poison
    message sits in the way of the valid one behind it), quick retries."""
    suffix = uuid.uuid4().hex[:10]
    settings.PGI_PAYMENT_REQUESTS = {
        **settings.PGI_PAYMENT_REQUESTS,
        "topic": f"test.requests.{suffix}",
        "dlq_topic": f"test.requests.{suffix}.dlq",
        "group_id": f"test-group-{suffix}",
        "session_timeout_ms": 6000,
        "retry_max_seconds": 0.2,
        "max_attempts": 2,
    }
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "topic_partitions": 1}
    config = settings.PGI_PAYMENT_REQUESTS
    # Created here, before anything is sent: a producer's first message would have the broker
    # create the topic with its own default partitions.
    topics_create_missing(
        AdminClient({"bootstrap.servers": kafka_bootstrap}),
        {config["topic"], config["dlq_topic"]},
        partitions=1,
        replication=1,
        name="test",
        bootstrap=kafka_bootstrap,
    )
    return SimpleNamespace(bootstrap=kafka_bootstrap, **config)


def wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@contextlib.contextmanager
def running(consumer: PaymentRequestConsumer):
    thread = threading.Thread(target=consumer.run, name=consumer.name, daemon=True)
    thread.start()
    try:
        wait_until(consumer.assigned.is_set, timeout=60, what="the consumer joining its group")
        yield consumer
    finally:
        consumer.stop()
        thread.join(30)
        assert not thread.is_alive(), "the consumer did not stop"


def send(topics, *values: bytes) -> None:
    producer = Producer({"bootstrap.servers": topics.bootstrap})
    for value in values:
        producer.produce(topics.topic, value=value, key=b"tps")
    assert producer.flush(10) == 0


def handled(consumer: PaymentRequestConsumer) -> int:
    return consumer.counts["created"] + consumer.counts["duplicate"] + consumer.counts["dead_lettered"]


def committed_offset(topics) -> int:
    """Where the group would start reading partition 0 again."""
    reader = Consumer({"bootstrap.servers": topics.bootstrap, "group.id": topics.group_id})
    try:
        (partition,) = reader.committed([TopicPartition(topics.topic, 0)], timeout=10)
        return partition.offset
    finally:
        reader.close()


def dead_letters(topics, *, expected: int, timeout: float = 20) -> list[SimpleNamespace]:
    reader = Consumer({"bootstrap.servers": topics.bootstrap, "group.id": f"reader-{uuid.uuid4()}"})
    reader.assign([TopicPartition(topics.dlq_topic, 0, OFFSET_BEGINNING)])
    found = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < expected and time.monotonic() < deadline:
            message = reader.poll(0.2)
            if message is not None and not message.error():
                headers = {name: value.decode() for name, value in message.headers() or []}
                found.append(SimpleNamespace(value=message.value(), key=message.key(), headers=headers))
        return found
    finally:
        reader.close()


def test_a_request_delivered_twice_creates_one_payment_processed_through_the_simulator(topics, bank_merchant):
    message = request_bytes(requestId="tps-1001", amount="50.00")

    with running(PaymentRequestConsumer()) as consumer:
        send(topics, message, message)
        wait_until(lambda: handled(consumer) == 2, timeout=30, what="both deliveries handled")

    payment = Payment.objects.get()
    assert (consumer.counts["created"], consumer.counts["duplicate"]) == (1, 1)
    assert payment.status == PaymentStatus.COMPLETED and payment.gateway == "simulator"
    assert PaymentRequest.objects.get(request_id="tps-1001").payment == payment
    assert list(
        OutboxEvent.objects.filter(key=payment.id, topic="payment-events").order_by("id").values_list("event_type", flat=True)
    ) == ["PAYMENT_CREATED", "PAYMENT_STATUS_UPDATED", "PAYMENT_PROCESSED"]
    assert committed_offset(topics) == 2


def test_the_payments_events_carry_the_producers_request_id_header_or_a_new_one(topics, bank_merchant):
    producer = Producer({"bootstrap.servers": topics.bootstrap})
    traced = request_bytes(requestId="tps-1101", amount="50.00")
    producer.produce(topics.topic, value=traced, key=b"tps", headers=[("pgi-request-id", b"tps-trace-7")])
    producer.produce(topics.topic, value=request_bytes(requestId="tps-1102", amount="50.00"), key=b"tps")
    assert producer.flush(10) == 0

    with running(PaymentRequestConsumer()) as consumer:
        wait_until(lambda: handled(consumer) == 2, timeout=30, what="both requests handled")

    def request_ids(sent_id: str) -> set[str]:
        payment = PaymentRequest.objects.get(request_id=sent_id).payment
        return set(OutboxEvent.objects.filter(key=payment.id).values_list("request_id", flat=True))

    assert request_ids("tps-1101") == {"tps-trace-7"}
    (made,) = request_ids("tps-1102")
    assert len(made) == 32 and made != "tps-trace-7"


POISON = [
    (b"\xff\xfenot text", "NOT_UTF8"),
    (b"{not json", "NOT_JSON"),
    (b'["an", "array"]', "NOT_AN_OBJECT"),
    (request_bytes(requestId="tps-2001", amount="-1"), "VALIDATION_ERROR"),
    (request_bytes(requestId="tps-2002", toMerchant="nobody"), "UNKNOWN_MERCHANT"),
    (request_bytes(requestId="tps-2003", amount="50.00"), None),  # valid
    (request_bytes(requestId="tps-2003", amount="99.00"), "REQUEST_ID_REUSED"),
    (request_bytes(requestId="tps-2004", fromAccount="acct-0002"), None),  # valid, declined: a Failed payment
]


def test_poison_goes_to_the_dead_letter_topic_with_its_reason_and_the_consumer_goes_on(topics, bank_merchant):
    with running(PaymentRequestConsumer()) as consumer:
        send(topics, *(value for value, _ in POISON))
        wait_until(lambda: handled(consumer) == len(POISON), timeout=30, what="every message handled")

    poison = [(offset, value, code) for offset, (value, code) in enumerate(POISON) if code]
    letters = dead_letters(topics, expected=len(poison))
    assert [letter.headers["error-code"] for letter in letters] == [code for _, _, code in poison]
    assert [letter.value for letter in letters] == [value for _, value, _ in poison]  # the original bytes
    for letter, (offset, _, _) in zip(letters, poison):
        assert letter.key == b"tps" and letter.headers["error-reason"]
        assert (letter.headers["original-topic"], letter.headers["original-partition"]) == (topics.topic, "0")
        assert letter.headers["original-offset"] == str(offset)
    assert letters[5].headers["request-id"] == "tps-2003" and "request-id" not in letters[0].headers
    statuses = dict(Payment.objects.values_list("reference", "status"))
    assert statuses == {"tps-2003": PaymentStatus.COMPLETED, "tps-2004": PaymentStatus.FAILED}
    assert committed_offset(topics) == len(POISON)


def test_a_card_number_is_dead_lettered_without_the_message_its_key_or_headers_holding_it(topics, bank_merchant, caplog):
    card = "4111111111111111"
    producer = Producer({"bootstrap.servers": topics.bootstrap})
    producer.produce(
        topics.topic,
        value=request_bytes(requestId="tps-3001", description=f"paid by {card}"),
        key=card.encode(),
        headers=[("trace", b"t-1"), ("pan", card.encode())],
    )
    producer.produce(topics.topic, value=request_bytes(requestId="tps-3002"), key=b"tps")
    assert producer.flush(10) == 0

    with running(PaymentRequestConsumer()) as consumer:
        wait_until(lambda: handled(consumer) == 2, timeout=30, what="both messages handled")

    (letter,) = dead_letters(topics, expected=1)
    assert letter.headers["error-code"] == "CARD_NUMBER_NOT_ACCEPTED"
    assert letter.headers["value-dropped"] == "card number" and letter.headers["request-id"] == "tps-3001"
    assert letter.value is None and letter.key is None
    assert "pan" not in letter.headers and letter.headers["trace"] == "t-1"
    assert not any(card in value for value in letter.headers.values())
    assert list(Payment.objects.values_list("reference", flat=True)) == ["tps-3002"]
    assert card not in caplog.text
    assert committed_offset(topics) == 2


def test_a_database_outage_is_waited_out_and_the_message_read_again_not_dead_lettered(topics, bank_merchant, monkeypatch):
    real = consumer_module.payment_request_process
    calls = []

    def down_twice(**kwargs):
        calls.append(kwargs["origin"].offset)
        if len(calls) <= 2:
            raise OperationalError("the database is down")
        return real(**kwargs)

    monkeypatch.setattr(consumer_module, "payment_request_process", down_twice)
    with running(PaymentRequestConsumer()) as consumer:
        send(topics, request_bytes(requestId="tps-3001"), request_bytes(requestId="tps-3002"))
        wait_until(lambda: consumer.counts["created"] == 2, timeout=30, what="both payments created")

    assert calls == [0, 0, 0, 1]  # the first message three times, in order, before the second
    assert consumer.counts["retried"] == 2 and consumer.counts["dead_lettered"] == 0
    assert Payment.objects.count() == 2 and committed_offset(topics) == 2


def test_a_message_that_keeps_failing_goes_to_the_dead_letter_topic_after_its_attempts(topics, bank_merchant, monkeypatch):
    real = consumer_module.payment_request_process

    def broken_for_one(*, message, **kwargs):
        if message.request_id == "tps-4001":
            raise RuntimeError("a bug")
        return real(message=message, **kwargs)

    monkeypatch.setattr(consumer_module, "payment_request_process", broken_for_one)
    with running(PaymentRequestConsumer()) as consumer:
        send(topics, request_bytes(requestId="tps-4001"), request_bytes(requestId="tps-4002"))
        wait_until(lambda: handled(consumer) == 2, timeout=30, what="both messages handled")

    (letter,) = dead_letters(topics, expected=1)
    assert letter.headers["error-code"] == "PROCESSING_ERROR" and "a bug" in letter.headers["error-reason"]
    assert consumer.counts["retried"] == 1  # max_attempts 2: one more try
    assert list(Payment.objects.values_list("reference", flat=True)) == ["tps-4002"]


def test_a_consumer_stopped_before_committing_leaves_the_message_to_the_next_which_creates_nothing_more(
    topics, bank_merchant, monkeypatch
):
    first_message, second_message = request_bytes(requestId="tps-5001"), request_bytes(requestId="tps-5002")
    # The first consumer stores the outcome and dies before its commit.
    monkeypatch.setattr(PaymentRequestConsumer, "_commit", lambda self, consumer, message: None)
    with running(PaymentRequestConsumer(name="crashes-before-commit")) as first:
        send(topics, first_message)
        wait_until(lambda: first.counts["created"] == 1, timeout=30, what="the payment created")
    assert committed_offset(topics) < 0  # nothing committed: the group starts from the beginning
    monkeypatch.undo()

    with running(PaymentRequestConsumer(name="next")) as second:
        wait_until(lambda: second.counts["duplicate"] == 1, timeout=30, what="the message read again")
    assert Payment.objects.count() == 1 and committed_offset(topics) == 1

    with running(PaymentRequestConsumer(name="after-a-clean-stop")) as third:
        send(topics, second_message)
        wait_until(lambda: handled(third) == 1, timeout=30, what="the new message handled")
    # What was stored and committed is not read again: only the new message.
    assert (third.counts["created"], third.counts["duplicate"]) == (1, 0)
    assert Payment.objects.count() == 2 and committed_offset(topics) == 2


def test_sigterm_stops_the_command_cleanly(topics, bank_merchant, tmp_path):
    db = settings.DATABASES["default"]
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        KAFKA_BOOTSTRAP_SERVERS=topics.bootstrap,
        PGI_PAYMENT_REQUESTS_TOPIC=topics.topic,
        PGI_PAYMENT_REQUESTS_DLQ_TOPIC=topics.dlq_topic,
        PGI_PAYMENT_REQUESTS_GROUP=topics.group_id,
        PGI_PAYMENT_REQUESTS_SESSION_TIMEOUT_MS="6000",
        PGI_EVENTS_TOPIC_PARTITIONS="1",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "consumer.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "consume_payment_requests"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        send(topics, request_bytes(requestId="tps-6001"))
        wait_until(lambda: PaymentRequest.objects.filter(request_id="tps-6001").exists(), timeout=60, what=log.name)
        wait_until(lambda: committed_offset(topics) == 1, timeout=10, what="the offset committed")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert Payment.objects.get().status == PaymentStatus.COMPLETED
