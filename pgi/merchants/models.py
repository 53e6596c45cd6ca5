from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS
from pgi.text import control_characters

from .rates import validate_rate
from .scopes import default_scopes, validate_scopes

merchant_code_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{1,63}$",
    "Use 2 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
)


def validate_iban(value: str) -> None:
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(value)
    except SchwiftyException as exc:
        raise ValidationError(f"Not a valid IBAN: {exc}") from exc


def validate_bic(value: str) -> None:
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(value)
    except SchwiftyException as exc:
        raise ValidationError(f"Not a valid BIC: {exc}") from exc


class Merchant(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[merchant_code_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    # Where settlement pays the merchant (settlements: payout files). Kept compact and upper case.
    settlement_iban = models.CharField(
        "settlement IBAN", max_length=34, blank=True, default="", validators=[validate_iban],
        help_text="The account settlement batches are paid to.",
    )
    settlement_bic = models.CharField(
        "settlement BIC", max_length=11, blank=True, default="", validators=[validate_bic],
        help_text="Its bank's BIC (optional inside SEPA).",
    )
    api_rate_limit = models.CharField(
        "API rate limit (all its keys)", max_length=20, blank=True, default="", validators=[validate_rate],
        help_text="Requests of all the merchant's keys together, e.g. 6000/min (periods: s, min, hour, day). "
        "Empty: PGI_MERCHANT_API_RATE (by default no merchant-wide limit). Each key keeps its own limit too.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    def clean(self):
        self.settlement_iban = self.settlement_iban.replace(" ", "").upper()
        self.settlement_bic = self.settlement_bic.replace(" ", "").upper()
        errors = {}
        # The name goes into payout files (pain.001, CSV) and statements: no control characters.
        if found := control_characters(self.name):
            errors["name"] = f"Must not contain control characters (tab, line break and the like): {', '.join(found)}."
        if not bic_fits_iban(self.settlement_iban, self.settlement_bic):
            errors["settlement_bic"] = (
                f"The BIC's country ({self.settlement_bic[4:6]}) is not the IBAN's ({self.settlement_iban[:2]}): "
                "give the BIC of the bank that holds this account."
            )
        if errors:
            raise ValidationError(errors)


# The IBAN countries whose accounts may be held at a bank whose BIC names another country: the
# dependencies that use a parent country's IBAN (Jersey, Guernsey, the Isle of Man: GB; the French
# overseas departments and territories, Monaco: FR; Åland: FI). A bank's branch abroad has a BIC of
# the branch's country, so any other pair whose countries differ is a mistake.
BIC_COUNTRIES_OF_IBAN_COUNTRY = {
    "GB": {"GB", "JE", "GG", "IM"},
    "FR": {"FR", "GF", "GP", "MQ", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF", "MC"},
    "MC": {"MC", "FR"},
    "FI": {"FI", "AX"},
}


def bic_fits_iban(iban: str, bic: str) -> bool:
    """True when a bank of the BIC's country may hold an account of the IBAN's country (either
    missing or too short to tell: True; their own validators speak for them)."""
    if len(iban) < 2 or len(bic) < 6:
        return True
    country = iban[:2].upper()
    return bic[4:6].upper() in BIC_COUNTRIES_OF_IBAN_COUNTRY.get(country, {country})


class MerchantCurrency(models.Model):
    """A currency the merchant may take payments in, with its per-payment limit."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="currencies")
    currency = models.CharField(max_length=3)
    max_amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="Largest amount of one payment in this currency; empty means no merchant limit.",
    )

    class Meta:
        ordering = ["currency"]
        verbose_name_plural = "merchant currencies"
        constraints = [
            models.UniqueConstraint(fields=["merchant", "currency"], name="merchant_currency_unique"),
            models.CheckConstraint(
                condition=Q(max_amount__isnull=True) | Q(max_amount__gt=0), name="merchant_currency_limit_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.currency


class ApiKey(models.Model):
    """A bearer key. Only its SHA-256 is stored; the visible prefix finds the row.

    A merchant key acts for its merchant alone. A platform key (merchant empty) belongs to a bank
    system and may act for any merchant.
    """

    name = models.CharField(max_length=100, help_text="Who holds the key, e.g. 'checkout' or 'tps'.")
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="api_keys"
    )
    is_platform = models.BooleanField(default=False)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    scopes = models.JSONField(
        default=default_scopes, validators=[validate_scopes],
        help_text="What the key may do (pgi.merchants.scopes); a request outside them gets 403 INSUFFICIENT_SCOPE.",
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this instant the key is refused (401 API_KEY_EXPIRED). Empty: never."
    )
    rate_limit = models.CharField(
        max_length=20, blank=True, default="", validators=[validate_rate],
        help_text="Requests of this key, e.g. 600/min (periods: s, min, hour, day). Empty: PGI_API_RATE.",
    )
    # The key this one replaced (api_key_rotate); a key is replaced once.
    rotated_from = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="rotated_to"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            # A key is either a merchant's or the platform's, never both, never neither.
            models.CheckConstraint(
                condition=(Q(is_platform=True) & Q(merchant__isnull=True))
                | (Q(is_platform=False) & Q(merchant__isnull=False)),
                name="api_key_owner_exactly_one",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and not self.has_expired()

    def has_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
