"""The `Finance` group with the permissions the finance web UI checks (settlements/finance/access.py).

Its members sign in at /finance/login and need no admin access (is_staff stays false). Permissions
are created here first: Django creates them only after all migrations have run.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Finance"
PERMISSIONS = [
    ("settlements", "use_finance_ui"),
    ("settlements", "view_settlementbatch"),
    ("settlements", "view_settlementline"),
    ("settlements", "view_payoutfile"),
    ("payments", "view_payment"),
]


def create(apps, schema_editor):
    for label in {app for app, _ in PERMISSIONS}:
        config = apps.get_app_config(label)
        config.models_module = True  # create_permissions skips apps it takes for model-less
        create_permissions(config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0020_finance_daily_figures"),
        ("payments", "0009_labels"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create, remove)]
