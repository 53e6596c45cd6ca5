"""A user of the finance web UI (/finance/): a member of the `Finance` group, without admin access.

    manage.py create_finance_user fiona --email fiona@bank.example    asks for the password twice
    PGI_FINANCE_PASSWORD=… manage.py create_finance_user fiona         takes it from the environment
    manage.py create_finance_user sam                                  an existing user joins Finance
    PGI_SANDBOX=true manage.py create_finance_user --demo              `make run`'s demo user `finance`

An existing user keeps its password unless one is given, and its admin access (is_staff) as it was:
joining Finance grants no admin access (`manage.py grant_role NAME Finance` does: the admin's
settlement actions and fee plans are Finance's too, pgi/staff/roles.py). `--demo` (sandbox only) keeps the demo password in
PGI_VAR_DIR/demo-credentials.env beside demo_setup's credentials and prints KEY=VALUE lines.
"""

import getpass
import os
import secrets

from axes.utils import reset as login_lockout_reset
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.audit.snapshot import changes, fields_of, shown
from pgi.merchants.management.commands.demo_setup import (
    credentials_path,
    credentials_read,
    credentials_write,
)
from settlements.finance.services import finance_group_ensure

DEMO_USERNAME = "finance"


class Command(BaseCommand):
    help = (
        "Create a finance UI user (member of the Finance group, the Finance staff role, without admin access), "
        "or add an existing user to Finance. For the admin's settlement work too: manage.py grant_role NAME Finance. "
        "Superusers are for break-glass only, not for finance work."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the user's name (not with --demo)")
        parser.add_argument("--email", default="", help="the new user's email address")
        parser.add_argument(
            "--demo", action="store_true",
            help="the sandbox's demo user `finance`, its password kept in PGI_VAR_DIR/demo-credentials.env",
        )

    def handle(self, *args, username=None, email="", demo=False, **options):
        group = finance_group_ensure()
        if demo:
            return self._demo(group)
        if not username:
            raise CommandError("Give a username (or --demo in the sandbox).")
        user = get_user_model().objects.filter(username=username).first()
        password = os.environ.get("PGI_FINANCE_PASSWORD") or (self._ask() if user is None else None)
        with transaction.atomic():
            before = None if user is None else fields_of(user)
            if user is None:
                user = get_user_model()(username=username, email=email, is_staff=False)
            if password is not None:
                try:
                    password_validation.validate_password(password, user)
                except ValidationError as exc:
                    raise CommandError(" ".join(exc.messages)) from exc
                user.set_password(password)
            created = user.pk is None
            user.save()
            user.groups.add(group)
            actor = Actor.of_command("create_finance_user")
            if before is None:
                audit_record(actor=actor, action="add", obj=user, after=shown(fields_of(user)))
            elif (difference := changes(before, fields_of(user)))[1]:
                audit_record(actor=actor, action="change", obj=user, before=difference[0], after=difference[1])
        verb = "Created" if created else "Added to Finance:"
        self.stdout.write(f"{verb} {user.get_username()} (admin access: {'yes' if user.is_staff else 'no'}). Sign in at /finance/login")

    def _ask(self) -> str:
        if not os.isatty(0):
            raise CommandError("No terminal to ask for the password: set PGI_FINANCE_PASSWORD.")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords differ.")
        return first

    def _demo(self, group: Group) -> None:
        """The saved password when it still signs `finance` in; otherwise a new one."""
        if not settings.PGI_SANDBOX:
            raise CommandError("--demo is for the sandbox only (PGI_SANDBOX=true).")
        path = credentials_path()
        saved = credentials_read(path)
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
            password = saved.get("PGI_FINANCE_PASSWORD", "")
            if not (password and user.check_password(password)):
                password = secrets.token_urlsafe(12)
                user.set_password(password)
            user.is_active, user.is_staff, user.is_superuser = True, False, False
            user.save()
            user.groups.add(group)
        login_lockout_reset(username=DEMO_USERNAME)
        values = {"PGI_FINANCE_USER": DEMO_USERNAME, "PGI_FINANCE_PASSWORD": password}
        if any(saved.get(name) != value for name, value in values.items()):
            credentials_write(path, {**saved, **values})
        for name, value in values.items():
            self.stdout.write(f"{name}={value}")
