"""Three foreign keys lose the index Django gives every foreign key: a composite index leads with
each column already (payment_merchant_created, operation_payment_kind, gateway_attempt_payment).

Written as SQL on the exact index names: Django's AlterField would also drop the partial unique
indexes on payment_id (operation_one_authorization, operation_one_follow_up_in_flight, which keep
one authorization and one follow-up in flight per payment) and re-check each foreign key over the
whole table.
"""

import django.db.models.deletion
from django.db import migrations, models

# name: (table, column, a varchar_pattern_ops copy for LIKE: PostgreSQL only)
DROPPED = {
    "payments_payment_merchant_id_2ca42133": ("payments_payment", "merchant_id", False),
    "payments_gatewayoperation_payment_id_985e8ade": ("payments_gatewayoperation", "payment_id", False),
    "payments_gatewayoperation_payment_id_985e8ade_like": ("payments_gatewayoperation", "payment_id", True),
    "payments_gatewayattempt_payment_id_68ed6847": ("payments_gatewayattempt", "payment_id", False),
    "payments_gatewayattempt_payment_id_68ed6847_like": ("payments_gatewayattempt", "payment_id", True),
}


def drop(apps, schema_editor):
    for name in DROPPED:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def restore(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, (table, column, like) in DROPPED.items():
        if like and not postgres:
            continue
        ops = " varchar_pattern_ops" if like else ""
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}"{ops})')


class Migration(migrations.Migration):
    dependencies = [
        ("merchants", "0003_api_key_scopes_expiry_limits_keys"),
        ("payments", "0010_staff_permissions_roles"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop, restore)],
            state_operations=[
                migrations.AlterField(
                    model_name="gatewayattempt",
                    name="payment",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="gateway_attempts",
                        to="payments.payment",
                    ),
                ),
                migrations.AlterField(
                    model_name="gatewayoperation",
                    name="payment",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="operations",
                        to="payments.payment",
                    ),
                ),
                migrations.AlterField(
                    model_name="payment",
                    name="merchant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="payments",
                        to="merchants.merchant",
                    ),
                ),
            ],
        )
    ]
