"""The role groups are what pgi/staff/roles.py says, kept so by every migrate, and given to staff
users with `manage.py grant_role`; least privilege between the roles."""

import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command

from pgi.staff import roles
from pgi.staff.apps import sync_after_migrate
from pgi.staff.roles import FINANCE, OPERATIONS, ROLES, SECURITY, SUPPORT, Role
from pgi.staff.services import role_groups_sync

pytestmark = pytest.mark.django_db

AUDIT = {"audit.view_auditevent", "audit.export_auditevent"}


def held(name: str) -> set[str]:
    return {
        f"{app_label}.{codename}"
        for app_label, codename in Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename")
    }


@pytest.mark.parametrize("role", list(ROLES.values()), ids=list(ROLES))
def test_each_role_group_holds_exactly_its_roles_installed_permissions(role):
    installed = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}

    assert held(role.name) == set(role.permissions) & installed
    assert set(role.permissions) - installed <= AUDIT  # only the audit trail's may be missing yet


def test_every_codename_of_the_roles_but_the_audit_trails_exists():
    installed = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    every = {perm for role in ROLES.values() for perm in role.permissions}

    assert every - installed <= AUDIT


def test_least_privilege_between_the_roles():
    operations, finance, support, security = (set(r.permissions) for r in (OPERATIONS, FINANCE, SUPPORT, SECURITY))

    assert not any(perm.startswith("merchants.") and "apikey" in perm for perm in operations | finance | support)
    assert not any(perm.startswith(("payments.", "refunds.", "settlements.")) for perm in security)
    assert support == {"payments.view_payment", "refunds.view_refund"}
    assert roles.VIEW_FULL_ACCOUNT in operations & finance and roles.VIEW_FULL_ACCOUNT not in support | security
    assert {p for p in finance if p.startswith(("payments.", "refunds."))} <= {
        "payments.view_payment", roles.VIEW_FULL_ACCOUNT, "refunds.view_refund"
    }
    assert not any(p.startswith("settlements.") for p in operations)
    assert security >= AUDIT and not any(p.startswith("audit.") for p in operations | finance | support)
    # Roles are changed in code: nobody changes a group, nobody deletes a user or a payment.
    every = operations | finance | support | security
    assert not {"auth.change_group", "auth.add_group", "auth.delete_user", "auth.change_permission"} & every
    assert not any(p.startswith(("payments.change_", "payments.delete_", "payments.add_")) for p in every)


def test_a_permission_added_by_hand_is_taken_away_by_the_next_sync():
    support = Group.objects.get(name="Support")
    support.permissions.add(Permission.objects.get(codename="add_apikey"))

    role_groups_sync()

    assert held("Support") == set(SUPPORT.permissions)


def test_a_codename_not_installed_is_skipped_not_a_crash(monkeypatch):
    monkeypatch.setitem(ROLES, "Support", Role("Support", "test", (*SUPPORT.permissions, "nosuchapp.view_thing")))

    missing = role_groups_sync()

    assert missing["Support"] == ["nosuchapp.view_thing"]
    assert held("Support") == set(SUPPORT.permissions)


def test_the_groups_come_back_after_the_last_apps_post_migrate():
    from django.apps import apps

    Group.objects.filter(name__in=list(ROLES)).delete()
    configs = [config for config in apps.get_app_configs() if config.models_module is not None]

    sync_after_migrate(sender=configs[0], apps=apps)
    after_first = Group.objects.filter(name__in=list(ROLES)).count()
    sync_after_migrate(sender=configs[-1], apps=apps)

    assert after_first == 0
    assert held("Operations") == set(OPERATIONS.permissions)


# --- manage.py grant_role ---------------------------------------------------------------------


def grant_role(*args) -> str:
    out = io.StringIO()
    call_command("grant_role", *args, stdout=out)
    return out.getvalue()


def test_grant_role_gives_roles_and_admin_access_and_takes_them_away(django_user_model):
    sam = django_user_model.objects.create_user("sam", password="pw")

    granted = grant_role("sam", "operations", "Support")
    sam.refresh_from_db()
    groups_after_grant, staff_after_grant = set(sam.groups.values_list("name", flat=True)), sam.is_staff
    revoked = grant_role("sam", "Support", "--revoke")

    assert granted.strip() == "sam: roles Operations, Support; admin access yes"
    assert groups_after_grant == {"Operations", "Support"} and staff_after_grant
    assert revoked.strip() == "sam: roles Operations; admin access yes"
    assert grant_role("sam", "--revoke-all", "--no-admin").strip() == "sam: roles none; admin access no"


def test_grant_role_keeps_finance_out_of_the_admin_with_no_admin(django_user_model):
    django_user_model.objects.create_user("fiona", password="pw")

    assert grant_role("fiona", "Finance", "--no-admin").strip() == "fiona: roles Finance; admin access no"


@pytest.mark.parametrize(
    "args, code",
    [(("sam", "Treasury"), "UNKNOWN_ROLE"), (("nobody", "Support"), "UNKNOWN_USER"), (("root", "Security"), "SUPERUSER_HAS_NO_ROLE")],
)
def test_grant_role_refuses_unknown_roles_users_and_superusers(django_user_model, args, code):
    django_user_model.objects.create_user("sam", password="pw")
    root = django_user_model.objects.create_superuser("root", "root@bank.example", "pw")

    with pytest.raises(CommandError, match=code):
        grant_role(*args)

    assert not root.groups.exists()
    assert not django_user_model.objects.get(username="sam").groups.exists()


def test_grant_role_lists_the_roles_and_their_members(django_user_model):
    django_user_model.objects.create_user("sam", password="pw")
    grant_role("sam", "Security")

    listing = grant_role("--list")

    assert "Security: API keys" in listing and "    members: sam" in listing
    assert listing.count("members:") == len(ROLES)
