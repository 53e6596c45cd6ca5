from pgi.lookups import lookup

from .keys import hashes_match, split_prefix
from .models import ApiKey, Merchant


def api_key_get_active(*, full_key: str) -> ApiKey | None:
    """The active key matching this bearer token, or None (malformed, unknown, revoked, wrong secret).

    The key comes with its merchant and the merchant's currencies, from the lookup cache (pgi.lookups;
    revoking a key or editing its merchant forgets the entry)."""
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
