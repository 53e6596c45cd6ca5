from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, kept to replay it.

    While the first request runs, response_status is null: a concurrent duplicate sees the row and
    is refused with 409 instead of running again.
    """

    scope = models.CharField(max_length=64, help_text="m:<merchant id> or k:<platform key id>")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique")]

    def __str__(self) -> str:
        return f"{self.scope}/{self.key}"
