# The operation in flight becomes a row (GatewayOperation); 0007 carries the old columns over, 0008 drops them.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0005_attention_code'),
    ]

    operations = [
        migrations.CreateModel(
            name='GatewayOperation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('authorize', 'Authorize'), ('capture', 'Capture'), ('void', 'Void'), ('refund', 'Refund')], max_length=16)),
                ('amount', models.DecimalField(decimal_places=4, max_digits=18)),
                ('idempotency_key', models.CharField(max_length=80, unique=True)),
                ('status', models.CharField(choices=[('pending', 'pending: sent or being sent, outcome not known yet'), ('succeeded', 'Succeeded'), ('failed', 'failed: refused by the gateway, or overtaken'), ('not_sent', 'not sent: the gateway could not be reached; nothing happened there')], default='pending', max_length=16)),
                ('by_expiry', models.BooleanField(default=False, help_text='A void sent because the authorization expired.')),
                ('attempts', models.PositiveSmallIntegerField(default=0, help_text='Recovery looks that did not settle it.')),
                ('next_look_at', models.DateTimeField(blank=True, help_text='When recovery next looks; none once staff must.', null=True)),
                ('lease_expires_at', models.DateTimeField(blank=True, help_text='Held by a request or recovery run until then.', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.AddField(
            model_name='gatewayoperation',
            name='payment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='operations', to='payments.payment'),
        ),
        migrations.AddIndex(
            model_name='gatewayoperation',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['next_look_at'], name='operation_recovery_due'),
        ),
        migrations.AddIndex(
            model_name='gatewayoperation',
            index=models.Index(fields=['payment', 'kind'], name='operation_payment_kind'),
        ),
        migrations.AddConstraint(
            model_name='gatewayoperation',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='operation_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='gatewayoperation',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'authorize')), fields=('payment',), name='operation_one_authorization'),
        ),
        migrations.AddConstraint(
            model_name='gatewayoperation',
            constraint=models.UniqueConstraint(condition=models.Q(('kind__in', ['capture', 'void']), ('status', 'pending')), fields=('payment',), name='operation_one_follow_up_in_flight'),
        ),
    ]
