from django.db import migrations


class Migration(migrations.Migration):
    """Joins reconciliation's report choice and webhook totals (0014) with the finance UI's (0020-0022)."""

    dependencies = [
        ("settlements", "0014_report_chosen_webhook_amount"),
        ("settlements", "0022_finance_resolve_exceptions"),
    ]

    operations = []
