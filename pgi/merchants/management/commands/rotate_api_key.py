import math
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from pgi.audit.actors import Actor
from pgi.errors import ApplicationError
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_rotate, rotation_grace_default


MAX_GRACE_HOURS = 90 * 24  # as the admin's rotation form


class Command(BaseCommand):
    help = (
        "Replace an API key without downtime: issue a new key for the same merchant with the same name, "
        "scopes and rate limit, and let the old one work for a grace period more. The new key is printed "
        "once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("prefix", help="The prefix of the key to replace (pgi_<prefix>_…, as the admin lists it).")
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=None,
            help="How long the old key keeps working (default PGI_API_KEY_ROTATION_GRACE_HOURS, 24; 0: not at all).",
        )

    def handle(self, *args, prefix, grace_hours, **options):
        api_key = ApiKey.objects.filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError(f"No API key with prefix {prefix}.")
        if grace_hours is not None and not (math.isfinite(grace_hours) and 0 <= grace_hours <= MAX_GRACE_HOURS):
            raise CommandError(f"--grace-hours must be a number from 0 to {MAX_GRACE_HOURS} (90 days).")
        grace = rotation_grace_default() if grace_hours is None else timedelta(hours=grace_hours)
        try:
            new, full_key = api_key_rotate(api_key=api_key, grace=grace, actor=Actor.of_command("rotate_api_key"))
        except ApplicationError as exc:
            raise CommandError("; ".join([exc.message, *(f"{d.field}: {d.message}" for d in exc.details)])) from exc
        self.stderr.write(
            f"Issued {new.prefix} ({new.name}) to replace {api_key.prefix}, which works until "
            f"{api_key.expires_at:%Y-%m-%d %H:%M:%S} UTC. Store the new key now: it is not shown again."
        )
        self.stdout.write(full_key)
