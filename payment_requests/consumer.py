"""The `payment-requests` consumer: each message through payment_request_process, its offset
committed only once the outcome is stored (the payment with its request id, or the message on the
dead-letter topic, confirmed by the broker).

A crash before the commit delivers the message again, and its request id absorbs it. A message
that cannot be processed goes to the dead-letter topic with the reason in its headers, and the
consumer goes on. A database or broker outage is waited out: the message is read again, nothing is
committed, nothing goes to the dead-letter topic. The long story: docs/09-events.md.
"""

import logging
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import DatabaseError, connection

from pgi.cards import REFUSAL_CODE, has_card_number
from pgi.events.relay import RelayBrokerError, topics_create_missing
from pgi.observability import request_id

from .messages import Refused, message_read
from .services import Origin, RequesterKeyRevoked, payment_request_process, requester_principal

log = logging.getLogger(__name__)

# After SIGTERM, how long a dead-letter message already sent may still wait for its report.
SHUTDOWN_GRACE_SECONDS = 8.0
REASON_MAX = 1000  # header bytes: the reason, cut, for people; the code is what to switch on


class DeadLetterNotStored(Exception):
    """The broker did not confirm the dead-letter message: the offset stays uncommitted."""


def message_request_id(message: Message) -> str:
    for name, value in message.headers() or []:
        if name == request_id.KAFKA_HEADER and value:
            return value.decode("utf-8", "replace")
    return ""


def _holds_card_number(value) -> bool:
    if value is None:
        return False
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return has_card_number(text)


def dead_letter_headers(message: Message, refused: Refused) -> list[tuple[str, bytes]]:
    """The original message's headers, then why it is here and where it came from. A header that
    holds a card number is left out (pgi.cards: none is stored, on the dead-letter topic either)."""
    reason = refused.reason.encode("utf-8", "replace")
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 3].decode("utf-8", "ignore").encode() + b"..."
    headers = [
        (name, value)
        for name, value in message.headers() or []
        if not _holds_card_number(name) and not _holds_card_number(value)
    ]
    headers += [
        ("error-code", refused.code.encode()),
        ("error-reason", reason),
        ("original-topic", message.topic().encode()),
        ("original-partition", str(message.partition()).encode()),
        ("original-offset", str(message.offset()).encode()),
    ]
    if refused.request_id:
        headers.append(("request-id", refused.request_id.encode()))
    return headers


