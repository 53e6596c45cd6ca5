from django.dispatch import Signal

# Sent inside the transaction that creates a settlement batch, after its lines and totals are
# written: a receiver's rows (the SETTLEMENT_COMPLETED outbox event) commit with the batch or not at
# all. Arguments: batch.
settlement_completed = Signal()
