import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import Conflict, ErrorDetail, ValidationFailed
from pgi.lookups import lookup_forget
from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, is_payable_currency, is_storable_amount

from .keys import generate_key, hash_key
from .models import ApiKey, Merchant, MerchantCurrency
from .rates import validate_rate
from .scopes import DEFAULT_SCOPES, scopes_normalized

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


def _api_key_checked(*, name: str, scopes, rate_limit: str) -> list[str]:
    """The key's scopes, normalized. Raises ValidationFailed naming every bad field."""
    errors = []
    if not name.strip() or len(name) > ApiKey._meta.get_field("name").max_length:
        errors.append(ErrorDetail("name", "Must be 1 to 100 characters."))
    try:
        scopes = scopes_normalized(scopes)
    except DjangoValidationError as exc:
        errors.extend(ErrorDetail("scopes", message) for message in exc.messages)
    try:
        validate_rate(rate_limit)
    except DjangoValidationError as exc:
        errors.extend(ErrorDetail("rate_limit", message) for message in exc.messages)
    if errors:
        raise ValidationFailed("Invalid key.", details=errors)
    return scopes


@transaction.atomic
def api_key_create(
    *,
    name: str,
    merchant: Merchant | None,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit: str = "",
    rotated_from: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key for a merchant, or a platform key when merchant is None, with `scopes`
    (DEFAULT_SCOPES when None), an optional expiry and its own rate limit (empty: PGI_API_RATE).

    Returns the row and the full key; the key is not stored and cannot be shown again. Raises
    ValidationFailed for a bad name, an unknown scope or a malformed rate."""
    scopes = _api_key_checked(name=name, scopes=DEFAULT_SCOPES if scopes is None else scopes, rate_limit=rate_limit)
    full_key, prefix = generate_key()
    api_key = ApiKey.objects.create(
        name=name,
        merchant=merchant,
        is_platform=merchant is None,
        prefix=prefix,
        key_hash=hash_key(full_key),
        scopes=scopes,
        expires_at=expires_at,
        rate_limit=rate_limit,
        rotated_from=rotated_from,
    )
    return api_key, full_key


@transaction.atomic
def api_key_update(
    *,
    api_key: ApiKey,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None,
    rate_limit: str,
) -> ApiKey:
    """Change what staff may change on a key: its name, scopes, expiry and rate limit. The next
    request with the key sees the change, in every process (the save forgets the cached key).

    Raises ValidationFailed for a bad name, an unknown scope or a malformed rate."""
    api_key.scopes = _api_key_checked(name=name, scopes=scopes, rate_limit=rate_limit)
    api_key.name, api_key.expires_at, api_key.rate_limit = name, expires_at, rate_limit
    api_key.save(update_fields=["name", "scopes", "expires_at", "rate_limit"])
    lookup_forget("api_key", [api_key.prefix])
    return api_key


def rotation_grace_default() -> timedelta:
    return timedelta(hours=settings.PGI_API_KEY_ROTATION_GRACE_HOURS)


@transaction.atomic
def api_key_rotate(
    *, api_key: ApiKey, grace: timedelta | None = None, actor: Actor | None = None
) -> tuple[ApiKey, str]:
    """Replace a key without downtime: a new key for the same merchant (or platform) with the same
    name, scopes and rate limit, and the old one set to expire after `grace` (default
    PGI_API_KEY_ROTATION_GRACE_HOURS; sooner if it was to expire sooner). Both work meanwhile.

    `actor`: who, for the audit trail (recorded in the same transaction).
    Returns the new row and its full key, shown once. Raises ValidationFailed for a negative grace,
    Conflict when the key is revoked (API_KEY_REVOKED), expired (API_KEY_EXPIRED) or already
    replaced (API_KEY_ALREADY_ROTATED: rotating is done once per key, so a form posted twice does
    not issue two successors)."""
    grace = rotation_grace_default() if grace is None else grace
    if grace < timedelta(0):
        raise ValidationFailed("Invalid grace period.", details=[ErrorDetail("grace", "Must not be negative.")])
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)  # one rotation of a key at a time
    now = timezone.now()
    if old.revoked_at is not None:
        raise Conflict(f"Key {old.prefix} is revoked: issue a new key instead.", code="API_KEY_REVOKED")
    if old.has_expired(now):
        raise Conflict(f"Key {old.prefix} has expired: issue a new key instead.", code="API_KEY_EXPIRED")
    successor = ApiKey.objects.filter(rotated_from=old).first()
    if successor is not None:
        raise Conflict(
            f"Key {old.prefix} was already replaced by {successor.prefix}: rotate that one.",
            code="API_KEY_ALREADY_ROTATED",
        )
    new, full_key = api_key_create(
        name=old.name, merchant=old.merchant, scopes=old.scopes, rate_limit=old.rate_limit, rotated_from=old
    )
    expires_at = min(now + grace, old.expires_at) if old.expires_at else now + grace
    ApiKey.objects.filter(pk=old.pk).update(expires_at=expires_at)
    audit_record(
        actor=actor, action="api_key.rotate", obj=old,
        before={"expires_at": old.expires_at}, after={"expires_at": expires_at, "successor": new.prefix},
    )  # fmt: skip
    lookup_forget("api_key", [old.prefix])  # requests with it see the expiry at once
    api_key.expires_at = expires_at
    return new, full_key


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
