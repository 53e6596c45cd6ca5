"""The outbox relay: publishes unsent OutboxEvent rows to Kafka, in id order, at least once.

One relay leads at a time (a PostgreSQL session advisory lock, or a lock file on SQLite); the
others wait for the lock. A row is marked sent only from the broker's delivery report, so a relay
that dies between the two leaves the row unsent and the next leader publishes it again: consumers
drop the duplicate by its `eventId` header. The long story: docs/09-events.md (The relay).
"""

import fcntl
import functools
import json
import logging
import os
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.db.models import F
from django.utils import timezone

from pgi.observability.request_id import KAFKA_HEADER

from .models import OutboxEvent
from .selectors import UnsentRow, outbox_unsent

log = logging.getLogger(__name__)

# The key of pg_try_advisory_lock: "pgi-rela" in ASCII. Advisory locks are per database, so one
# relay leads per PGI database, whatever else shares the server.
RELAY_LOCK_KEY = 0x7067692D72656C61
# After SIGTERM, how long the relay still waits for the reports of what it already sent. What is
# not reported by then stays unsent and is published again by the next leader (a duplicate, no loss).
SHUTDOWN_GRACE_SECONDS = 8.0
ADMIN_TIMEOUT_SECONDS = 5.0


def message_bytes(row) -> bytes:
    """The message value: the row's `body` (the exact JSON text written with the event) when the
    model has one, else its `payload` as compact JSON."""
    body = getattr(row, "body", None)
    if body:
        return body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class RelayBrokerError(Exception):
    """The broker did not answer an admin request (listing or creating topics)."""


class PostgresLeaderLock:
    """pg_try_advisory_lock on a connection of its own, opened for the lock alone: PostgreSQL
    releases a session lock when its connection ends, so a relay that dies (even by SIGKILL)
    frees the lead as soon as the server sees the connection close."""

    def __init__(self, alias: str = "default"):
        self.alias = alias
        self._connection = None

    def try_acquire(self) -> bool:
        if self._connection is None:
            self._connection = connections.create_connection(self.alias)
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK_KEY])
                return bool(cursor.fetchone()[0])
        except DatabaseError:
            self.release()  # a broken connection holds no lock; the next try opens a new one
            raise

    def still_held(self) -> bool:
        """False when the lock's connection is gone: the server has released the lock with it."""
        if self._connection is None:
            return False
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND (classid::bigint << 32) | objid::bigint = %s",
                    [RELAY_LOCK_KEY],
                )
                return cursor.fetchone()[0] == 1
        except DatabaseError:
            self.release()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()  # ends the session, and the lock with it
            except DatabaseError:
                pass
            self._connection = None


