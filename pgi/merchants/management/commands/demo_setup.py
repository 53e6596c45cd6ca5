"""The demo data behind `make run`: merchant456, fresh API keys and an admin with a fresh password.

Idempotent: the merchant is created once; every run revokes the previous demo keys and issues new
ones (keys are stored hashed, so an old key cannot be shown again), and resets the admin password and any lockout of its login.
"""

import secrets

from axes.utils import reset as login_lockout_reset
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from pgi.merchants.models import ApiKey, Merchant
from pgi.merchants.services import api_key_create, api_key_revoke, merchant_create

MERCHANT_CODE = "merchant456"
MERCHANT_NAME = "Demo Merchant"
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "KWD"]
MERCHANT_KEY_NAME = "demo"
PLATFORM_KEY_NAME = "demo-platform"
ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create the demo merchant merchant456 if missing, issue new demo keys (revoking the previous "
        "ones) and give the staff superuser 'admin' a new password. Prints KEY=VALUE lines."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            merchant = Merchant.objects.filter(code=MERCHANT_CODE).first()
            if merchant is None:
                merchant = merchant_create(code=MERCHANT_CODE, name=MERCHANT_NAME, currencies=CURRENCIES)
            merchant_key = self._rotate_key(name=MERCHANT_KEY_NAME, merchant=merchant)
            platform_key = self._rotate_key(name=PLATFORM_KEY_NAME, merchant=None)
            password = self._reset_admin()
        self.stdout.write(f"PGI_DEMO_MERCHANT={merchant.code}")
        self.stdout.write(f"PGI_DEMO_MERCHANT_KEY={merchant_key}")
        self.stdout.write(f"PGI_DEMO_PLATFORM_KEY={platform_key}")
        self.stdout.write(f"PGI_ADMIN_USER={ADMIN_USERNAME}")
        self.stdout.write(f"PGI_ADMIN_PASSWORD={password}")

    @staticmethod
    def _rotate_key(*, name: str, merchant: Merchant | None) -> str:
        earlier = ApiKey.objects.filter(name=name, merchant=merchant, is_platform=merchant is None, revoked_at=None)
        for api_key in earlier:
            api_key_revoke(api_key=api_key)
        _, full_key = api_key_create(name=name, merchant=merchant)
        return full_key

    @staticmethod
    def _reset_admin() -> str:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=ADMIN_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
        # The new password must work at once, even if earlier runs left the login locked.
        login_lockout_reset(username=ADMIN_USERNAME)
        return password
