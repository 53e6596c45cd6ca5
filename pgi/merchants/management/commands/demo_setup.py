"""The demo data behind `make run`: merchant456, its API keys and an admin with a password.

Idempotent. The merchant is created once. The demo credentials (the merchant key, the platform key,
the admin password) are kept in PGI_VAR_DIR/demo-credentials.env, readable by its owner only, so
that saved scripts keep working across restarts of the same var directory; a saved credential that
no longer works (revoked, another database, a changed password) is replaced. Without the file
(`make clean`) every credential is new and the earlier demo keys are revoked. Keys issued any other
way (create_api_key, the admin) stay show-once: only these demo ones are kept on disk.
"""

import os
import secrets
from pathlib import Path

from axes.utils import reset as login_lockout_reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from pgi.merchants.models import ApiKey, Merchant
from pgi.merchants.scopes import ALL_SCOPES
from pgi.merchants.selectors import api_key_get_active
from pgi.merchants.services import api_key_create, api_key_revoke, merchant_create

MERCHANT_CODE = "merchant456"
MERCHANT_NAME = "Demo Merchant"
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "KWD"]
MERCHANT_KEY_NAME = "demo"
PLATFORM_KEY_NAME = "demo-platform"
ADMIN_USERNAME = "admin"
CREDENTIALS_FILE = "demo-credentials.env"


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / CREDENTIALS_FILE


def credentials_read(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of the file; empty when it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def credentials_write(path: Path, values: dict[str, str]) -> None:
    """Replace the file at once, created owner-only (0600): it holds working secrets."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # O_CREAT's mode is narrowed by umask, never widened: make sure
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write("# PGI demo credentials of `make run`; delete this file (or `make clean`) for new ones.\n")
            file.writelines(f"{name}={value}\n" for name, value in values.items())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = (
        "Create the demo merchant merchant456 if missing, and keep its demo keys and the sandbox's break-glass "
        "superuser 'admin''s password in PGI_VAR_DIR/demo-credentials.env (0600), issuing new ones only when "
        "missing or no longer valid. Prints KEY=VALUE lines. Staff of a bank work under roles instead "
        "(manage.py grant_role)."
    )

    def handle(self, *args, **options):
        path = credentials_path()
        saved = credentials_read(path)
        with transaction.atomic():
            merchant = Merchant.objects.filter(code=MERCHANT_CODE).first()
            if merchant is None:
                merchant = merchant_create(code=MERCHANT_CODE, name=MERCHANT_NAME, currencies=CURRENCIES)
            merchant_key = self._key(saved.get("PGI_DEMO_MERCHANT_KEY", ""), name=MERCHANT_KEY_NAME, merchant=merchant)
            platform_key = self._key(saved.get("PGI_DEMO_PLATFORM_KEY", ""), name=PLATFORM_KEY_NAME, merchant=None)
            password = self._admin(saved.get("PGI_ADMIN_PASSWORD", ""))
        values = {
            "PGI_DEMO_MERCHANT": merchant.code,
            "PGI_DEMO_MERCHANT_KEY": merchant_key,
            "PGI_DEMO_PLATFORM_KEY": platform_key,
            "PGI_ADMIN_USER": ADMIN_USERNAME,
            "PGI_ADMIN_PASSWORD": password,
        }
        if values != {name: saved.get(name) for name in values}:
            credentials_write(path, {**saved, **values})  # other demo users' lines stay (create_finance_user --demo)
        for name, value in values.items():
            self.stdout.write(f"{name}={value}")
        self.stdout.write(f"PGI_DEMO_CREDENTIALS_FILE={path}")

    @staticmethod
    def _key(saved: str, *, name: str, merchant: Merchant | None) -> str:
        """The saved key when it is still this demo key and active; otherwise a new one. Every other
        active demo key of this name is revoked."""
        kept = api_key_get_active(full_key=saved) if saved else None
        if kept is not None and (kept.name, kept.merchant_id, kept.is_platform) != (name, getattr(merchant, "pk", None), merchant is None):
            kept = None
        earlier = ApiKey.objects.filter(name=name, merchant=merchant, is_platform=merchant is None, revoked_at=None)
        for api_key in earlier.exclude(pk=getattr(kept, "pk", None)):
            api_key_revoke(api_key=api_key)
        if kept is not None:
            return saved
        # Every scope: the demo keys try every operation of the API (settlements too).
        _, full_key = api_key_create(name=name, merchant=merchant, scopes=ALL_SCOPES)
        return full_key

    @staticmethod
    def _admin(saved: str) -> str:
        """The saved password when it still signs 'admin' in; otherwise a new one. Either way the
        account is an active superuser and any lockout of its login is lifted."""
        user, _ = get_user_model().objects.get_or_create(username=ADMIN_USERNAME)
        password = saved if saved and user.check_password(saved) else secrets.token_urlsafe(12)
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        if password != saved:
            user.set_password(password)
        user.save()
        # The password must work at once, even if earlier runs left the login locked.
        login_lockout_reset(username=ADMIN_USERNAME)
        return password
