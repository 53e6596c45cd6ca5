"""Which gateways take a payment, in which order.

Per merchant and currency, a priority list kept in GatewayRoute (edited in the admin, inline on the
merchant). The first gateway that is reachable takes the payment; the next is tried only when one is
unavailable, never after a decline or a timeout (see payments.services.payment_process).
"""

from django.conf import settings

from .models import GatewayRoute
from .registry import configured_codes


def gateways_for(*, merchant_id: int, currency: str) -> list[str]:
    """The gateway codes to try for this merchant and currency, best first.

    Routes for the currency itself win over routes with a blank currency (any currency); a
    merchant with no routes for either uses settings.PGI_DEFAULT_GATEWAY (none when it is not
    configured: its payments fail as GATEWAY_UNAVAILABLE). Inactive routes, and
    routes naming a gateway that is not configured in this deployment, are left out, and they still
    count as routes: a merchant whose routes are all switched off gets an empty list (its payments
    fail as GATEWAY_UNAVAILABLE) rather than being sent silently to the default gateway.
    """
    configured = set(configured_codes())
    routes = GatewayRoute.objects.filter(merchant_id=merchant_id, currency__in=[currency, ""])
    by_currency: dict[str, list[str]] = {currency: [], "": []}
    has_routes = {currency: False, "": False}
    for route in routes.order_by("priority", "id"):
        has_routes[route.currency] = True
        if route.is_active and route.gateway in configured:
            by_currency[route.currency].append(route.gateway)
    if has_routes[currency]:
        return by_currency[currency]
    if has_routes[""]:
        return by_currency[""]
    # No gateway at all in this deployment (the simulator is off outside the sandbox): nothing to try.
    return [settings.PGI_DEFAULT_GATEWAY] if settings.PGI_DEFAULT_GATEWAY in configured else []
