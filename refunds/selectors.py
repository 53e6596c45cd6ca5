"""Refund reads for the API: what a caller may see, one refund by id."""

from collections.abc import Callable

from django.db.models import QuerySet

from payments.models import Payment
from pgi.errors import NotFound
from pgi.ids import is_id
from pgi.merchants.principals import Principal

from .models import REFUND_ID_PREFIX, Refund

# As payments.selectors: columns that apps above refunds add to its API's rows (settlements.apps).
_LIST_ANNOTATIONS: dict[str, Callable[[], object]] = {}


def refund_annotation_register(name: str, expression: Callable[[], object]) -> None:
    _LIST_ANNOTATIONS[name] = expression


def refund_list(*, principal: Principal, payment: Payment | None = None) -> QuerySet[Refund]:
    """The refunds the caller may see (its merchant's, or every merchant's for a platform key),
    those of `payment` only when given."""
    qs = Refund.objects.all()
    if _LIST_ANNOTATIONS:
        qs = qs.annotate(**{name: make() for name, make in _LIST_ANNOTATIONS.items()})
    if not principal.is_platform:
        qs = qs.filter(merchant=principal.merchant)
    if payment is not None:
        qs = qs.filter(payment=payment)
    return qs


def refund_get(*, principal: Principal, refund_id: str) -> Refund:
    """Raises NotFound for a refund that does not exist or that the caller may not see; an id no
    refund can have (see pgi.ids) is refused without a query."""
    refund = None
    if is_id(refund_id, REFUND_ID_PREFIX):
        refund = refund_list(principal=principal).filter(pk=refund_id).first()
    if refund is None:
        raise NotFound("No refund with this id.", code="REFUND_NOT_FOUND")
    return refund
