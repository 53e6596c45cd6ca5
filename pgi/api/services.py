from django.utils import timezone

from pgi.retention import delete_in_batches

from .models import IdempotencyRecord


def idempotency_keys_purge(*, batch_size: int | None = None) -> int:
    """Delete expired idempotency records (PGI_IDEMPOTENCY_TTL_HOURS after their request), in
    batches (PGI_RETENTION batch_size); returns how many."""
    return delete_in_batches(IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()), size=batch_size)
