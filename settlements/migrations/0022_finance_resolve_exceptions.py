"""Finance resolves reconciliation exceptions in the finance web UI: the group gets the permission
to resolve them and to view runs, reports and exceptions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Finance"
PERMISSIONS = [
    ("settlements", "resolve_reconciliationexception"),
    ("settlements", "view_reconciliationexception"),
    ("settlements", "view_reconciliationrun"),
    ("settlements", "view_gatewayreport"),
    ("settlements", "add_gatewayreport"),
]


def grant(apps, schema_editor):
    config = apps.get_app_config("settlements")
    config.models_module = True  # create_permissions skips apps it takes for model-less
    create_permissions(config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=GROUP).first()
    if group is not None:
        codenames = [codename for _, codename in PERMISSIONS]
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="settlements", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("settlements", "0021_finance_group")]

    operations = [migrations.RunPython(grant, revoke)]
