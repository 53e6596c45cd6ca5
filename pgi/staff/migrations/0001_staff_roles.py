"""The staff role groups (pgi/staff/roles.py): Operations, Finance (which settlements 0021 created),
Support and Security, each with exactly its role's permissions.

Not frozen on purpose: the roles are kept equal to roles.py by every `migrate` (apps.py's
post_migrate), so this migration only makes the groups exist as soon as the staff app is migrated.
Permissions are created here first (Django creates them only after all migrations have run); those
of apps not migrated yet are skipped and granted by the post_migrate sync.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from pgi.staff.roles import ROLES


def sync(apps, schema_editor):
    from pgi.staff.services import role_groups_sync

    for label in sorted({perm.split(".", 1)[0] for role in ROLES.values() for perm in role.permissions}):
        try:
            config = apps.get_app_config(label)
        except LookupError:  # not installed (yet): skipped
            continue
        config.models_module = True  # create_permissions skips apps it takes for model-less
        create_permissions(config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        config.models_module = None
    role_groups_sync(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


def remove(apps, schema_editor):
    # Finance was settlements 0021's before it was a role: it stays for that migration to remove.
    apps.get_model("auth", "Group").objects.filter(name__in=[name for name in ROLES if name != "Finance"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("payments", "0010_staff_permissions_roles"),
        ("refunds", "0003_labels"),
        ("settlements", "0025_staff_permissions_roles"),
        ("gateways", "0005_simulator_refund_pending"),
        ("merchants", "0002_settlement_account"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync, remove)]
