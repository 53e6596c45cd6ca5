"""Which gateways take a payment, in which order.

Per merchant and currency, a priority list kept in GatewayRoute (edited in the admin, inline on the
merchant). The first gateway that is reachable takes the payment; the next is tried only when one is
unavailable, never after a decline or a timeout (see payments.services.payment_process).
"""

from django.conf import settings

from .models import GatewayRoute
from .registry import configured_codes


def gateways_for(*, merchant_id: int, currency: str) -> list[str]:
    """The gateway codes to try for this merchant and currency, best first; never empty.

    Routes for the currency itself win over routes with a blank currency (any currency); with
    neither, the merchant uses settings.PGI_DEFAULT_GATEWAY. Routes naming a gateway that is not
    configured in this deployment are left out.
    """
    configured = set(configured_codes())
    routes = GatewayRoute.objects.filter(merchant_id=merchant_id, is_active=True, currency__in=[currency, ""])
    by_currency: dict[str, list[str]] = {currency: [], "": []}
    for route in routes.order_by("priority", "id"):
        if route.gateway in configured:
            by_currency[route.currency].append(route.gateway)
    return by_currency[currency] or by_currency[""] or [settings.PGI_DEFAULT_GATEWAY]
