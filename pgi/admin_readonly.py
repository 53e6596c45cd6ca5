"""For admin pages that show records nobody may write by hand: payments and their history, the
gateways' ledgers, idempotency records."""


from django.contrib.admin.utils import flatten_fieldsets


class ReadOnlyAdminMixin:
    """No add, change or delete for anyone; staff with view permission still see every field.

    Every field shown is read-only, so `readonly_fields` is derived from `fieldsets` or `fields`
    instead of being listed a second time.
    """

    def get_readonly_fields(self, request, obj=None):
        if self.fieldsets:
            return flatten_fieldsets(self.fieldsets)
        return self.fields or super().get_readonly_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
