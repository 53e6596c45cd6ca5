from pgi.lookups import lookup

from .keys import hashes_match, split_prefix
from .models import ApiKey, Merchant


def api_key_get_active(*, full_key: str) -> ApiKey | None:
    """The active key matching this bearer token, or None (malformed, unknown, revoked, expired,
    wrong secret, its merchant deactivated)."""
    api_key = api_key_get_unrevoked(full_key=full_key)
    return None if api_key is None or api_key.has_expired() else api_key


def api_key_get_unrevoked(*, full_key: str) -> ApiKey | None:
    """The unrevoked key matching this bearer token, expired or not (the caller tells an expired key
    apart), or None (malformed, unknown, revoked, wrong secret, its merchant deactivated).

    The key comes with its scopes, limits, merchant and the merchant's currencies, from the lookup
    cache (pgi.lookups; revoking, rotating or editing a key or its merchant forgets the entry)."""
    prefix = split_prefix(full_key)
    if prefix is None:
        return None
    api_key = lookup("api_key", prefix, lambda: _api_key_by_prefix(prefix))
    if api_key is None or not hashes_match(full_key, api_key.key_hash):
        return None
    if api_key.merchant is not None and not api_key.merchant.is_active:
        return None
    return api_key


def _api_key_by_prefix(prefix: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("merchant")
        .prefetch_related("merchant__currencies")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )


def merchant_get_by_code(*, code: str) -> Merchant | None:
    """The merchant with its currencies, from the lookup cache (edits forget the entry)."""
    return lookup("merchant", code, lambda: Merchant.objects.filter(code=code).prefetch_related("currencies").first())
