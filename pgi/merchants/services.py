import time
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import ValidationFailed, ErrorDetail
from pgi.lookups import lookup_forget
from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, is_payable_currency, is_storable_amount

from .keys import generate_key, hash_key
from .models import ApiKey, Merchant, MerchantCurrency

# last_used_at is refreshed at most this often per key, so a busy key does not write on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@transaction.atomic
def merchant_create(
    *, code: str, name: str, currencies: list[str], max_amount: Decimal | None = None
) -> Merchant:
    """Create a merchant enabled for the given ISO 4217 currencies.

    Raises ValidationFailed for an invalid or taken code, a currency that cannot carry payments, or
    a limit that is not a positive amount the database can hold.
    """
    bad = [c for c in currencies if not is_payable_currency(c)]
    if bad:
        raise ValidationFailed(
            "Unknown currency.", details=[ErrorDetail("currencies", f"Not an ISO 4217 currency: {', '.join(bad)}")]
        )
    if max_amount is not None and not is_storable_amount(max_amount):
        raise ValidationFailed(
            "Invalid limit.",
            details=[
                ErrorDetail(
                    "max_amount",
                    f"Must be greater than zero, with at most {AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES} digits "
                    f"before the point and {AMOUNT_DECIMAL_PLACES} after it.",
                )
            ],
        )
    merchant = Merchant(code=code, name=name)
    try:
        merchant.full_clean()
    except DjangoValidationError as exc:  # re-raised in PGI's format
        messages = getattr(exc, "message_dict", {"code": exc.messages})
        raise ValidationFailed(
            "Invalid merchant.", details=[ErrorDetail(f, m) for f, ms in messages.items() for m in ms]
        ) from exc
    merchant.save()
    MerchantCurrency.objects.bulk_create(
        MerchantCurrency(merchant=merchant, currency=c, max_amount=max_amount) for c in dict.fromkeys(currencies)
    )
    return merchant


@transaction.atomic
def api_key_create(*, name: str, merchant: Merchant | None) -> tuple[ApiKey, str]:
    """Issue a key for a merchant, or a platform key when merchant is None.

    Returns the row and the full key; the key is not stored and cannot be shown again.
    """
    if not name.strip() or len(name) > ApiKey._meta.get_field("name").max_length:
        raise ValidationFailed(
            "Invalid key name.", details=[ErrorDetail("name", "Must be 1 to 100 characters.")]
        )
    full_key, prefix = generate_key()
    api_key = ApiKey.objects.create(
        name=name, merchant=merchant, is_platform=merchant is None, prefix=prefix, key_hash=hash_key(full_key)
    )
    return api_key, full_key


def api_key_revoke(*, api_key: ApiKey, actor: Actor | None = None) -> ApiKey:
    """Revoke the key at once in every process. `actor`: who, for the audit trail (a key revoked
    already is left as it was, and nothing is recorded)."""
    with transaction.atomic():
        # Conditional update: revoking twice keeps the first revocation time.
        now = timezone.now()
        if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
            audit_record(actor=actor, action="api_key.revoke", obj=api_key, before={"revoked_at": None},
                         after={"revoked_at": now})  # fmt: skip
    lookup_forget("api_key", [api_key.prefix])  # the next request with it is refused, in every process
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record that the key was used, at most once per LAST_USED_RESOLUTION.

    The key usually comes from the lookup cache, whose copy keeps the time it was read with; so each
    process also remembers when it last wrote (at most one UPDATE per key and process a minute), and
    the UPDATE itself skips a row another process wrote within the resolution."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    clock = time.monotonic()
    written = _touched.get(api_key.pk)
    if written is not None and clock - written < LAST_USED_RESOLUTION.total_seconds():
        return
    ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION), pk=api_key.pk).update(
        last_used_at=now
    )
    _touched[api_key.pk] = clock
    api_key.last_used_at = now


# {API key id: time.monotonic() of this process's last write of its last_used_at}
_touched: dict[int, float] = {}
