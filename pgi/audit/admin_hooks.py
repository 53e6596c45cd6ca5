"""The admin's side of the audit trail: every model admin registered with PGI's admin site records
its add, change and delete (PgiAdminSite.register mixes AuditedAdminMixin in), with the fields as
they were and as they became, in the transaction of the change (Django's add, change and delete
views run in one; so does the bulk delete here). Custom actions record through the services they
call, which take the actor."""

from django.contrib import admin
from django.db import models, transaction
from django.forms.models import _get_foreign_key

from pgi.admin_readonly import ReadOnlyAdminMixin

from .actors import Actor
from .services import audit_record
from .snapshot import changes, shown, snapshot


def admin_actor(request) -> Actor:
    return Actor.of_request(request, via="admin")


def _key(obj: models.Model) -> tuple[str, str]:
    return obj._meta.label_lower, str(obj.pk)


class AuditedAdminMixin:
    """Records add, change and delete. The state before a change is read when the admin loads the
    object for a POST (get_object: the change form, the delete page, a custom view such as a
    password change), or else just before save_model saves it."""

    def audit_related(self) -> dict[str, tuple[type[models.Model], str]]:
        """The rows edited on the object's page with it (inlines staff can change): recorded as part
        of the object, so that a merchant's gateway routes or a fee plan's currencies show in its events."""
        related = {}
        for inline in self.inlines:
            if issubclass(inline, ReadOnlyAdminMixin):
                continue
            try:
                fk = _get_foreign_key(self.model, inline.model, fk_name=inline.fk_name)
            except ValueError:  # not related by a foreign key (a generic inline): not recorded
                continue
            related[inline.model._meta.label_lower] = (inline.model, fk.name)
        return related

    def audit_snapshot(self, obj: models.Model) -> dict:
        return snapshot(obj, self.audit_related())

    @staticmethod
    def _audit_before(request) -> dict:
        return request.__dict__.setdefault("_pgi_audit_before", {})

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST":
            self._audit_before(request).setdefault(_key(obj), self.audit_snapshot(obj))
        return obj

    def save_model(self, request, obj, form, change):
        if change and _key(obj) not in self._audit_before(request):
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            if stored is not None:
                self._audit_before(request)[_key(obj)] = self.audit_snapshot(stored)
        super().save_model(request, obj, form, change)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        audit_record(actor=admin_actor(request), action="add", obj=obj, after=shown(self.audit_snapshot(obj)))
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        before = self._audit_before(request).pop(_key(obj), None)
        after = self.audit_snapshot(obj)
        if before is None:  # nothing to compare with: the whole row as it is now
            was, now = None, shown(after)
        else:
            was, now = changes(before, after)
            if not now:  # saved without a change
                return entry
        note = message if isinstance(message, str) else ""
        audit_record(actor=admin_actor(request), action="change", obj=obj, before=was, after=now, note=note)
        return entry

    def delete_model(self, request, obj):
        audit_record(actor=admin_actor(request), action="delete", obj=obj, before=shown(self.audit_snapshot(obj)))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # The "delete selected" action runs outside a transaction: its events and its DELETE share one.
        with transaction.atomic(using=queryset.db):
            actor = admin_actor(request)
            for obj in queryset:
                audit_record(actor=actor, action="delete", obj=obj, before=shown(self.audit_snapshot(obj)))
            super().delete_queryset(request, queryset)


class PasswordChangeAuditMixin:
    """Django's user admin changes a password in a view of its own, outside a transaction: the
    password and its event (recorded by log_change) commit together here."""

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            return super().user_change_password(request, id, form_url)


def _beat_action(base: type[admin.ModelAdmin], name: str):
    """One of django-celery-beat's actions that switch tasks on or off, recording each task whose
    `enabled` it changed, in the transaction of the change."""
    original = getattr(base, name)

    def action(self, request, queryset):
        with transaction.atomic():
            tasks = list(queryset.select_for_update(of=("self",)))
            response = original(self, request, queryset)
            now = dict(queryset.model.objects.filter(pk__in=[t.pk for t in tasks]).values_list("pk", "enabled"))
            actor = admin_actor(request)
            for task in tasks:
                if now.get(task.pk) != task.enabled:
                    audit_record(actor=actor, action="change", obj=task, before={"enabled": task.enabled},
                                 after={"enabled": now.get(task.pk)}, note=f"periodic task action {name}")  # fmt: skip
        return response

    action.__name__ = name
    return admin.action(description=original.short_description)(action)


def _beat_run(base: type[admin.ModelAdmin]):
    """django-celery-beat's "run selected tasks": sends them now; recorded once they are sent."""
    original = base.run_tasks

    def run_tasks(self, request, queryset):
        tasks = list(queryset)
        response = original(self, request, queryset)
        if not all(self.celery_app.tasks.get(task.task) for task in tasks):
            return response  # beat's action sent nothing: one of the tasks is unknown
        with transaction.atomic():
            actor = admin_actor(request)
            for task in tasks:
                audit_record(actor=actor, action="periodic_task.run", obj=task, after={"task": task.task})
        return response

    return admin.action(description=original.short_description)(run_tasks)


def _periodic_task_mixin(base: type[admin.ModelAdmin]) -> type:
    """django-celery-beat's list actions: enable, disable and toggle change rows with an UPDATE of
    their own; run sends the tasks now. (Built from the admin class being registered: beat's admin
    module is still loading when it registers.)"""
    names = [name for name in ("enable_tasks", "disable_tasks", "toggle_tasks") if hasattr(base, name)]
    attrs = {name: _beat_action(base, name) for name in names}
    if hasattr(base, "run_tasks"):
        attrs["run_tasks"] = _beat_run(base)
    return type("PeriodicTaskAuditMixin", (), attrs)


def audited(model: type[models.Model], admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """`admin_class` with the audit trail's hooks mixed in (once)."""
    if issubclass(admin_class, AuditedAdminMixin):
        return admin_class
    bases: list[type] = [AuditedAdminMixin]
    if hasattr(admin_class, "user_change_password"):
        bases.append(PasswordChangeAuditMixin)
    if model._meta.label_lower == "django_celery_beat.periodictask":
        bases.append(_periodic_task_mixin(admin_class))
    return type(admin_class.__name__, (*bases, admin_class), {"__module__": admin_class.__module__})
