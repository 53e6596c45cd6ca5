"""Which gateways take a payment, in which order.

Per merchant and currency, a priority list kept in GatewayRoute (edited in the admin, inline on the
merchant). The first gateway that is reachable takes the payment; the next is tried only when one is
unavailable, never after a decline or a timeout (see payments.services.payment_process).
"""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from pgi.lookups import lookup, lookup_forget

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
    by_currency: dict[str, list[str]] = {currency: [], "": []}
    has_routes = {currency: False, "": False}
    for route_currency, gateway, is_active in _routes(merchant_id):
        if route_currency not in has_routes:
            continue
        has_routes[route_currency] = True
        if is_active and gateway in configured:
            by_currency[route_currency].append(gateway)
    if has_routes[currency]:
        return by_currency[currency]
    if has_routes[""]:
        return by_currency[""]
    # No gateway at all in this deployment (the simulator is off outside the sandbox): nothing to try.
    return [settings.PGI_DEFAULT_GATEWAY] if settings.PGI_DEFAULT_GATEWAY in configured else []


def _routes(merchant_id: int) -> list[tuple[str, str, bool]]:
    """Every route of the merchant as (currency, gateway, is_active), best first, from the lookup
    cache (pgi.lookups; saving or deleting a route forgets it)."""
    return lookup(
        "routes",
        merchant_id,
        lambda: list(
            GatewayRoute.objects.filter(merchant_id=merchant_id)
            .order_by("priority", "id")
            .values_list("currency", "gateway", "is_active")
        ),
    )


@receiver(post_save, sender=GatewayRoute)
@receiver(post_delete, sender=GatewayRoute)
def _route_changed(sender, instance: GatewayRoute, **kwargs):
    lookup_forget("routes", [instance.merchant_id])
