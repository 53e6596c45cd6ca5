"""For admin pages that show records nobody may write by hand: payments and their history, the
gateways' ledgers, idempotency records."""


class ReadOnlyAdminMixin:
    """No add, change or delete for anyone; staff with view permission still see every field."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
