"""Management commands staff run: recorded as command:<name>, by the OS user on its host."""

import getpass
import socket

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from pgi.merchants.models import ApiKey

from .conftest import events

pytestmark = pytest.mark.django_db

RUNNER = f"{getpass.getuser()}@{socket.gethostname()}"


def test_create_merchant_and_create_api_key_are_recorded(capsys):
    call_command("create_merchant", "shop-9", name="Shop Nine", currencies="USD,EUR")
    call_command("create_api_key", "shop-9")

    merchant_added, key_added = events()
    assert (merchant_added.via, merchant_added.actor_username, merchant_added.actor_id) == (
        "command:create_merchant", RUNNER, None
    )
    assert [c["currency"] for c in merchant_added.after["merchants.merchantcurrency"]] == ["USD", "EUR"]
    api_key = ApiKey.objects.get()
    assert (key_added.via, key_added.object_id, key_added.after["key_hash"]) == ("command:create_api_key", str(api_key.pk), "[secret]")
    assert api_key.key_hash not in str(key_added.after) and capsys.readouterr().out.strip() not in str(key_added.after)


def test_create_finance_user_records_the_user_and_a_later_password_change(monkeypatch):
    monkeypatch.setenv("PGI_FINANCE_PASSWORD", "a-Long-passw0rd")
    call_command("create_finance_user", "fiona")
    monkeypatch.setenv("PGI_FINANCE_PASSWORD", "another-Long-passw0rd")
    call_command("create_finance_user", "fiona")

    added, changed = events(object_type="auth.user")
    user = User.objects.get(username="fiona")
    assert added.action == "add" and added.via == "command:create_finance_user"
    assert added.after["password"] == "[secret]" and added.after["groups"] == ["Finance"]
    assert (changed.before, changed.after) == ({"password": "[secret]"}, {"password": "[secret, changed]"})
    assert user.password not in str(added.after) + str(changed.after)
