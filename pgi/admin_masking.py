"""Account identifiers (a payment's fromAccount, IBANs) as staff without the role to see them whole
see them: the last four characters (docs/04-operations.md#staff-roles).

`payments.view_full_account` (pgi/staff/roles.py: Operations and Finance) shows them whole. An admin
page names the fields to mask in `masked_fields`; for others it shows the masked field instead, read-only.
"""

from pgi.staff.roles import VIEW_FULL_ACCOUNT

MASK = "••••"


def account_masked(value: str | None) -> str:
    """'•••• 0130' for 'DE89370400440532013000': the last four characters only, whatever the length
    (so that the length tells nothing either); '-' for none."""
    if not value:
        return "-"
    compact = value.replace(" ", "")
    return f"{MASK} {compact[-4:]}" if len(compact) > 4 else MASK


def may_see_full_accounts(user) -> bool:
    return user.has_perm(VIEW_FULL_ACCOUNT)


def account_for(user, value: str | None) -> str:
    """The account whole for staff who may see it, else masked."""
    if may_see_full_accounts(user):
        return value or "-"
    return account_masked(value)


# The fields that hold an account identifier, wherever they appear in a recorded snapshot (the
# audit trail's before and after): masked there for staff without VIEW_FULL_ACCOUNT.
ACCOUNT_FIELDS = frozenset({"from_account", "settlement_iban", "payee_iban", "debtor_iban"})


def accounts_masked(value):
    """`value` (JSON: dicts, lists, scalars) with every ACCOUNT_FIELDS entry masked, at any depth
    (a merchant's snapshot holds its inline rows as lists of dicts)."""
    if isinstance(value, dict):
        return {
            key: account_masked(item) if key in ACCOUNT_FIELDS and isinstance(item, str) and item else accounts_masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [accounts_masked(item) for item in value]
    return value


class AccountMaskMixin:
    """For a ModelAdmin: `masked_fields` maps a field to the display method that shows it masked.
    Staff without VIEW_FULL_ACCOUNT get the method, read-only, wherever the field would be."""

    masked_fields: dict[str, str] = {}
    # Model fields a list may not filter by for staff who see them masked (the keys of masked_fields
    # that are model fields, and any other field holding the same account).
    masked_lookups: tuple[str, ...] = ()

    def _masking(self, request) -> bool:
        return bool(self.masked_fields) and not may_see_full_accounts(request.user)

    def _swap(self, request, names):
        if not self._masking(request):
            return names
        return type(names)(self.masked_fields.get(name, name) for name in names)

    def lookup_allowed(self, lookup, value, request):
        """No filter by a masked field in the list's address (`?from_account__startswith=GB2`): its
        count would give the account away a character at a time. The admin answers 400."""
        field = lookup.split("__", 1)[0]
        if self._masking(request) and field in {*self.masked_fields, *self.masked_lookups}:
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_fields(self, request, obj=None):
        return self._swap(request, super().get_fields(request, obj))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not self._masking(request):
            return fieldsets
        return [(name, {**options, "fields": self._swap(request, options["fields"])}) for name, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not self._masking(request):
            return fields
        return [*(name for name in fields if name not in self.masked_fields), *self.masked_fields.values()]
