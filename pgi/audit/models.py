"""The audit trail: one row per staff action on money, keys, routes, fee plans, schedules, merchants,
users and groups. Append-only: the model refuses to update or delete a row, and so does a database
trigger on PostgreSQL (migration 0001). docs/04-operations.md, "Audit trail"."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    """An audit event was to be changed or deleted: it never is."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit events are never changed.")

    def delete(self):
        raise AppendOnly("Audit events are never deleted.")

    def _raw_delete(self, using):
        raise AppendOnly("Audit events are never deleted.")


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who, as they were at the time: no foreign key, so that a user deleted later keeps their events.
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="The staff user's id; empty for a command.")
    actor_username = models.CharField(max_length=200, db_index=True, help_text="User name, or OS user@host for a command.")
    # Where from: the admin, the finance UI, or a management command on a host.
    via = models.CharField(max_length=100, help_text="admin, finance, or command:<name>.")
    source_ip = models.GenericIPAddressField(null=True, blank=True, help_text="The client's address (PGI_PROXY_COUNT).")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=100, db_index=True, help_text="app_label.model")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    # The fields the action changed, as they were and as they became; secrets only as "[secret]".
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    note = models.CharField(max_length=500, blank=True, help_text="The reason or message given with the action.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # No add, change or delete permission exists to grant: events are written by PGI alone.
        default_permissions = ("view",)
        permissions = [("export_auditevent", "Can export audit events (CSV)")]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id} by {self.actor_username}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("Audit events are never changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit events are never deleted.")
