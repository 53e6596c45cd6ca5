"""Give a staff user a role (pgi/staff/roles.py), or take it away.

    manage.py grant_role sam Operations             sam joins Operations and gets admin access
    manage.py grant_role sam Support Finance        several roles at once
    manage.py grant_role sam Operations --revoke    sam leaves Operations (admin access stays)
    manage.py grant_role sam --revoke-all --no-admin   no role and no admin access
    manage.py grant_role --list                     the roles, their jobs, and who holds them

Roles go to personal accounts, never to a superuser: superusers are for break-glass only.
"""

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from pgi.audit.actors import Actor
from pgi.errors import BusinessRuleViolation
from pgi.staff.roles import ROLES
from pgi.staff.services import (
    role_get,
    role_groups_sync,
    user_role_names,
    user_roles_set,
)


class Command(BaseCommand):
    help = (
        "Give a staff user one or more roles (Operations, Finance, Support, Security), or take them away "
        "with --revoke. Granting a role gives admin access (is_staff). Superusers hold no role: they are "
        "for break-glass only."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?")
        parser.add_argument("roles", nargs="*", metavar="role", help=f"one of {', '.join(ROLES)}")
        parser.add_argument("--revoke", action="store_true", help="take the roles away instead")
        parser.add_argument("--revoke-all", action="store_true", help="take every role away")
        access = parser.add_mutually_exclusive_group()
        access.add_argument("--no-admin", action="store_true", help="no admin access (is_staff false): the finance UI only")
        access.add_argument("--admin", action="store_true", help="admin access (is_staff true) without granting a role")
        parser.add_argument("--list", dest="list_roles", action="store_true", help="list the roles and their members")

    def handle(self, *args, username=None, roles=(), revoke=False, revoke_all=False, no_admin=False, admin=False, list_roles=False, **options):
        if list_roles:
            return self._list()
        if not username or not (roles or revoke_all or no_admin or admin):
            raise CommandError("Give a username and at least one role (or --list).")
        try:
            chosen = [role_get(name) for name in roles]
            revoked = list(ROLES.values()) if revoke_all else chosen if revoke else []
            user = user_roles_set(
                username=username,
                grant=[] if revoke or revoke_all else chosen,
                revoke=revoked,
                admin_access=False if no_admin else True if admin else None,
                actor=Actor.of_command("grant_role"),
            )
        except BusinessRuleViolation as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        held = ", ".join(user_role_names(user)) or "none"
        self.stdout.write(f"{user.get_username()}: roles {held}; admin access {'yes' if user.is_staff else 'no'}")

    def _list(self) -> None:
        missing = role_groups_sync()
        for role in ROLES.values():
            members = Group.objects.get(name=role.name).user_set.order_by("username").values_list("username", flat=True)
            self.stdout.write(f"{role.name}: {role.job}")
            self.stdout.write(f"    members: {', '.join(members) or '-'}")
            if missing.get(role.name):
                self.stdout.write(f"    not installed yet: {', '.join(missing[role.name])}")
