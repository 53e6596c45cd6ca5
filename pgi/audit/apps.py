from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "pgi.audit"
    label = "audit"
    verbose_name = "Audit trail"
