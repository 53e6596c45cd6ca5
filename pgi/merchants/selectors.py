from .keys import hashes_match, split_prefix
from .models import ApiKey, Merchant


def api_key_get_active(*, full_key: str) -> ApiKey | None:
    """The active key matching this bearer token, or None (malformed, unknown, revoked, wrong secret)."""
    prefix = split_prefix(full_key)
    if prefix is None:
        return None
    api_key = ApiKey.objects.select_related("merchant").filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not hashes_match(full_key, api_key.key_hash):
        return None
    if api_key.merchant is not None and not api_key.merchant.is_active:
        return None
    return api_key


def merchant_get_by_code(*, code: str) -> Merchant | None:
    return Merchant.objects.filter(code=code).prefetch_related("currencies").first()
