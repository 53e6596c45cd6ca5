"""A task message left unacknowledged by a worker killed mid-task is delivered again, after the
broker's visibility timeout (PGI sets it to minutes; kombu's default is an hour)."""

import subprocess
import sys
import time
import uuid

from django.conf import settings
from kombu import Connection

CONSUME_AND_DIE = """
import os, sys
from kombu import Connection
with Connection(sys.argv[1], transport_options={"visibility_timeout": 1}) as conn:
    message = conn.SimpleQueue(sys.argv[2]).get(timeout=10)
    print(message.payload["task"], flush=True)
    os._exit(9)  # killed mid-task: never acknowledged
"""


def test_pgi_sets_a_visibility_timeout_of_minutes_for_its_celery_tasks():
    from pgi.celery import app

    assert app.conf.broker_transport_options["visibility_timeout"] == settings.CELERY_BROKER_TRANSPORT_OPTIONS[
        "visibility_timeout"
    ] == 300


def test_a_message_left_unacknowledged_by_a_killed_worker_is_delivered_again():
    # A Redis database of its own: restoring unacknowledged messages after one second would hand
    # other tests' running tasks to a second worker.
    broker = settings.CELERY_BROKER_URL.rsplit("/", 1)[0] + "/15"
    queue = f"pgi-visibility-{uuid.uuid4().hex}"
    options = {"visibility_timeout": 1}
    with Connection(broker, transport_options=options) as conn:
        conn.SimpleQueue(queue).put({"task": "payments.tasks.payments_recover"})

    died = subprocess.run(
        [sys.executable, "-c", CONSUME_AND_DIE, broker, queue], capture_output=True, text=True, timeout=60
    )
    assert died.returncode == 9 and "payments_recover" in died.stdout, died.stderr

    time.sleep(1.5)
    with Connection(broker, transport_options=options) as conn:
        simple = conn.SimpleQueue(queue)
        # What a Celery worker's event loop does every few seconds (kombu's maybe_restore_messages).
        conn.default_channel.qos.restore_visible(interval=1)
        message = simple.get(timeout=15)
        message.ack()
        simple.queue.delete()
    assert message.payload == {"task": "payments.tasks.payments_recover"}
