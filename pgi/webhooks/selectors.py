"""Reads of merchant webhooks for the API: what a caller may see, one endpoint or delivery by id."""

from django.db.models import QuerySet

from pgi.errors import NotFound
from pgi.ids import is_id
from pgi.merchants.principals import Principal

from .models import DELIVERY_ID_PREFIX, ENDPOINT_ID_PREFIX, WebhookDelivery, WebhookEndpoint


def endpoint_list(*, principal: Principal) -> QuerySet[WebhookEndpoint]:
    """The caller's merchant's endpoints, or every merchant's for a platform key."""
    qs = WebhookEndpoint.objects.select_related("merchant")
    if not principal.is_platform:
        qs = qs.filter(merchant=principal.merchant)
    return qs


def endpoint_get(*, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    """Raises NotFound for an endpoint that does not exist or that the caller may not see."""
    endpoint = None
    if is_id(endpoint_id, ENDPOINT_ID_PREFIX):
        endpoint = endpoint_list(principal=principal).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No webhook endpoint with this id.", code="WEBHOOK_ENDPOINT_NOT_FOUND")
    return endpoint


def delivery_list(*, principal: Principal, endpoint: WebhookEndpoint | None = None) -> QuerySet[WebhookDelivery]:
    qs = WebhookDelivery.objects.select_related("endpoint")
    if not principal.is_platform:
        qs = qs.filter(endpoint__merchant=principal.merchant)
    if endpoint is not None:
        qs = qs.filter(endpoint=endpoint)
    return qs


def delivery_get(*, principal: Principal, delivery_id: str) -> WebhookDelivery:
    """Raises NotFound for a delivery that does not exist or that the caller may not see."""
    delivery = None
    if is_id(delivery_id, DELIVERY_ID_PREFIX):
        delivery = delivery_list(principal=principal).filter(pk=delivery_id).prefetch_related("attempt_rows").first()
    if delivery is None:
        raise NotFound("No webhook delivery with this id.", code="WEBHOOK_DELIVERY_NOT_FOUND")
    return delivery
