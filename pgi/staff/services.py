"""Keeping the role groups equal to roles.ROLES, and giving staff users their roles."""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import BusinessRuleViolation

from .roles import ROLES, Role

logger = logging.getLogger(__name__)


def role_groups_sync(*, group_model=Group, permission_model=Permission) -> dict[str, list[str]]:
    """Create each role's group and set its permissions to exactly the role's.

    A codename whose permission does not exist (its app is not installed or not migrated yet) is
    skipped: the next sync, after that app's migration, grants it. Returns the skipped codenames per
    role. The model arguments take a migration's historical models.
    """
    wanted = {perm for role in ROLES.values() for perm in role.permissions}
    labels = {perm.split(".", 1)[0] for perm in wanted}
    existing = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.filter(content_type__app_label__in=labels).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    missing: dict[str, list[str]] = {}
    with transaction.atomic():
        for role in ROLES.values():
            group, _ = group_model.objects.get_or_create(name=role.name)
            group.permissions.set([existing[perm] for perm in role.permissions if perm in existing])
            if absent := [perm for perm in role.permissions if perm not in existing]:
                missing[role.name] = absent
    if missing:
        logger.debug("Staff roles synced; permissions not installed yet, skipped: %s", missing)
    return missing


def role_group_ensure(role: Role) -> Group:
    """The role's group, synced first (a flushed test database or an unmigrated app may lack it)."""
    role_groups_sync()
    return Group.objects.get(name=role.name)


def role_get(name: str) -> Role:
    """The role named `name` (case-insensitive). Raises BusinessRuleViolation UNKNOWN_ROLE."""
    for role in ROLES.values():
        if role.name.lower() == name.strip().lower():
            return role
    raise BusinessRuleViolation(f"No role {name!r}; the roles are {', '.join(ROLES)}.", code="UNKNOWN_ROLE")


@transaction.atomic
def user_roles_set(
    *, username: str, grant: list[Role], revoke: list[Role], admin_access: bool | None = None, actor: Actor | None = None
):
    """Add the user to the `grant` roles' groups and take it out of `revoke`'s. `admin_access`
    (is_staff) True or False sets it; None gives admin access when a role is granted and leaves it
    otherwise. A superuser is refused: break-glass accounts hold no role. A change by staff
    (`actor`) is recorded in the audit trail. Raises BusinessRuleViolation UNKNOWN_USER or
    SUPERUSER_HAS_NO_ROLE. Returns the user."""
    user = get_user_model().objects.select_for_update().filter(username=username).first()
    if user is None:
        raise BusinessRuleViolation(f"No user {username!r}.", code="UNKNOWN_USER")
    if user.is_superuser and grant:
        raise BusinessRuleViolation(
            f"{username} is a superuser (break-glass): give roles to a personal account without superuser status.",
            code="SUPERUSER_HAS_NO_ROLE",
        )
    role_groups_sync()
    before = _roles_and_access(user)
    groups = {group.name: group for group in Group.objects.filter(name__in=[role.name for role in [*grant, *revoke]])}
    user.groups.add(*(groups[role.name] for role in grant))
    user.groups.remove(*(groups[role.name] for role in revoke))
    if admin_access is None and grant:
        admin_access = True
    if admin_access is not None and user.is_staff != admin_access:
        user.is_staff = admin_access
        user.save(update_fields=["is_staff"])
    after = _roles_and_access(user)
    if changed := [field for field in before if before[field] != after[field]]:
        audit_record(
            actor=actor,
            action="change",
            obj=user,
            before={field: before[field] for field in changed},
            after={field: after[field] for field in changed},
        )
    return user


def _roles_and_access(user) -> dict:
    return {"groups": sorted(user.groups.values_list("name", flat=True)), "is_staff": user.is_staff}


def user_role_names(user) -> list[str]:
    return sorted(user.groups.filter(name__in=list(ROLES)).values_list("name", flat=True))
