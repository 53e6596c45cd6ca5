# The payment keeps only what describes it: the columns of the operation in flight and its
# recovery are gone, carried into GatewayOperation rows by 0007.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0007_carry_operations'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='payment',
            name='payment_recovery_due',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='next_recovery_at',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='operations_sent',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='pending_amount',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='pending_expiry',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='pending_key',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='pending_operation',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='pending_since',
        ),
        migrations.RemoveField(
            model_name='payment',
            name='recovery_attempts',
        ),
    ]
