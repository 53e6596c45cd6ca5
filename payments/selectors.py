from django.db.models import QuerySet

from pgi.api.errors import NotFound
from pgi.merchants.authentication import ApiPrincipal

from .models import Payment


def payment_list(*, principal: ApiPrincipal) -> QuerySet[Payment]:
    """The payments the caller may see: its merchant's, or every merchant's for a platform key."""
    qs = Payment.objects.select_related("merchant")
    if not principal.is_platform:
        qs = qs.filter(merchant=principal.merchant)
    return qs


def payment_get(*, principal: ApiPrincipal, payment_id: str) -> Payment:
    """Raises NotFound for a payment that does not exist or that the caller may not see."""
    # PostgreSQL text cannot hold NUL, so no payment has one in its id; asking would be a 500.
    payment = None if "\x00" in payment_id else payment_list(principal=principal).filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(f"No payment {payment_id}.", code="PAYMENT_NOT_FOUND")
    return payment
