"""Settlement lines: a carried net is a batch's net, as wide as the batch's totals."""


from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('settlements', '0012_batch_debtor_wide_totals_runs'),
    ]

    operations = [
        migrations.AlterField(
            model_name='settlementline',
            name='amount',
            field=models.DecimalField(decimal_places=4, help_text="The captured amount, the refund's amount, or the carried net.", max_digits=30),
        ),
        migrations.AlterField(
            model_name='settlementline',
            name='net',
            field=models.DecimalField(decimal_places=4, help_text='What the line adds to the payout: amount - fee, -refund, or the carried net.', max_digits=30),
        ),
    ]
