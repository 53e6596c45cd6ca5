from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, kept to replay it.

    While the first request runs, response_status is null and the claim holds a short lease that
    its process renews: a duplicate sees the row and is refused with 409 instead of running again.
    What the request created (or acted on) is linked in the same commit that creates it, so after a
    crash the lapsed claim answers from that object, or, with nothing linked, lets a retry run.
    """

    scope = models.CharField(max_length=64, help_text="m:<merchant id> or k:<platform key id>")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255, help_text="Shortened with … when longer; the hash has it whole.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    # The run that holds the claim: renewals, the link and the stored response all name it, so a
    # process that lost its lapsed claim to a retry cannot write over the retry's.
    claim_token = models.CharField(max_length=32, blank=True, default="")
    lease_expires_at = models.DateTimeField(help_text="Until a response is stored: the claim lapses then.")
    linked_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, null=True, blank=True)
    linked_id = models.CharField(max_length=64, blank=True, default="")
    linked = GenericForeignKey("linked_type", "linked_id")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique")]

    def __str__(self) -> str:
        return f"{self.scope}/{self.key}"

    def lapsed(self, now=None) -> bool:
        """Unanswered, and its request stopped renewing the claim: it crashed or was killed."""
        return self.response_status is None and self.lease_expires_at <= (now or timezone.now())
