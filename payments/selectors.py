from django.db.models import QuerySet

from pgi.api.errors import NotFound
from pgi.ids import is_id
from pgi.merchants.authentication import ApiPrincipal

from .models import PAYMENT_ID_PREFIX, Payment


def payment_list(*, principal: ApiPrincipal) -> QuerySet[Payment]:
    """The payments the caller may see: its merchant's, or every merchant's for a platform key."""
    qs = Payment.objects.select_related("merchant")
    if not principal.is_platform:
        qs = qs.filter(merchant=principal.merchant)
    return qs


def payment_id_check(*, payment_id: str) -> None:
    """Raises NotFound, without a query, for an id no payment can have (see pgi.ids): an unbounded
    path segment is refused before anything (an Idempotency-Key claim, a query) stores or sends it."""
    if not is_id(payment_id, PAYMENT_ID_PREFIX):
        raise NotFound("No payment with this id.", code="PAYMENT_NOT_FOUND")


def payment_get(*, principal: ApiPrincipal, payment_id: str) -> Payment:
    """Raises NotFound for a payment that does not exist or that the caller may not see."""
    payment_id_check(payment_id=payment_id)
    payment = payment_list(principal=principal).filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(f"No payment {payment_id}.", code="PAYMENT_NOT_FOUND")
    return payment
