"""Beat's reconciliation jobs: `reconcile-daily-<gateway>` for each gateway configured when this
runs (at PGI_RECONCILIATION's run_time and time zone), and `reconcile-inbox` every inbox_seconds.

Not in CELERY_BEAT_SCHEDULE: that is written over the database's rows on every beat start, and staff
change these times in the admin. A gateway configured later gets its job from
`manage.py reconcile --schedule` (settlements.reconciliation.services.reconciliation_schedules_ensure).
"""

from django.conf import settings
from django.db import migrations

DAILY_PREFIX = "reconcile-daily-"
DAILY_TASK = "settlements.reconciliation.tasks.reconciliation_reconcile_gateway"
INBOX = "reconcile-inbox"
INBOX_TASK = "settlements.reconciliation.tasks.reconciliation_inbox"


def create(apps, schema_editor):
    import json

    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    config = getattr(settings, "PGI_RECONCILIATION", {})
    hour, minute = config.get("run_time", "06:00").split(":")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(int(minute)),
        hour=str(int(hour)),
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=config.get("time_zone", "UTC"),
    )
    for code in getattr(settings, "PGI_GATEWAYS", {}):
        name = DAILY_PREFIX + code
        if not PeriodicTask.objects.filter(name=name).exists():
            PeriodicTask.objects.create(
                name=name,
                task=DAILY_TASK,
                crontab=crontab,
                kwargs=json.dumps({"gateway": code}),
                description=f"Reconcile {code}'s settlement report of the day before.",
            )
    if not PeriodicTask.objects.filter(name=INBOX).exists():
        interval, _ = IntervalSchedule.objects.get_or_create(every=config.get("inbox_seconds", 300), period="seconds")
        PeriodicTask.objects.create(
            name=INBOX, task=INBOX_TASK, interval=interval, description="Load and reconcile report files from the inbox."
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__startswith=DAILY_PREFIX).delete()
    PeriodicTask.objects.filter(name=INBOX).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0010_reconciliation"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
