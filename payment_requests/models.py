"""A payment request consumed from Kafka (`payment-requests`), by its request id.

The row is written in the commit that creates its payment (payment_process's `link`), so a request
id names at most one payment, and a message delivered again finds it and creates nothing.
"""

from django.db import models

from payments.models import Payment


class PaymentRequest(models.Model):
    request_id = models.CharField(max_length=64, unique=True, help_text="The sender's id for the request (requestId).")
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="payment_request")
    # What the message meant (defaults applied, amounts by value): the same id with another meaning is refused.
    fingerprint = models.CharField(max_length=64)
    topic = models.CharField(max_length=255)
    partition = models.IntegerField()
    offset = models.BigIntegerField(help_text="Where the message that created the payment was read.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.request_id} → {self.payment_id}"