class PaymentRequestConsumer:
    """Consumes until stop() (the command calls it on SIGTERM). One message at a time, so each
    partition is processed in order; more partitions and more consumers in the group go faster."""

    def __init__(self, *, name: str = "payment-requests"):
        self.config = dict(settings.PGI_PAYMENT_REQUESTS)
        self.events_config = dict(settings.PGI_EVENTS)
        self.bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
        self.name = name
        self.stopping = threading.Event()
        self.assigned = threading.Event()  # set while the group has given this consumer partitions
        self.counts = {"created": 0, "duplicate": 0, "dead_lettered": 0, "retried": 0}
        # Per message in hand: tries so far (for the pause), and unexpected failures (for the DLQ).
        self._tries: dict[tuple[str, int, int], int] = {}
        self._faults: dict[tuple[str, int, int], int] = {}
        self._producer: Producer | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        consumer = None
        try:
            self._topics_ensure()
            if self.stopping.is_set():
                return
            consumer = Consumer(self._consumer_config())
            consumer.subscribe([self.config["topic"]], on_assign=self._on_assign, on_revoke=self._on_revoke)
            log.info("%s: consuming %s at %s", self.name, self.config["topic"], self.bootstrap)
            while not self.stopping.is_set():
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    log.warning("%s: %s", self.name, message.error())
                    continue
                self._handle(consumer, message)
        finally:
            if consumer is not None:
                consumer.close()  # leaves the group at once; nothing uncommitted is committed
            if self._producer is not None:
                self._producer.flush(SHUTDOWN_GRACE_SECONDS)
            self.assigned.clear()
            connection.close()

    def _consumer_config(self) -> dict:
        session = self.config["session_timeout_ms"]
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.config["group_id"],
            "client.id": f"pgi-{self.name}",
            "enable.auto.commit": False,  # committed by hand, after the outcome is stored
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new group reads what was sent before it joined
            "isolation.level": "read_committed",
            "session.timeout.ms": session,
            "heartbeat.interval.ms": max(100, session // 5),
            "error_cb": self._on_error,
            "logger": log,
        }

    def _on_assign(self, consumer, partitions) -> None:
        log.info("%s: assigned %s", self.name, ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")
        if partitions:
            self.assigned.set()

    def _on_revoke(self, consumer, partitions) -> None:
        self.assigned.clear()
        self._tries.clear()
        self._faults.clear()

    def _on_error(self, err: KafkaError) -> None:
        level = logging.WARNING if err.fatal() or err.code() == KafkaError._ALL_BROKERS_DOWN else logging.DEBUG
        log.log(level, "%s: %s", self.name, err)

    def _topics_ensure(self) -> None:
        """Both topics, created if missing (subscribing to a missing topic only logs errors)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": log})
        while not self.stopping.is_set():
            try:
                topics_create_missing(
                    admin,
                    {self.config["topic"], self.config["dlq_topic"]},
                    partitions=self.events_config["topic_partitions"],
                    replication=self.events_config["topic_replication_factor"],
                    name=self.name,
                    bootstrap=self.bootstrap,
                )
                return
            except RelayBrokerError as exc:
                log.warning("%s: %s; trying again", self.name, exc)
                self.stopping.wait(self.events_config["idle_seconds"] * 4)

    def _handle(self, consumer: Consumer, message: Message) -> None:
        # The request id of what this message causes (log lines, the payment's events): the
        # producer's `pgi-request-id` header when it sent a sane one, else a new one.
        token = request_id.activate(request_id.from_header(message_request_id(message)))
        try:
            self._handle_current(consumer, message)
        finally:
            request_id.deactivate(token)

    def _handle_current(self, consumer: Consumer, message: Message) -> None:
        where = self._where(message)
        try:
            outcome = self._process(message)
        except (DatabaseError, RequesterKeyRevoked, DeadLetterNotStored, KafkaException, BufferError) as exc:
            # An outage, not the message's fault: read it again later, however long it lasts.
            log.warning("%s: %s[%d]@%d not processed, trying again: %s", self.name, *where, exc)
            if isinstance(exc, DatabaseError):
                connection.close()
            self._again(consumer, message)
            return
        except Exception as exc:  # a fault of PGI's with this message: a few more tries, then the DLQ
            faults = self._faults[where] = self._faults.get(where, 0) + 1
            log.exception("%s: %s[%d]@%d failed (attempt %d)", self.name, *where, faults)
            if faults < self.config["max_attempts"]:
                self._again(consumer, message)
                return
            refused = Refused("PROCESSING_ERROR", f"Processing failed {faults} times: {type(exc).__name__}: {exc}")
            try:
                self._dead_letter(message, refused)
            except (DeadLetterNotStored, KafkaException, BufferError) as dlq_exc:
                log.warning("%s: %s[%d]@%d not dead-lettered, trying again: %s", self.name, *where, dlq_exc)
                self._again(consumer, message)
                return
            outcome = "dead_lettered"
        self._tries.pop(where, None)
        self._faults.pop(where, None)
        self.counts[outcome] += 1
        self._commit(consumer, message)

    def _process(self, message: Message) -> str:
        """The message's outcome stored: "created", "duplicate" or "dead_lettered"."""
        try:
            read = message_read(message.value())
            principal = requester_principal(name=self.config["api_key_name"])
            origin = Origin(topic=message.topic(), partition=message.partition(), offset=message.offset())
            handled = payment_request_process(message=read, origin=origin, principal=principal)
        except Refused as refused:
            log.warning("%s: %s[%d]@%d refused, to the DLQ: %s", self.name, *self._where(message), refused)
            self._dead_letter(message, refused)
            return "dead_lettered"
        log.info(
            "%s: request %s %s payment %s (%s)",
            self.name,
            read.request_id,
            "created" if handled.created else "had already created",
            handled.payment.id,
            handled.payment.status,
        )
        return "created" if handled.created else "duplicate"

    @staticmethod
    def _where(message: Message) -> tuple[str, int, int]:
        return message.topic(), message.partition(), message.offset()

    def _dead_letter(self, message: Message, refused: Refused) -> None:
        """The original bytes and key on the dead-letter topic; returns once the broker stored it.
        Raises DeadLetterNotStored when it did not (the message is read again later). A message too
        large for the dead-letter topic with its headers goes there without its value; one refused
        for a card number (CARD_NUMBER_NOT_ACCEPTED) always does. A key holding one is dropped."""
        headers = dead_letter_headers(message, refused)
        key, value = message.key(), message.value()
        key = None if _holds_card_number(key) else key
        if refused.code == REFUSAL_CODE:
            value, headers = None, [*headers, ("value-dropped", b"card number")]
        error = self._produce_stored(key, value, headers)
        if error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            error = self._produce_stored(key, None, [*headers, ("value-dropped", b"too large")])
        if error is not None:
            raise DeadLetterNotStored(str(error))

    def _produce_stored(self, key, value, headers) -> KafkaError | None:
        """Produce one message to the dead-letter topic and wait for its report: None once stored."""
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "enable.idempotence": True,
                    "acks": "all",
                    "message.timeout.ms": int(self.events_config["delivery_timeout_seconds"] * 1000),
                    "client.id": f"pgi-{self.name}-dlq",
                    "error_cb": self._on_error,
                    "logger": log,
                }
            )
        reports: list[KafkaError | None] = []
        try:
            self._producer.produce(
                self.config["dlq_topic"], value=value, key=key, headers=headers, on_delivery=lambda err, msg: reports.append(err)
            )
        except KafkaException as exc:  # refused before sending (too large, say)
            if exc.args[0].fatal():
                self._producer = None
            return exc.args[0]
        give_up_at = None
        while not reports:
            self._producer.poll(0.2)
            if self.stopping.is_set():
                give_up_at = give_up_at or time.monotonic() + SHUTDOWN_GRACE_SECONDS
                if time.monotonic() > give_up_at:
                    return KafkaError(KafkaError._TIMED_OUT, "stopping before the broker confirmed it")
        if reports[0] is not None and reports[0].fatal():
            self._producer = None  # an idempotent producer cannot go on after a fatal error
        return reports[0]

    def _again(self, consumer: Consumer, message: Message) -> None:
        """Read the message again after a pause, doubling with each try up to retry_max_seconds:
        the partition goes back to its offset (what was fetched after it is dropped), nothing is
        committed."""
        where = self._where(message)
        tries = self._tries[where] = self._tries.get(where, 0) + 1
        self.counts["retried"] += 1
        try:
            consumer.seek(TopicPartition(message.topic(), message.partition(), message.offset()))
        except KafkaException as exc:  # the partition was taken away meanwhile: its next owner reads it
            log.info("%s: cannot rewind %s[%d]: %s", self.name, message.topic(), message.partition(), exc)
        self.stopping.wait(min(self.config["retry_max_seconds"], 0.5 * 2 ** min(tries - 1, 10)))

    def _commit(self, consumer: Consumer, message: Message) -> None:
        """Commit the offset after this message, synchronously. If the partition has moved to another
        consumer meanwhile, the message is delivered again there and its request id absorbs it."""
        try:
            consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: offset of %s[%d]@%d not committed: %s", self.name, *self._where(message), exc)
