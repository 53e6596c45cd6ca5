"""`manage.py consume_payment_requests`: the payment-requests consumer, a long-running process."""

import signal

from django.core.management.base import BaseCommand

from payment_requests.consumer import PaymentRequestConsumer


class Command(BaseCommand):
    help = "Take payments from the payment-requests topic; refused messages go to its dead-letter topic."

    def handle(self, *args, **options):
        consumer = PaymentRequestConsumer()

        def on_signal(signum, frame):
            # Stop after the message in hand: its outcome is stored and committed, or it is read again.
            consumer.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        consumer.run()
