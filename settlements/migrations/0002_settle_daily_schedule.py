"""Beat's `settle-daily` job, created once at PGI_SETTLEMENT's cut-off time and time zone.

Not in CELERY_BEAT_SCHEDULE: that is written over the database's rows on every beat start, and
this schedule's time is the settlement cut-off, which staff may change in the admin.
"""

from django.conf import settings
from django.db import migrations

NAME = "settle-daily"
TASK = "settlements.tasks.settlements_settle"


def create(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    config = getattr(settings, "PGI_SETTLEMENT", {})
    hour, minute = config.get("cutoff_time", "00:00").split(":")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(int(minute)),
        hour=str(int(hour)),
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=config.get("time_zone", "UTC"),
    )
    PeriodicTask.objects.create(
        name=NAME, task=TASK, crontab=crontab, description="Settle captured payments and refunds up to the cut-off."
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
