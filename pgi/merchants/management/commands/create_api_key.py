from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.audit.snapshot import fields_of, shown
from pgi.errors import ValidationFailed
from pgi.merchants.models import Merchant
from pgi.merchants.scopes import ALL_SCOPES, DEFAULT_SCOPES
from pgi.merchants.services import api_key_create


def scopes_argument(value: str) -> list[str]:
    """`--scopes`: comma-separated scopes, or `all`. Unknown ones are refused by api_key_create."""
    return list(ALL_SCOPES) if value.strip() == "all" else [s.strip() for s in value.split(",") if s.strip()]


class Command(BaseCommand):
    help = (
        "Issue an API key for a merchant, or with --platform a platform key for a bank system "
        "(CODE is then the system's name). The key is printed once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("code", help="Merchant code, or the bank system's name with --platform.")
        parser.add_argument("--platform", action="store_true", help="A key that may act for any merchant.")
        parser.add_argument("--name", default=None, help="Label for the key (default: the code).")
        parser.add_argument(
            "--scopes",
            default=",".join(DEFAULT_SCOPES),
            help=f"Comma-separated scopes, or 'all' (default: {','.join(DEFAULT_SCOPES)}).",
        )
        parser.add_argument("--expires-in-days", type=int, default=None, help="Refuse the key after this many days.")
        parser.add_argument("--rate-limit", default="", help="The key's own limit, e.g. 600/min (default PGI_API_RATE).")

    def handle(self, *args, code, platform, name, scopes, expires_in_days, rate_limit, **options):
        merchant = None
        if not platform:
            merchant = Merchant.objects.filter(code=code).first()
            if merchant is None:
                raise CommandError(f"No merchant {code}. Create it with create_merchant first.")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be 1 or more.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            with transaction.atomic():
                api_key, full_key = api_key_create(
                    name=name or code,
                    merchant=merchant,
                    scopes=scopes_argument(scopes),
                    expires_at=expires_at,
                    rate_limit=rate_limit,
                )
                audit_record(actor=Actor.of_command("create_api_key"), action="add", obj=api_key, after=shown(fields_of(api_key)))
        except ValidationFailed as exc:
            raise CommandError("; ".join(f"{d.field}: {d.message}" for d in exc.details)) from exc
        kind = "platform key" if platform else f"key for merchant {code}"
        self.stderr.write(
            f"Issued {kind} {api_key.prefix} ({api_key.name}) with scopes {', '.join(api_key.scopes)}"
            + (f", expiring {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "")
            + ". Store it now: it is not shown again."
        )
        self.stdout.write(full_key)
