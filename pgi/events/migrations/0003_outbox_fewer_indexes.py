"""Two indexes fewer on the outbox: each one cost the relay's mark (a new entry per row marked sent)
and served no query. The prune walks the primary key (events.services.events_prune) instead of
outbox_sent_at; nothing looks rows up by merchant. Dropping an index keeps every row as it is."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0002_outbox_webhooks"),
        ("merchants", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="outboxevent",
            name="outbox_sent_at",
        ),
        migrations.AlterField(
            model_name="outboxevent",
            name="merchant",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="merchants.merchant",
            ),
        ),
    ]
