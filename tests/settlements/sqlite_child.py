"""Run in a child process by test_sqlite.py, on the SQLite database its DATABASE_URL names
(migrated): seed a scenario read as JSON from stdin, settle as a user of `make run` would, and print
what the database then holds as JSON. Amounts cross as strings, both ways.

    python -m tests.settlements.sqlite_child < scenario.json

The scenario: merchants (code, iban, bps, fees {currency: [fixed, minimum]}), payments (merchant,
currency, amount, captured_amount, captured: minutes before the latest cut-off, refunds [[amount,
minutes]]), and steps: ["dry-run", days] (settlement_run, dry run, up to the latest cut-off minus
that many days), ["settle", days] (`manage.py settle --cutoff`), ["job"] (beat's settle-daily task);
pages: true reads the first merchant's settlements through the API and the admin (its last batch).
Times are minutes before the latest cut-off, so the job settles up to it.
"""

import datetime as dt
import io
import json
import os
import sys
from decimal import Decimal


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")
    import django

    django.setup()

    from django.core.management import call_command
    from django.db import connection

    from pgi.events.models import OutboxEvent
    from settlements.models import FeePlan, FeePlanCurrency, SettlementBatch, SettlementLine
    from settlements.services import settlement_cutoff_latest, settlement_run
    from settlements.tasks import settlements_settle
    from tests.factories import MerchantFactory, captured_payment, completed_refund

    assert connection.vendor == "sqlite", connection.vendor
    scenario = json.load(sys.stdin)
    latest = settlement_cutoff_latest()

    def before(minutes: float) -> dt.datetime:
        return latest - dt.timedelta(minutes=minutes)

    merchants = {}
    for m in scenario["merchants"]:
        merchant = MerchantFactory(
            code=m["code"], name=m["code"], settlement_iban=m.get("iban", ""), settlement_bic=m.get("bic", "")
        )
        merchants[m["code"]] = merchant
        if m.get("bps") is not None:
            plan = FeePlan.objects.create(merchant=merchant, basis_points=m["bps"])
            for currency, (fixed, minimum) in m.get("fees", {}).items():
                FeePlanCurrency.objects.create(
                    plan=plan, currency=currency, fixed=Decimal(fixed),
                    minimum=None if minimum is None else Decimal(minimum),
                )
    payment_ids = []
    for p in scenario["payments"]:
        payment = captured_payment(
            merchant=merchants[p["merchant"]], amount=p["amount"], currency=p["currency"],
            captured_amount=Decimal(p["captured_amount"]) if p.get("captured_amount") else None,
            captured_at=before(p["captured"]),
        )
        for amount, minutes in p.get("refunds", []):
            completed_refund(payment=payment, amount=amount, completed_at=before(minutes))
        payment_ids.append(payment.pk)

    steps = []
    for step in scenario["steps"]:
        if step[0] == "dry-run":
            outcomes = settlement_run(cutoff=latest - dt.timedelta(days=step[1]), dry_run=True)
            steps.append({
                f"{merchants_by_pk(merchants)[o.merchant_id]} {o.currency}": [str(v) for v in vars(o.totals).values()]
                for o in outcomes
            })
        elif step[0] == "settle":
            out = io.StringIO()
            cutoff = (latest - dt.timedelta(days=step[1])).isoformat()
            call_command("settle", "--cutoff", cutoff, stdout=out, stderr=io.StringIO())
            steps.append(out.getvalue())
        else:
            steps.append(settlements_settle.apply().get())

    batches = []
    for batch in SettlementBatch.objects.order_by("cutoff", "merchant__code", "currency"):
        batches.append({
            "id": batch.id,
            "merchant": batch.merchant.code,
            "currency": batch.currency,
            "days": round((latest - batch.cutoff) / dt.timedelta(days=1)),
            "status": batch.status,
            "totals": [str(batch.gross_amount), str(batch.refund_amount), str(batch.fee_amount),
                       str(batch.carried_amount), str(batch.net_amount)],
            "counts": [batch.payment_count, batch.refund_count],
            "files": {f.kind: f.content.decode() for f in batch.payout_files.all()},
        })
    lines = [
        {"batch": line.batch_id, "kind": line.kind, "payment": line.payment_id, "refund": line.refund_id,
         "carried": line.carried_batch_id, "amount": str(line.amount), "fee": str(line.fee), "net": str(line.net)}
        for line in SettlementLine.objects.order_by("id")
    ]
    events = list(
        OutboxEvent.objects.filter(event_type="SETTLEMENT_COMPLETED").order_by("id").values_list("key", flat=True)
    )
    pages = read_pages(merchants[scenario["merchants"][0]["code"]], batches) if scenario.get("pages") else {}
    json.dump(
        {"payments": payment_ids, "steps": steps, "batches": batches, "lines": lines, "events": events, "pages": pages},
        sys.stdout,
    )


def read_pages(merchant, batches: list[dict]) -> dict:
    """The merchant's settlements through the API (with its key), and its last batch's admin
    pages (a superuser): {name: [status code, body]}."""
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings
    from rest_framework.test import APIClient

    from pgi.merchants.scopes import ALL_SCOPES
    from pgi.merchants.services import api_key_create

    _, key = api_key_create(name="sqlite", merchant=merchant, scopes=ALL_SCOPES)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    mine = [b["id"] for b in batches if b["merchant"] == merchant.code][-1]
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    base = "/admin/settlements/settlementbatch/"
    pages = {}
    # No collected static files in the child's PGI_VAR_DIR: the admin's templates name them unhashed.
    with override_settings(STORAGES={**settings_storages(), "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
    }}):
        for name, client, url in [
            ("list", api, "/v1/settlements"),
            ("detail", api, f"/v1/settlements/{mine}"),
            ("lines", api, f"/v1/settlements/{mine}/lines"),
            ("admin list", staff, base),
            ("admin batch", staff, f"{base}{mine}/change/"),
            ("admin statement", staff, f"{base}{mine}/statement.csv"),
            ("admin csv", staff, f"{base}{mine}/file/csv/"),
        ]:
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            pages[name] = [response.status_code, body.decode()]
    return pages


def settings_storages() -> dict:
    from django.conf import settings

    return settings.STORAGES


def merchants_by_pk(merchants: dict) -> dict:
    return {merchant.pk: code for code, merchant in merchants.items()}


if __name__ == "__main__":
    main()
