"""What an API key may do: its scopes, `<family>:read` and `<family>:write`.

Every API view names its family (`key_scope = "payments"`); a read (GET, HEAD, OPTIONS) needs
`<family>:read`, anything else `<family>:write` (pgi.api.permissions). A scope that no endpoint
needs is not defined: settlements are read-only in the API, so there is no `settlements:write`.
"""

from collections.abc import Iterable

from django.core.exceptions import ValidationError

# Scope: what it lets a key do (the admin shows this beside each checkbox).
SCOPES = {
    "payments:read": "Read payments and their status",
    "payments:write": "Take, validate, capture and cancel payments",
    "refunds:read": "Read refunds",
    "refunds:write": "Refund payments",
    "settlements:read": "Read settlement batches and their lines",
    "webhooks:read": "Read webhook endpoints and their deliveries",
    "webhooks:write": "Register, change, delete webhook endpoints; rotate their secrets; redeliver",
}
ALL_SCOPES = list(SCOPES)

# A new key, unless told otherwise: what a merchant's checkout integration needs (payments,
# refunds, and webhooks to hear of outcomes). Settlements (payouts, the merchant's bank account)
# are for the merchant's finance systems and are granted on purpose.
DEFAULT_SCOPES = [
    "payments:read",
    "payments:write",
    "refunds:read",
    "refunds:write",
    "webhooks:read",
    "webhooks:write",
]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def default_scopes() -> list[str]:
    """The model field's default (a callable: each row gets its own list)."""
    return list(DEFAULT_SCOPES)


def scope_for(family: str, method: str) -> str:
    """The scope a request with `method` needs on a view of `family`."""
    return f"{family}:{'read' if method.upper() in READ_METHODS else 'write'}"


def scopes_normalized(scopes: Iterable[str]) -> list[str]:
    """Known scopes, each once, in SCOPES' order. Raises ValidationError naming the unknown ones."""
    given = [str(scope).strip() for scope in scopes]
    unknown = sorted(set(given) - set(SCOPES))
    if unknown:
        raise ValidationError(
            f"Unknown scope: {', '.join(unknown)}. Known: {', '.join(SCOPES)}.", code="unknown_scope"
        )
    return [scope for scope in SCOPES if scope in given]


def validate_scopes(value) -> None:
    """Model field validator: a list of known scopes."""
    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ValidationError("Must be a list of scopes.", code="invalid_scopes")
    scopes_normalized(value)
