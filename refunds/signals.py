from django.dispatch import Signal

# Sent inside the transaction of every refund status change (and of its creation, with from_status
# ""), as payments.signals.payment_status_changed is: what a receiver writes commits with the change
# or not at all. Arguments: refund, from_status, source.
refund_status_changed = Signal()

# Sent once, inside the transaction that accepts a bulk refund file, for all of its refunds (all
# Pending, source bulk_file), instead of refund_status_changed for each: a receiver writes its rows
# for 100,000 refunds in a few statements, not 100,000. Arguments: refunds (a QuerySet), source.
refunds_received_in_bulk = Signal()
