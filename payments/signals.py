from django.dispatch import Signal

# Sent on commit after every status change (and on creation, with from_status "").
# Arguments: payment, from_status, source. The events outbox will hang on this.
payment_status_changed = Signal()
