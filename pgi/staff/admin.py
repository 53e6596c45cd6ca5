"""Staff users in the admin, for Security: who holds which role, and no way up to superuser.

Django's own user admin, with four changes for staff who are not superusers (Security): superuser
status and per-user permissions are read-only (roles are given through the groups, roles.py), a
superuser's account cannot be changed or deleted (its password neither): break-glass accounts are
the superusers' own to keep, and nobody gives themself a role: their own groups are read-only.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .roles import ROLES


class PgiUserAdmin(UserAdmin):
    list_display = ["username", "email", "roles", "is_staff", "is_active", "is_superuser", "last_login"]
    list_filter = ["groups", "is_staff", "is_superuser", "is_active"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions"]
            if obj is not None and obj.pk == request.user.pk:
                fields.append("groups")
        return fields

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_touch(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_touch(request, obj)

    @staticmethod
    def _may_touch(request, obj) -> bool:
        return obj is None or not obj.is_superuser or request.user.is_superuser

    @admin.display(description="roles")
    def roles(self, obj) -> str:
        return ", ".join(sorted(group.name for group in obj.groups.all() if group.name in ROLES)) or "-"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, PgiUserAdmin)
