from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def sync_after_migrate(sender, apps=None, **kwargs):
    """After every `migrate` (and a test database's flush): the role groups as roles.py defines
    them, with the permissions of apps migrated after the staff migration too. Django sends
    post_migrate once per app with models, after that app's permissions are created: the groups are
    synced once, at the last app's."""
    from .services import role_groups_sync

    last = [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]
    if sender is not last:
        return
    state = apps or global_apps
    role_groups_sync(group_model=state.get_model("auth", "Group"), permission_model=state.get_model("auth", "Permission"))


class StaffConfig(AppConfig):
    name = "pgi.staff"
    label = "staff"
    verbose_name = "Staff roles"

    def ready(self):
        post_migrate.connect(sync_after_migrate, dispatch_uid="pgi.staff.sync_after_migrate")
