"""Carry each payment's operations out of its columns into GatewayOperation rows.

- Every payment that was sent (not Pending) gets its authorization: key = its id, amount = its
  amount, `pending` while Processing (with the payment's recovery schedule), `failed` if Failed,
  else `succeeded`.
- A capture or void in flight (`pending_operation`) becomes a pending row with its amount, its own
  key (rows from before keys were kept used the derived `<id>-<kind>`), the expiry mark and the
  recovery schedule.

Closed captures and voids were never kept beyond the payment's status and its GatewayAttempts;
they stay there (a new operation's key is checked against the keys of those attempts). Set-based,
so a large table is carried in one statement each. The reverse puts the rows back in the columns.
"""

from django.db import migrations

FORWARD = [
    """
    INSERT INTO payments_gatewayoperation
        (payment_id, kind, amount, idempotency_key, status, by_expiry, attempts, next_look_at,
         lease_expires_at, created_at, updated_at, finished_at)
    SELECT p.id, 'authorize', p.amount, p.id,
           CASE p.status WHEN 'Processing' THEN 'pending' WHEN 'Failed' THEN 'failed' ELSE 'succeeded' END,
           FALSE,
           CASE WHEN p.status = 'Processing' THEN p.recovery_attempts ELSE 0 END,
           CASE WHEN p.status = 'Processing' THEN p.next_recovery_at END,
           NULL, p.created_at, p.updated_at, NULL
    FROM payments_payment p
    WHERE p.status <> 'Pending'
    """,
    """
    INSERT INTO payments_gatewayoperation
        (payment_id, kind, amount, idempotency_key, status, by_expiry, attempts, next_look_at,
         lease_expires_at, created_at, updated_at, finished_at)
    SELECT p.id, p.pending_operation,
           CASE WHEN p.pending_operation = 'capture' THEN COALESCE(p.pending_amount, p.amount) ELSE p.amount END,
           COALESCE(NULLIF(p.pending_key, ''), p.id || '-' || p.pending_operation),
           'pending', p.pending_expiry,
           CASE WHEN p.status = 'Processing' THEN 0 ELSE p.recovery_attempts END,
           CASE WHEN p.status = 'Processing' THEN NULL ELSE p.next_recovery_at END,
           NULL, COALESCE(p.pending_since, p.updated_at), p.updated_at, NULL
    FROM payments_payment p
    WHERE p.pending_operation IN ('capture', 'void') AND p.status <> 'Processing'
    """,
]

BACKWARD = [
    """
    UPDATE payments_payment p
    SET pending_operation = o.kind, pending_amount = CASE WHEN o.kind = 'capture' THEN o.amount END,
        pending_since = o.created_at, pending_key = o.idempotency_key, pending_expiry = o.by_expiry,
        operations_sent = 1, recovery_attempts = o.attempts, next_recovery_at = o.next_look_at
    FROM payments_gatewayoperation o
    WHERE o.payment_id = p.id AND o.status = 'pending' AND o.kind IN ('capture', 'void')
    """,
    """
    UPDATE payments_payment p
    SET recovery_attempts = o.attempts, next_recovery_at = o.next_look_at
    FROM payments_gatewayoperation o
    WHERE o.payment_id = p.id AND o.status = 'pending' AND o.kind = 'authorize'
    """,
    "DELETE FROM payments_gatewayoperation",
]


class Migration(migrations.Migration):

    dependencies = [
        ("payments", "0006_operations"),
    ]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
