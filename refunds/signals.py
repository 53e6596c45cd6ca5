from django.dispatch import Signal

# Sent inside the transaction of every refund status change (and of its creation, with from_status
# ""), as payments.signals.payment_status_changed is: what a receiver writes commits with the change
# or not at all. Arguments: refund, from_status, source.
refund_status_changed = Signal()
