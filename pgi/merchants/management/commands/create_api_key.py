from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.audit.snapshot import fields_of, shown
from pgi.errors import ValidationFailed
from pgi.merchants.models import Merchant
from pgi.merchants.services import api_key_create


class Command(BaseCommand):
    help = (
        "Issue an API key for a merchant, or with --platform a platform key for a bank system "
        "(CODE is then the system's name). The key is printed once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("code", help="Merchant code, or the bank system's name with --platform.")
        parser.add_argument("--platform", action="store_true", help="A key that may act for any merchant.")
        parser.add_argument("--name", default=None, help="Label for the key (default: the code).")

    def handle(self, *args, code, platform, name, **options):
        merchant = None
        if not platform:
            merchant = Merchant.objects.filter(code=code).first()
            if merchant is None:
                raise CommandError(f"No merchant {code}. Create it with create_merchant first.")
        try:
            with transaction.atomic():
                api_key, full_key = api_key_create(name=name or code, merchant=merchant)
                audit_record(actor=Actor.of_command("create_api_key"), action="add", obj=api_key, after=shown(fields_of(api_key)))
        except ValidationFailed as exc:
            raise CommandError("; ".join(f"{d.field}: {d.message}" for d in exc.details)) from exc
        kind = "platform key" if platform else f"key for merchant {code}"
        self.stderr.write(f"Issued {kind} {api_key.prefix} ({api_key.name}). Store it now: it is not shown again.")
        self.stdout.write(full_key)
