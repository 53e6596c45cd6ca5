"""Staff admin for merchants and API keys.

Keys are issued, edited, rotated and revoked through the services, never by saving a row by hand:
the admin shows a new full key exactly once, on the page that answers the "add" form or the
rotation, and stores nothing but its hash. A key is never deleted (payments point at it); it is
revoked. Every edit of a key or a merchant forgets the cached copy (pgi.lookups), so the next
request sees new scopes, expiry and limits. Keys are Security's, merchants Operations'
(pgi/staff/roles.py): the merchant's page shows its keys and the button to issue one only to staff
who may see and issue keys, and its settlement IBAN whole only to staff who may see accounts whole.
"""

import secrets

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.cache import cache
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from pgi.admin_format import instant
from pgi.admin_masking import AccountMaskMixin, account_masked
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor
from pgi.errors import ApplicationError
from pgi.money import UnknownCurrency, currency_exponent, fits_currency, quantize

from .models import ApiKey, Merchant, MerchantCurrency
from .rates import validate_rate
from .scopes import DEFAULT_SCOPES, SCOPES
from .services import api_key_create, api_key_revoke, api_key_rotate, api_key_update, rotation_grace_default


class MerchantCurrencyForm(forms.ModelForm):
    class Meta:
        model = MerchantCurrency
        fields = ["currency", "max_amount"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit, code = self.instance.max_amount, self.instance.currency
        if limit is not None and code:
            # Stored with four decimals; shown with the currency's own (10000.00 USD, 5000 JPY).
            self.initial["max_amount"] = quantize(limit, code)

    def clean_currency(self):
        code = self.cleaned_data["currency"].strip().upper()
        try:
            currency_exponent(code)
        except UnknownCurrency:
            raise forms.ValidationError("Not an ISO 4217 currency that can carry payments.") from None
        return code

    def clean(self):
        cleaned = super().clean()
        code, limit = cleaned.get("currency"), cleaned.get("max_amount")
        if code and limit is not None:
            if limit <= 0:
                self.add_error("max_amount", "Must be greater than zero, or empty for no limit.")
            elif not fits_currency(limit, code):
                self.add_error("max_amount", f"{code} allows at most {currency_exponent(code)} decimal places.")
        return cleaned


class MerchantCurrencyInline(admin.TabularInline):
    model = MerchantCurrency
    form = MerchantCurrencyForm
    extra = 0
    verbose_name = "accepted currency"
    verbose_name_plural = "accepted currencies (with the largest amount of one payment)"


class ApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The merchant's keys, read-only: issue and revoke them on the API key pages."""

    model = ApiKey
    fields = ["prefix", "name", "scopes", "rate_limit", "created_at", "last_used_at", "expires_at", "revoked_at"]
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "API keys (issue, edit, rotate and revoke them under API keys)"


@admin.register(Merchant)
class MerchantAdmin(AccountMaskMixin, admin.ModelAdmin):
    list_display = ["code", "name", "is_active", "currency_list", "active_keys", "created"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]
    search_help_text = "Merchant code or name."
    readonly_fields = ["issue_key", "created_at", "updated_at"]
    masked_fields = {"settlement_iban": "settlement_iban_masked"}
    # Other apps add theirs between the currencies and the keys: see merchant_inline_add.
    inlines = [MerchantCurrencyInline, ApiKeyInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related("currencies")
            .annotate(_active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    def get_readonly_fields(self, request, obj=None):
        # The code is the merchant's public name in the API (toMerchant): it never changes.
        fields = list(super().get_readonly_fields(request, obj))
        return ["code", *fields] if obj else fields

    def get_fields(self, request, obj=None):
        fields = ["code", "name", "is_active", "settlement_iban", "settlement_bic", "api_rate_limit"]
        if obj is None:
            return fields
        issue = ["issue_key"] if request.user.has_perm("merchants.add_apikey") else []
        return [*fields, *issue, "created_at", "updated_at"]

    def has_delete_permission(self, request, obj=None):
        # Payments and keys refer to merchants; a merchant leaving is deactivated, not deleted.
        return False

    @admin.display(description="settlement IBAN")
    def settlement_iban_masked(self, obj: Merchant) -> str:
        return account_masked(obj.settlement_iban)

    @admin.display(description="currencies")
    def currency_list(self, obj: Merchant) -> str:
        return ", ".join(c.currency for c in obj.currencies.all()) or "—"

    @admin.display(description="active keys", ordering="_active_keys")
    def active_keys(self, obj: Merchant) -> int:
        return obj._active_keys

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Merchant) -> str:
        return instant(obj.created_at)

    @admin.display(description="API keys")
    def issue_key(self, obj: Merchant) -> str:
        url = reverse("admin:merchants_apikey_add") + f"?merchant={obj.pk}"
        return format_html('<a class="button" href="{}">Issue a new API key for {}</a>', url, obj.code)


def merchant_inline_add(inline: type[admin.options.InlineModelAdmin]) -> None:
    """Show another app's inline on the merchant's page, after its currencies and before its keys
    (gateways: the merchant's routes). pgi imports no domain app: they add theirs from their admin."""
    if inline not in MerchantAdmin.inlines:
        keys = MerchantAdmin.inlines.index(ApiKeyInline)
        MerchantAdmin.inlines = [*MerchantAdmin.inlines[:keys], inline, *MerchantAdmin.inlines[keys:]]


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("active", "Active"),
            ("expiring", "Active, expiring"),
            ("expired", "Expired"),
            ("revoked", "Revoked"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if self.value() == "active":
            return queryset.filter(unexpired, revoked_at__isnull=True)
        if self.value() == "expiring":
            return queryset.filter(revoked_at__isnull=True, expires_at__gt=now)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class KeyKindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("merchant", "Merchant keys"), ("platform", "Platform keys")]

    def queryset(self, request, queryset):
        if self.value() in ("merchant", "platform"):
            return queryset.filter(is_platform=self.value() == "platform")
        return queryset


def scopes_field(**kwargs) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=[(scope, f"{scope}: {meaning}") for scope, meaning in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="A request outside the key's scopes gets 403 INSUFFICIENT_SCOPE. GET needs :read, "
        "anything else :write.",
        **kwargs,
    )


class ApiKeyChangeForm(forms.ModelForm):
    """What staff may change on an issued key; api_key_update saves it."""

    scopes = scopes_field()

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expires_at", "rate_limit"]
        labels = {"expires_at": "Expires (UTC)"}


class ApiKeyIssueForm(forms.ModelForm):
    """Who the new key is for and what it may do. The key itself is generated by api_key_create,
    not typed in."""

    issue_token = forms.CharField(widget=forms.HiddenInput)
    scopes = scopes_field(initial=DEFAULT_SCOPES)

    class Meta:
        model = ApiKey
        fields = ["name", "merchant", "is_platform", "scopes", "expires_at", "rate_limit"]
        labels = {"is_platform": "Platform key", "expires_at": "Expires (UTC)"}
        help_texts = {
            "merchant": "The merchant the key acts for. Leave empty for a platform key.",
            "is_platform": "A key of a bank system that may act for any merchant (names toMerchant itself).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"].queryset = Merchant.objects.filter(is_active=True)
        self.fields["issue_token"].initial = secrets.token_urlsafe(16)

    def clean(self):
        cleaned = super().clean()
        merchant, platform = cleaned.get("merchant"), cleaned.get("is_platform")
        if merchant and platform:
            raise forms.ValidationError("A key is either a merchant's or a platform key, not both.")
        if not merchant and not platform:
            raise forms.ValidationError("Choose the merchant, or tick 'Platform key'.")
        # The page that shows the new key answers a POST; reloading it would post the form again
        # and issue a second key. Each form carries a token that issues one key only. Checked last,
        # so that a form with other errors does not use its token up.
        token = cleaned.get("issue_token")
        if token and not self.errors and not cache.add(f"pgi:api-key-issue:{token}", 1, timeout=86400):
            raise forms.ValidationError("This form has already issued a key. Open 'Add API key' again for another.")
        return cleaned

    def clean_rate_limit(self):
        # Field validators of the model run in _post_clean, which this form skips.
        validate_rate(self.cleaned_data["rate_limit"])
        return self.cleaned_data["rate_limit"]

    def _post_clean(self):
        # The row is built by api_key_create; validating this unsaved instance against the model
        # (empty prefix and hash) would only produce misleading errors.
        pass


class RotateForm(forms.Form):
    grace_hours = forms.DecimalField(
        label="Grace period (hours)",
        min_value=0,
        max_value=24 * 90,
        decimal_places=2,
        help_text="How long each old key keeps working beside its new one. 0: the old key stops at once.",
    )


ISSUE_FIELDS = ["name", "merchant", "is_platform", "scopes", "expires_at", "rate_limit", "issue_token"]
CHANGE_FIELDS = [
    "name", "prefix", "owner", "scopes", "expires_at", "rate_limit", "created_at", "last_used_at", "revoked_at",
    "rotated_from", "successor",
]  # fmt: skip


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "owner", "scope_list", "created", "last_used", "ends"]
    list_filter = [KeyStateFilter, KeyKindFilter, ("merchant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["merchant"]
    search_fields = ["prefix", "name", "merchant__code"]
    search_help_text = "Key prefix, key name or merchant code."
    actions = ["rotate_keys", "revoke_keys"]
    # The owner and the secret are set when the key is issued and never change; the hash is never shown.
    readonly_fields = ["prefix", "owner", "created_at", "last_used_at", "revoked_at", "rotated_from", "successor"]
    fields = CHANGE_FIELDS

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyIssueForm if obj is None else ApiKeyChangeForm
        kwargs["fields"] = ISSUE_FIELDS if obj is None else ApiKeyChangeForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ISSUE_FIELDS if obj is None else CHANGE_FIELDS

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def has_rotate_permission(self, request) -> bool:
        # Rotating issues a key and changes the old one.
        return self.has_add_permission(request) and self.has_change_permission(request)

    @admin.display(description="merchant / platform", ordering="merchant__code")
    def owner(self, obj: ApiKey) -> str:
        return "platform (any merchant)" if obj.is_platform else obj.merchant.code

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        """Compact, so the list fits a laptop: `all`, or each family with r and w (`payments rw`)."""
        if set(obj.scopes) >= set(SCOPES):
            return "all"
        families = {}
        for scope in obj.scopes:
            family, _, access = scope.partition(":")
            families[family] = families.get(family, "") + access[0]
        return ", ".join(f"{family} {access}" for family, access in families.items()) or "none"

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: ApiKey) -> str:
        return instant(obj.created_at)

    @admin.display(description="last used (UTC)", ordering="last_used_at")
    def last_used(self, obj: ApiKey) -> str:
        return instant(obj.last_used_at)

    @admin.display(description="revoked / expires (UTC)", ordering="expires_at", empty_value="")
    def ends(self, obj: ApiKey) -> str:
        """One column for both ends of a key's life, so the list fits a laptop screen."""
        if obj.revoked_at is not None:
            return f"revoked {instant(obj.revoked_at)}"
        if obj.expires_at is None:
            return ""
        return f"{'expired' if obj.has_expired() else 'expires'} {instant(obj.expires_at)}"

    @admin.display(description="replaced by")
    def successor(self, obj: ApiKey):
        successor = getattr(obj, "rotated_to", None)
        if successor is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:merchants_apikey_change", args=[successor.pk]), successor
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            api_key_update(
                api_key=obj,
                name=data["name"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                rate_limit=data["rate_limit"],
            )
            return
        api_key, full_key = api_key_create(
            name=data["name"],
            merchant=data["merchant"],
            scopes=data["scopes"],
            expires_at=data["expires_at"],
            rate_limit=data["rate_limit"],
        )
        # The admin goes on with `obj` (change log, response): make it the issued row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(api_key, field.attname))
        obj._state.adding = False
        obj._state.db = api_key._state.db
        request._pgi_issued_key = full_key

    def _shown_once(self, request, title: str, issued: list[tuple[ApiKey, str, ApiKey | None]]):
        """The page that shows new keys, once: not in the session, not in a message cookie."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "issued": [
                {
                    "api_key": api_key,
                    "full_key": full_key,
                    "replaces": replaces,
                    "change_url": reverse("admin:merchants_apikey_change", args=[api_key.pk]),
                }
                for api_key, full_key, replaces in issued
            ],
            "changelist_url": reverse("admin:merchants_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/merchants/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def response_add(self, request, obj, post_url_continue=None):
        """Show the new key once, on this response, instead of redirecting."""
        return self._shown_once(request, "API key issued", [(obj, request._pgi_issued_key, None)])

    @admin.action(description="Rotate selected keys (a new key each; the old one works for a grace period)",
                  permissions=["rotate"])
    def rotate_keys(self, request, queryset):
        """First a page that asks for the grace period; its form posts back here with `apply`."""
        form = RotateForm(request.POST if "apply" in request.POST else None,
                          initial={"grace_hours": rotation_grace_default() / timedelta(hours=1)})
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Rotate API keys",
                "opts": self.opts,
                "keys": queryset.select_related("merchant"),
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/merchants/apikey/rotate.html", context)
        grace = timedelta(hours=float(form.cleaned_data["grace_hours"]))
        issued = []
        for api_key in queryset.select_related("merchant"):
            try:
                new, full_key = api_key_rotate(api_key=api_key, grace=grace, actor=admin_actor(request))
            except ApplicationError as exc:  # revoked, expired or already replaced (a reloaded page)
                self.message_user(request, exc.message, messages.WARNING)
                continue
            issued.append((new, full_key, api_key))
        if not issued:
            return None  # back to the list, with the warnings
        return self._shown_once(request, f"API key{'s' if len(issued) > 1 else ''} rotated", issued)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        revoked, actor = 0, admin_actor(request)
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, actor=actor)
            revoked += 1
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} key{'s' if revoked != 1 else ''}."
        if skipped:
            text += f" {skipped} already revoked, left as they were."
        self.message_user(request, text, messages.SUCCESS)
