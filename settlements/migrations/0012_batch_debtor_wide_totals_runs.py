"""Batches keep the bank's own account (debtor) their payout files pay from, so that building them
again gives the same bytes; existing batches take PGI_SETTLEMENT's debtor as it is now (their stored
files were built from it unless it changed since). Batch totals widen to numeric(30, 4): the sum of
two of the largest payments the API takes overflowed numeric(18, 4). Settlement runs are recorded.
"""

from django.conf import settings
from django.db import migrations, models


def backfill_debtor(apps, schema_editor):
    config = {"debtor_name": "PGI Bank", "debtor_iban": "", "debtor_bic": "", **getattr(settings, "PGI_SETTLEMENT", {})}
    apps.get_model("settlements", "SettlementBatch").objects.filter(debtor_iban="").update(
        debtor_name=config["debtor_name"][:200], debtor_iban=config["debtor_iban"][:34], debtor_bic=config["debtor_bic"][:11]
    )


class Migration(migrations.Migration):

    dependencies = [
        ('settlements', '0011_reconcile_schedules'),
    ]

    operations = [
        migrations.CreateModel(
            name='SettlementRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('cutoff', models.DateTimeField(unique=True)),
                ('finished_at', models.DateTimeField()),
                ('batches_created', models.PositiveIntegerField(default=0)),
            ],
            options={
                'ordering': ['-cutoff'],
            },
        ),
        migrations.AddField(
            model_name='settlementbatch',
            name='debtor_bic',
            field=models.CharField(blank=True, default='', max_length=11),
        ),
        migrations.AddField(
            model_name='settlementbatch',
            name='debtor_iban',
            field=models.CharField(blank=True, default='', max_length=34),
        ),
        migrations.AddField(
            model_name='settlementbatch',
            name='debtor_name',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AlterField(
            model_name='settlementbatch',
            name='carried_amount',
            field=models.DecimalField(decimal_places=4, default=0, help_text='Carried forward from earlier batches (zero or negative).', max_digits=30),
        ),
        migrations.AlterField(
            model_name='settlementbatch',
            name='fee_amount',
            field=models.DecimalField(decimal_places=4, default=0, max_digits=30),
        ),
        migrations.AlterField(
            model_name='settlementbatch',
            name='gross_amount',
            field=models.DecimalField(decimal_places=4, default=0, help_text='Captured payments.', max_digits=30),
        ),
        migrations.AlterField(
            model_name='settlementbatch',
            name='net_amount',
            field=models.DecimalField(decimal_places=4, default=0, help_text='gross - refunds - fees + carried.', max_digits=30),
        ),
        migrations.AlterField(
            model_name='settlementbatch',
            name='refund_amount',
            field=models.DecimalField(decimal_places=4, default=0, help_text='Completed refunds.', max_digits=30),
        ),
        migrations.RunPython(backfill_debtor, migrations.RunPython.noop),
    ]
