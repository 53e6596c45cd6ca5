"""`manage.py create_finance_user`: finance users without admin access, and `make run`'s demo user."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("create_finance_user", *args, stdout=out)
    return out.getvalue()


def test_a_new_user_joins_finance_without_admin_access_and_can_use_the_ui(monkeypatch, django_user_model):
    monkeypatch.setenv("PGI_FINANCE_PASSWORD", "ledger-balance-2026")

    assert "Created fiona (admin access: no)" in run("fiona", "--email", "fiona@bank.example")

    user = django_user_model.objects.get(username="fiona")
    assert not user.is_staff and not user.is_superuser
    assert user.has_perm("settlements.use_finance_ui")
    client = Client()
    assert client.post(reverse("finance:login"), {"username": "fiona", "password": "ledger-balance-2026"}).status_code == 302
    assert client.get(reverse("finance:dashboard")).status_code == 200


def test_an_existing_user_keeps_its_password_and_admin_access(monkeypatch, django_user_model):
    monkeypatch.delenv("PGI_FINANCE_PASSWORD", raising=False)
    django_user_model.objects.create_user("sam", password="kept-password-77", is_staff=True)

    assert "Added to Finance: sam (admin access: yes)" in run("sam")

    sam = django_user_model.objects.get(username="sam")
    assert sam.check_password("kept-password-77") and sam.groups.filter(name="Finance").exists()


def test_a_weak_password_is_refused_and_nothing_is_created(monkeypatch, django_user_model):
    monkeypatch.setenv("PGI_FINANCE_PASSWORD", "1234")
    with pytest.raises(CommandError, match="too short"):
        run("weak")
    assert not django_user_model.objects.filter(username="weak").exists()


def test_without_a_terminal_or_password_it_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("PGI_FINANCE_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="PGI_FINANCE_PASSWORD"):
        run("nobody")


def test_the_demo_user_keeps_its_password_across_runs(settings, tmp_path, django_user_model):
    settings.VAR_DIR = tmp_path
    settings.PGI_SANDBOX = True
    first = dict(line.split("=", 1) for line in run("--demo").split())
    second = dict(line.split("=", 1) for line in run("--demo").split())

    assert first == second and first["PGI_FINANCE_USER"] == "finance"
    user = django_user_model.objects.get(username="finance")
    assert user.check_password(first["PGI_FINANCE_PASSWORD"]) and not user.is_staff
    assert "PGI_FINANCE_PASSWORD=" in (tmp_path / "demo-credentials.env").read_text()


def test_the_demo_user_is_for_the_sandbox_only(settings):
    settings.PGI_SANDBOX = False
    with pytest.raises(CommandError, match="sandbox only"):
        run("--demo")


def test_demo_setup_rewriting_the_credentials_keeps_the_finance_user(settings, tmp_path, django_user_model):
    settings.VAR_DIR = tmp_path
    settings.PGI_SANDBOX = True
    call_command("demo_setup", stdout=StringIO())
    finance = dict(line.split("=", 1) for line in run("--demo").split())
    path = tmp_path / "demo-credentials.env"
    # The admin password no longer valid: demo_setup issues a new one and rewrites the file.
    path.write_text(path.read_text().replace("PGI_ADMIN_PASSWORD=", "PGI_ADMIN_PASSWORD=stale"))

    call_command("demo_setup", stdout=StringIO())

    saved = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert "stale" not in saved["PGI_ADMIN_PASSWORD"]
    assert (saved["PGI_FINANCE_USER"], saved["PGI_FINANCE_PASSWORD"]) == ("finance", finance["PGI_FINANCE_PASSWORD"])
