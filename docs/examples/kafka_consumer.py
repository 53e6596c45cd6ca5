#!/usr/bin/env python
"""Consume PGI's payment events: at least once, in order per payment, duplicates dropped by eventId.

    pip install confluent-kafka
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python kafka_consumer.py --group my-ledger

Prints one line per new event. The guide that explains each step: docs/11-kafka-integration.md.
The consumer joins a group, starts from the oldest message the first time (auto.offset.reset),
and commits a message's offset only after it has processed it and recorded its eventId, so a
crash replays messages and never skips one; the record of eventIds (a SQLite file here; use your
own database, in the transaction of your processing) drops what is replayed.
"""

import argparse
import functools
import json
import logging
import os
import signal
import sqlite3
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal

from confluent_kafka import Consumer, KafkaException, Message

log = logging.getLogger("pgi-consumer")

TOPICS = ["payment-events"]


def consumer_config(bootstrap_servers: str, group_id: str) -> dict:
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        # No committed offset yet (a new group): start from the oldest message kept, not the newest.
        "auto.offset.reset": "earliest",
        # Commit ourselves, after processing: an automatic commit can run before processing ends.
        "enable.auto.commit": False,
    }


class SeenEvents:
    """The eventIds already processed. Keep them longer than a redelivery can take (days, not
    minutes): PGI sends an event again after a crash or a broker outage, under the same eventId."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS seen_event (event_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL)")

    def process_once(self, event_id: str, work: Callable[[], None]) -> bool:
        """Run `work` unless `event_id` was seen; record it in the same transaction. Returns
        whether `work` ran. If `work` raises, nothing is recorded and the event comes again."""
        with closing(self.db.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.execute(
                    "INSERT INTO seen_event (event_id, seen_at) VALUES (?, datetime('now')) ON CONFLICT DO NOTHING",
                    (event_id,),
                )
                new = cursor.rowcount == 1
                if new:
                    work()  # your writes go here, in this transaction
                cursor.execute("COMMIT")
                return new
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    def forget_older_than(self, days: int) -> None:
        self.db.execute("DELETE FROM seen_event WHERE seen_at < datetime('now', ?)", (f"-{days} days",))


def event_of(message: Message) -> tuple[str, dict]:
    """(eventId, the event). Amounts are JSON numbers written exactly (50.00, 500, 1.500): read
    them as Decimal, never float. The eventId header spares parsing to find it; the body has it too."""
    event = json.loads(message.value(), parse_float=Decimal)
    headers = dict(message.headers() or [])
    event_id = headers["eventId"].decode() if "eventId" in headers else event["eventId"]
    return event_id, event


def consume(
    consumer: Consumer,
    *,
    seen: SeenEvents,
    handle: Callable[[dict], None],
    stop: Callable[[], bool],
    poll_seconds: float = 1.0,
) -> None:
    """Process messages until `stop()`: each once (by eventId), then commit its offset."""
    while not stop():
        message = consumer.poll(poll_seconds)
        if message is None:
            continue
        if message.error():
            if message.error().fatal():
                raise KafkaException(message.error())
            log.warning("consumer: %s", message.error())  # transient: the client retries by itself
            continue
        event_id, event = event_of(message)  # a message that is not JSON raises: fix, do not skip
        seen.process_once(event_id, functools.partial(handle, event))
        # Synchronous: once this returns, a restart resumes after this message.
        consumer.commit(message=message, asynchronous=False)


def print_event(event: dict) -> None:
    details = event["details"]
    print(
        f"{event['paymentId']} {event['event']} {details['status']} {details['amount']} {details['currency']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--group", default="pgi-example-consumer", help="consumer group id")
    parser.add_argument("--topic", action="append", help=f"topic to read (repeatable); default {TOPICS}")
    parser.add_argument("--seen-db", default="seen-events.sqlite3", help="SQLite file of the eventIds processed")
    parser.add_argument("--max-events", type=int, default=0, help="stop after this many new events (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True  # finish the message in hand, commit it, leave the group cleanly

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    handled = 0

    def handle(event: dict) -> None:
        nonlocal handled
        print_event(event)
        handled += 1

    seen = SeenEvents(args.seen_db)
    seen.forget_older_than(days=14)
    consumer = Consumer(consumer_config(args.bootstrap, args.group))
    consumer.subscribe(args.topic or TOPICS)
    try:
        consume(consumer, seen=seen, handle=handle, stop=lambda: stopping or 0 < args.max_events <= handled)
    finally:
        consumer.close()  # leaves the group at once, so its partitions move without waiting for a timeout
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
