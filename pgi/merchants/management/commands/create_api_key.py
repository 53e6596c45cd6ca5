from django.core.management.base import BaseCommand, CommandError

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
            api_key, full_key = api_key_create(name=name or code, merchant=merchant)
        except ValidationFailed as exc:
            raise CommandError("; ".join(f"{d.field}: {d.message}" for d in exc.details)) from exc
        kind = "platform key" if platform else f"key for merchant {code}"
        self.stderr.write(f"Issued {kind} {api_key.prefix} ({api_key.name}). Store it now: it is not shown again.")
        self.stdout.write(full_key)
