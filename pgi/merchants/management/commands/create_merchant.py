from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.audit.snapshot import shown, snapshot
from pgi.errors import ValidationFailed
from pgi.merchants.models import MerchantCurrency
from pgi.merchants.services import merchant_create


class Command(BaseCommand):
    help = "Create a merchant that can take payments in the given currencies."

    def add_arguments(self, parser):
        parser.add_argument("code", help="Merchant code, used as toMerchant (e.g. merchant456).")
        parser.add_argument("--name", required=True, help="Display name.")
        parser.add_argument("--currencies", default="USD", help="Comma-separated ISO 4217 codes (default USD).")
        parser.add_argument("--max-amount", default=None, help="Per-payment limit in each currency (default none).")

    def handle(self, *args, code, name, currencies, max_amount, **options):
        try:
            limit = Decimal(max_amount) if max_amount is not None else None
        except InvalidOperation as exc:
            raise CommandError(f"--max-amount is not a number: {max_amount}") from exc
        codes = [c.strip() for c in currencies.split(",") if c.strip()]
        try:
            with transaction.atomic():
                merchant = merchant_create(code=code, name=name, currencies=codes, max_amount=limit)
                recorded = snapshot(merchant, {"merchants.merchantcurrency": (MerchantCurrency, "merchant")})
                audit_record(actor=Actor.of_command("create_merchant"), action="add", obj=merchant, after=shown(recorded))
        except ValidationFailed as exc:
            raise CommandError("; ".join(f"{d.field}: {d.message}" for d in exc.details) or exc.message) from exc
        self.stdout.write(f"Created merchant {merchant.code} ({merchant.name}) for {', '.join(codes)}")