class FileLeaderLock:
    """flock on a file in PGI_VAR_DIR, for SQLite (no advisory locks). The kernel releases it when
    the process holding it dies; every relay of a `make run` shares the directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def leader_lock_for_database():
    """The lock that elects the relay: advisory on PostgreSQL, a file next to the SQLite database."""
    if connection.vendor == "postgresql":
        return PostgresLeaderLock()
    return FileLeaderLock(Path(settings.VAR_DIR) / "relay.lock")


class Relay:
    """Waits to lead, then publishes batches until stop() (the command calls it on SIGTERM)."""

    def __init__(self, *, lock=None, name: str = "relay"):
        self.config = dict(settings.PGI_EVENTS)
        self.bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
        self.lock = lock
        self.name = name
        self.stopping = threading.Event()
        self.leading = threading.Event()
        self.delivered_count = 0  # messages this relay saw acknowledged
        self._producer: Producer | None = None
        self._producer_broken = False
        self._admin: AdminClient | None = None
        self._known_topics: set[str] = set()
        # Pipelining (docs/09-events.md, The relay): the ids of the last batch, all acknowledged,
        # whose marks are written while the next batch is in flight; and the next batch, read then.
        self._unmarked: list[int] = []
        self._prefetched: list[UnsentRow] | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        lock = self.lock or leader_lock_for_database()
        try:
            while not self.stopping.is_set():
                if self._lead_acquired(lock):
                    self._lead(lock)
                    lock.release()
                    self.leading.clear()
        finally:
            self.leading.clear()
            lock.release()
            self._producer = None
            connection.close()  # a relay run in a thread leaves no connection behind

    def _lead_acquired(self, lock) -> bool:
        try:
            acquired = lock.try_acquire()
        except DatabaseError as exc:
            log.warning("%s: cannot reach the database for the leader lock: %s", self.name, exc)
            acquired = False
        if acquired:
            log.info("%s: leading; publishing the outbox to %s", self.name, self.bootstrap)
            self.leading.set()
            return True
        self.stopping.wait(self.config["lock_poll_seconds"])
        return False

    def _lead(self, lock) -> None:
        checked = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() - checked >= self.config["lock_poll_seconds"]:
                if not lock.still_held():
                    log.warning("%s: lost the leader lock; waiting for it again", self.name)
                    break
                checked = time.monotonic()
            try:
                delivered = self.publish_batch()
            except DatabaseError as exc:
                log.warning("%s: database error, retrying: %s", self.name, exc)
                connection.close()
                delivered = 0
            except RelayBrokerError as exc:
                log.warning("%s: %s", self.name, exc)
                delivered = 0
            except KafkaException as exc:  # whatever the client raised: a new producer, a new try
                log.warning("%s: Kafka client error, starting a new producer: %s", self.name, exc)
                self._producer, self._producer_broken, self._admin = None, False, None
                delivered = 0
            if not delivered:
                self._prefetched = None
                self.stopping.wait(self.config["idle_seconds"])
        # Stopping or standing down: what the broker acknowledged is marked; what was read ahead is
        # dropped (another leader may publish it meanwhile).
        self._prefetched = None
        self._marks_flush()

    def _marks_flush(self) -> None:
        try:
            self._mark(delivered=self._unmarked, failed={})
        except DatabaseError as exc:  # left unsent: published again by the next leader (a duplicate)
            log.warning("%s: could not mark %d delivered row(s): %s", self.name, len(self._unmarked), exc)
            connection.close()
        self._unmarked = []

    def publish_batch(self) -> int:
        """Publish the next batch of unsent rows; returns how many the broker acknowledged.

        Every report of a batch is awaited before the next batch is produced, so a row sent again
        after a failure never overtakes a later row of the same key from another batch. While the
        broker stores a batch, the relay writes the marks of the previous one (all acknowledged)
        and reads the next one, leaving out the rows in flight; after a failure it drops what it
        read and reads again from the oldest unsent row, the failed ones first."""
        limit = self.config["batch_size"]
        rows, self._prefetched = self._prefetched, None
        if rows is None:
            self._marks_write()  # before a read from the oldest unsent row, or it returns them again
            rows = outbox_unsent(limit=limit)
        if not rows:
            self._marks_write()
            return 0
        self._topics_ensure({row.topic for row in rows})
        producer = self._producer_get()
        delivered: list[int] = []
        failed: dict[str, list[int]] = {}

        def report(row_id, err, msg):
            if err is None:
                delivered.append(row_id)
            else:
                failed.setdefault(str(err)[:255], []).append(row_id)

        for row in rows:
            if self._producer_broken:
                break  # the rest stay unsent for the new producer: order kept, nothing lost
            self._produce(producer, row, functools.partial(report, row.id), failed)
        try:
            self._marks_write()
            if not self._producer_broken:
                self._prefetched = outbox_unsent(limit=limit, excluding=[row.id for row in rows])
        except DatabaseError:
            self._reports_await(producer)
            self._unmarked = self._unmarked + delivered  # marked by the next try, or sent again
            raise
        self._reports_await(producer)
        self._unmarked = delivered
        if failed or self._producer_broken:
            self._prefetched = None
            self._marks_write()
            self._mark(delivered=[], failed=failed)
        if failed:
            # A topic may have gone with a broker's data (a restarted dev broker): look again. And a
            # new producer: an idempotent producer's id and sequence numbers belong to the broker
            # that gave them; against a broker that lost them, its retries can time out for good.
            self._known_topics.clear()
            self._producer_broken = True
        if self._producer_broken:
            self._producer, self._producer_broken = None, False
        self.delivered_count += len(delivered)
        return len(delivered)

    def _marks_write(self) -> None:
        """Mark the last batch's acknowledged rows sent (an error leaves them for the next try)."""
        if self._unmarked:
            self._mark(delivered=self._unmarked, failed={})
            self._unmarked = []

    def _produce(self, producer: Producer, row: UnsentRow, on_delivery, failed: dict) -> None:
        headers = [("eventId", str(row.event_id).encode()), ("eventType", row.event_type.encode())]
        if row.request_id:
            headers.append((KAFKA_HEADER, row.request_id.encode()))
        while True:
            try:
                producer.produce(
                    row.topic, value=message_bytes(row), key=row.key.encode(), headers=headers, on_delivery=on_delivery
                )
                return
            except BufferError:  # the local queue is full: let reports drain it
                producer.poll(0.1)
            except KafkaException as exc:
                if exc.args[0].fatal():
                    self._producer_broken = True
                else:  # refused before sending (too large, bad topic): this row alone
                    failed.setdefault(str(exc)[:255], []).append(row.id)
                return

    def _reports_await(self, producer: Producer) -> None:
        give_up_at = None
        while True:
            try:
                if producer.flush(0.2) == 0:
                    return
            except KafkaException as exc:  # fatal: what is unreported stays unsent for a new producer
                log.warning("%s: producer failed, starting a new one: %s", self.name, exc)
                self._producer_broken = True
                return
            if self.stopping.is_set():
                give_up_at = give_up_at or time.monotonic() + SHUTDOWN_GRACE_SECONDS
                if time.monotonic() > give_up_at:
                    log.warning("%s: stopping with %d message(s) unreported; they stay unsent", self.name, len(producer))
                    return

    @staticmethod
    def _mark(*, delivered: list[int], failed: dict[str, list[int]]) -> None:
        if delivered and connection.vendor == "postgresql":
            # The ids as one array parameter: the ORM's IN (%s, %s, …) spells out every id, which
            # cost more than the UPDATE itself on a batch of thousands.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {OutboxEvent._meta.db_table} SET sent_at = %s, attempts = attempts + 1, last_error = ''"
                    " WHERE id = ANY(%s) AND sent_at IS NULL",
                    [timezone.now(), delivered],
                )
        elif delivered:
            OutboxEvent.objects.filter(id__in=delivered, sent_at__isnull=True).update(
                sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
            )
        for error, ids in failed.items():
            log.warning("outbox: %d row(s) not delivered, sent again on the next pass: %s", len(ids), error)
            OutboxEvent.objects.filter(id__in=ids).update(attempts=F("attempts") + 1, last_error=error)

    def _producer_get(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "message.timeout.ms": int(self.config["delivery_timeout_seconds"] * 1000),
                    "client.id": f"pgi-{self.name}",
                    "error_cb": self._on_error,
                    "logger": log,
                }
            )
        return self._producer

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():  # the idempotent producer cannot go on: a new one after this batch
            self._producer_broken = True
        # Each failed connection is also in librdkafka's own log lines; say once that all are down.
        level = logging.WARNING if err.fatal() or err.code() == KafkaError._ALL_BROKERS_DOWN else logging.DEBUG
        log.log(level, "%s: producer: %s", self.name, err)

    def _topics_ensure(self, topics: set[str]) -> None:
        missing = topics - self._known_topics
        if not missing:
            return
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": log})
        topics_create_missing(
            self._admin,
            missing,
            partitions=self.config["topic_partitions"],
            replication=self.config["topic_replication_factor"],
            name=self.name,
            bootstrap=self.bootstrap,
        )
        self._known_topics |= missing


def topics_create_missing(
    admin: AdminClient, topics: set[str], *, partitions: int, replication: int, name: str, bootstrap: str
) -> None:
    """Create those of `topics` the broker does not have; one created meanwhile by another process
    is fine. Raises RelayBrokerError when the broker cannot list or create them."""
    try:
        existing = admin.list_topics(timeout=ADMIN_TIMEOUT_SECONDS).topics
        new = [
            NewTopic(topic, num_partitions=partitions, replication_factor=replication)
            for topic in sorted(topics - set(existing))
        ]
        futures = admin.create_topics(new, request_timeout=ADMIN_TIMEOUT_SECONDS) if new else {}
        for topic, future in futures.items():
            try:
                future.result(timeout=ADMIN_TIMEOUT_SECONDS + 5)
                log.info("%s: created topic %s", name, topic)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    except KafkaException as exc:
        raise RelayBrokerError(f"cannot list or create topics at {bootstrap}: {exc}") from exc
