from django.dispatch import Signal

# Sent inside the transaction of every status change (and of the creation, with from_status ""),
# so that what a receiver writes (the events outbox) commits with the change or not at all; a
# receiver that raises rolls the change back. Receivers write rows only: a broker call, a gateway
# call or `.delay()` goes through transaction.on_commit. Arguments: payment, from_status, source.
payment_status_changed = Signal()
