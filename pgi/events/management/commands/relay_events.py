"""`manage.py relay_events`: the outbox relay, a long-running process (one leads, others stand by)."""

import signal

from django.core.management.base import BaseCommand

from pgi.events.relay import Relay


class Command(BaseCommand):
    help = "Publish the outbox to Kafka. Several may run: one leads, the others take over when it dies."

    def handle(self, *args, **options):
        relay = Relay()

        def on_signal(signum, frame):
            # Stop after the reports of what was sent; what stays unreported is sent again later.
            relay.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        relay.run()
