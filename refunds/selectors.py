"""Refund reads."""

from django.db.models import QuerySet
from django.utils import timezone

from payments.models import GatewayOperation, OperationKind

from .models import Refund


def refunds_due_list(*, limit: int, now=None) -> QuerySet[Refund]:
    """The refunds the next batch run would take (services.refunds_due), in its order, without
    claiming them: no lock, no lease. Each carries its operation (attempts, next look)."""
    due = GatewayOperation.objects.recovery_due(now or timezone.now()).filter(kind=OperationKind.REFUND)
    return (
        Refund.objects.filter(operation__in=due.values("id"))
        .select_related("operation")
        .order_by("operation__next_look_at", "id")[:limit]
    )
