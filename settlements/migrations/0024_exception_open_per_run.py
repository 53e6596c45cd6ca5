"""Reconciliation: an index of the open exceptions per run (the runs list and a run's page count them), and
the categories "matched" and "duplicate" labelled in lower case like the others."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0009_labels'),
        ('refunds', '0003_labels'),
        ('settlements', '0023_merge_recfix'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='reconciliationexception',
            name='category',
            field=models.CharField(choices=[('matched', 'matched'), ('amount_mismatch', 'amount mismatch'), ('currency_mismatch', 'currency mismatch'), ('status_mismatch', 'status mismatch'), ('missing_at_gateway', 'missing at gateway'), ('unknown_to_pgi', 'unknown to PGI'), ('duplicate', 'duplicate')], max_length=20),
        ),
        migrations.AlterField(
            model_name='reconciliationtotal',
            name='category',
            field=models.CharField(choices=[('matched', 'matched'), ('amount_mismatch', 'amount mismatch'), ('currency_mismatch', 'currency mismatch'), ('status_mismatch', 'status mismatch'), ('missing_at_gateway', 'missing at gateway'), ('unknown_to_pgi', 'unknown to PGI'), ('duplicate', 'duplicate')], max_length=20),
        ),
        migrations.AddIndex(
            model_name='reconciliationexception',
            index=models.Index(condition=models.Q(('present', True), ('resolution', '')), fields=['run', 'first_seen_at'], name='recon_exception_run_open'),
        ),
    ]
