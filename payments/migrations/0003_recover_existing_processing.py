"""Payments left Processing before recovery existed have no next look scheduled: schedule one now."""

from django.db import migrations
from django.utils import timezone


def schedule(apps, schema_editor):
    Payment = apps.get_model("payments", "Payment")
    Payment.objects.filter(status="Processing", next_recovery_at__isnull=True).update(next_recovery_at=timezone.now())


class Migration(migrations.Migration):
    dependencies = [("payments", "0002_attempts_capture_recovery")]

    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]
