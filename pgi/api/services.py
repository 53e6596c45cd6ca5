from django.utils import timezone

from .models import IdempotencyRecord


def idempotency_keys_purge() -> int:
    """Delete expired idempotency records; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
