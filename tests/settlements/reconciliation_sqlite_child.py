"""Run in a child process by test_reconciliation_sqlite.py on the SQLite database its DATABASE_URL
names (migrated): seed the crafted day of test_reconciliation.py, reconcile it with `manage.py
reconcile --file` twice (the second finds the file loaded), and print the categories, the totals and
the run as JSON (amounts as strings).

    python -m tests.settlements.reconciliation_sqlite_child < report.csv
"""

import io
import json
import os
import tempfile


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")
    import django

    django.setup()

    from django.core.management import call_command
    from django.db import connection

    from settlements.reconciliation.models import GatewayReport, ReconciliationException, ReconciliationRun
    from tests.factories import MerchantFactory
    from tests.settlements.test_reconciliation import crafted_day

    assert connection.vendor == "sqlite", connection.vendor
    day = crafted_day(MerchantFactory(code="shop-a", name="shop-a"))
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as handle:
        handle.write(day["report"])
    outputs = []
    for _ in range(2):
        out = io.StringIO()
        call_command("reconcile", "--gateway", "simulator", "--date", "2026-11-30", "--file", handle.name,
                     stdout=out, stderr=io.StringIO())  # fmt: skip
        outputs.append(out.getvalue())
    run = ReconciliationRun.objects.get()
    print(json.dumps({
        "categories": sorted([e.category, e.reference] for e in ReconciliationException.objects.all()),
        "payments": {name: p.id for name, p in day["payments"].items()},
        "missing_refund": day["missing_refund"].id,
        "totals": sorted([t.category, t.currency, t.count, str(t.report_amount), str(t.pgi_amount)]
                         for t in run.totals.all()),  # fmt: skip
        "run": [run.line_count, run.matched_count, run.exception_count, run.operation_count, run.run_count],
        "reports": GatewayReport.objects.count(),
        "outputs": outputs,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
