"""API key expiry (401 API_KEY_EXPIRED) and rotation without downtime: the new key works at once,
the old one through its grace period and not after."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from pgi.errors import Conflict, ValidationFailed
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_create, api_key_revoke, api_key_rotate, api_key_update

from ..api.helpers import assert_error
from ..conftest import client_for

pytestmark = pytest.mark.django_db

PAYMENTS_URL = "/v1/payments"
KEY_SHAPE = re.compile(r"pgi_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def no_tombstones(monkeypatch):
    """Rows created by the test are cached at their first read, not two seconds later."""
    monkeypatch.setattr("pgi.lookups.TOMBSTONE_SECONDS", 0)


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() moved forward on demand: `clock.advance(hours=25)`."""

    class Clock:
        offset = timedelta(0)

        def advance(self, **delta):
            self.offset += timedelta(**delta)

    clock, real_now = Clock(), timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + clock.offset)
    return clock


def test_a_key_past_its_expiry_gets_401_api_key_expired_with_the_bearer_challenge(merchant):
    _, full_key = api_key_create(name="old", merchant=merchant, expires_at=timezone.now() - timedelta(seconds=1))

    response = client_for(full_key).get(PAYMENTS_URL)

    error = assert_error(response, 401, "API_KEY_EXPIRED")
    assert "expired at" in error["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pgi"'


def test_an_expired_key_with_a_wrong_secret_is_only_unauthenticated(merchant):
    _, full_key = api_key_create(name="old", merchant=merchant, expires_at=timezone.now() - timedelta(seconds=1))

    response = client_for(full_key[:-4] + "AAAA").get(PAYMENTS_URL)

    assert_error(response, 401, "UNAUTHENTICATED")  # nothing is told about a key the caller cannot prove to hold


def test_a_cached_key_is_refused_once_its_expiry_passes_without_any_edit(no_tombstones, merchant, clock):
    _, full_key = api_key_create(name="soon", merchant=merchant, expires_at=timezone.now() + timedelta(hours=1))
    client = client_for(full_key)
    assert client.get(PAYMENTS_URL).status_code == 200  # cached now, with its expiry

    clock.advance(hours=1, seconds=1)

    assert_error(client.get(PAYMENTS_URL), 401, "API_KEY_EXPIRED")


def test_an_expiry_set_by_staff_is_seen_by_the_next_request(no_tombstones, merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert client.get(PAYMENTS_URL).status_code == 200

    api_key_update(
        api_key=api_key, name=api_key.name, scopes=api_key.scopes, expires_at=timezone.now(), rate_limit=""
    )

    assert_error(client.get(PAYMENTS_URL), 401, "API_KEY_EXPIRED")


def test_rotation_keeps_both_keys_working_during_the_grace_and_only_the_new_one_after(no_tombstones, merchant, clock):
    old, old_key = api_key_create(
        name="checkout", merchant=merchant, scopes=["payments:read", "refunds:read"], rate_limit="100/min"
    )
    old_client = client_for(old_key)
    assert old_client.get(PAYMENTS_URL).status_code == 200  # cached before the rotation

    new, new_key = api_key_rotate(api_key=old, grace=timedelta(hours=24))

    assert (new.name, new.merchant, new.is_platform, new.scopes, new.rate_limit) == (
        "checkout", merchant, False, ["payments:read", "refunds:read"], "100/min"
    )
    assert new.rotated_from == old and new.expires_at is None
    old.refresh_from_db()
    assert timedelta(hours=23, minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=24)
    new_client = client_for(new_key)
    assert old_client.get(PAYMENTS_URL).status_code == 200
    assert new_client.get(PAYMENTS_URL).status_code == 200

    clock.advance(hours=24, seconds=1)

    assert_error(old_client.get(PAYMENTS_URL), 401, "API_KEY_EXPIRED")
    assert new_client.get(PAYMENTS_URL).status_code == 200


def test_rotation_with_no_grace_stops_the_old_key_at_once(no_tombstones, merchant):
    old, old_key = api_key_create(name="leaked", merchant=merchant)
    client = client_for(old_key)
    assert client.get(PAYMENTS_URL).status_code == 200

    api_key_rotate(api_key=old, grace=timedelta(0))

    assert_error(client.get(PAYMENTS_URL), 401, "API_KEY_EXPIRED")


def test_rotation_keeps_an_earlier_expiry_of_the_old_key(merchant):
    soon = timezone.now() + timedelta(hours=1)
    old, _ = api_key_create(name="checkout", merchant=merchant, expires_at=soon)

    api_key_rotate(api_key=old, grace=timedelta(hours=24))

    old.refresh_from_db()
    assert old.expires_at == soon


def test_the_default_grace_is_the_setting(settings, merchant):
    settings.PGI_API_KEY_ROTATION_GRACE_HOURS = 2
    old, _ = api_key_create(name="checkout", merchant=merchant)

    api_key_rotate(api_key=old)

    old.refresh_from_db()
    assert timedelta(hours=1, minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=2)


def test_a_platform_key_rotates_to_a_platform_key(db):
    old, _ = api_key_create(name="tps", merchant=None)

    new, new_key = api_key_rotate(api_key=old)

    assert new.is_platform and new.merchant is None
    assert client_for(new_key).get(PAYMENTS_URL).status_code == 200


@pytest.mark.parametrize(
    ("state", "code"),
    [("rotated", "API_KEY_ALREADY_ROTATED"), ("revoked", "API_KEY_REVOKED"), ("expired", "API_KEY_EXPIRED")],
)
def test_a_key_is_rotated_once_and_never_when_revoked_or_expired(merchant, state, code):
    old, _ = api_key_create(name="checkout", merchant=merchant)
    if state == "rotated":
        api_key_rotate(api_key=old)
    elif state == "revoked":
        api_key_revoke(api_key=old)
    else:
        ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    keys_before = ApiKey.objects.count()

    with pytest.raises(Conflict) as raised:
        api_key_rotate(api_key=old)

    assert raised.value.code == code
    assert ApiKey.objects.count() == keys_before


def test_a_negative_grace_is_refused_and_nothing_changes(merchant):
    old, _ = api_key_create(name="checkout", merchant=merchant)

    with pytest.raises(ValidationFailed):
        api_key_rotate(api_key=old, grace=timedelta(hours=-1))

    old.refresh_from_db()
    assert old.expires_at is None and ApiKey.objects.count() == 1


def test_rotate_api_key_prints_the_new_key_alone_on_the_last_line(merchant):
    old, old_key = api_key_create(name="checkout", merchant=merchant)
    out, err = StringIO(), StringIO()

    call_command("rotate_api_key", old.prefix, "--grace-hours", "1", stdout=out, stderr=err)

    new_key = out.getvalue().strip().splitlines()[-1]
    assert KEY_SHAPE.fullmatch(new_key) and new_key != old_key
    assert ApiKey.objects.get(prefix=new_key.split("_")[1]).rotated_from == old
    assert old.prefix in err.getvalue() and "not shown again" in err.getvalue()
    assert client_for(new_key).get(PAYMENTS_URL).status_code == 200
    assert client_for(old_key).get(PAYMENTS_URL).status_code == 200


def test_rotate_api_key_refuses_an_unknown_prefix_and_a_second_rotation(merchant):
    old, _ = api_key_create(name="checkout", merchant=merchant)
    call_command("rotate_api_key", old.prefix, stdout=StringIO(), stderr=StringIO())

    with pytest.raises(CommandError, match="No API key"):
        call_command("rotate_api_key", "0123456789ab", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="already replaced"):
        call_command("rotate_api_key", old.prefix, stdout=StringIO(), stderr=StringIO())


def test_create_api_key_takes_scopes_an_expiry_and_a_rate_limit(merchant):
    out = StringIO()

    call_command(
        "create_api_key", merchant.code, "--scopes", "settlements:read", "--expires-in-days", "30",
        "--rate-limit", "60/min", stdout=out, stderr=StringIO(),
    )  # fmt: skip

    api_key = ApiKey.objects.get(prefix=out.getvalue().strip().split("_")[1])
    assert api_key.scopes == ["settlements:read"] and api_key.rate_limit == "60/min"
    assert timedelta(days=29) < api_key.expires_at - timezone.now() <= timedelta(days=30)
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", merchant.code, "--scopes", "payments:delete", stdout=StringIO(), stderr=StringIO())


def rotate_in_admin(admin_client, *keys: ApiKey, grace_hours: str | None = "2"):
    data = {"action": "rotate_keys", "_selected_action": [k.pk for k in keys]}
    if grace_hours is not None:
        data.update(apply="yes", grace_hours=grace_hours)
    return admin_client.post(reverse("admin:merchants_apikey_changelist"), data)


def test_the_admin_asks_for_the_grace_then_shows_each_new_key_once(admin_client, merchant):
    old, old_key = api_key_create(name="checkout", merchant=merchant)

    asked = rotate_in_admin(admin_client, old, grace_hours=None)
    assert asked.status_code == 200 and 'name="grace_hours"' in asked.content.decode()
    assert ApiKey.objects.count() == 1

    response = rotate_in_admin(admin_client, old, grace_hours="2")

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    shown = KEY_SHAPE.findall(response.content.decode())
    assert len(set(shown)) == 1 and shown[0] != old_key
    new = ApiKey.objects.get(rotated_from=old)
    assert shown[0].split("_")[1] == new.prefix
    old.refresh_from_db()
    assert timedelta(hours=1, minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=2)
    assert client_for(shown[0]).get(PAYMENTS_URL).status_code == 200
    assert client_for(old_key).get(PAYMENTS_URL).status_code == 200


def test_reposting_the_rotation_issues_no_second_key(admin_client, merchant):
    old, _ = api_key_create(name="checkout", merchant=merchant)
    rotate_in_admin(admin_client, old)

    again = rotate_in_admin(admin_client, old)  # what reloading the page of the new key does

    assert again.status_code == 302
    assert ApiKey.objects.count() == 2
    followed = admin_client.get(again["Location"]).content.decode()
    assert "already replaced" in followed


def test_a_bad_grace_in_the_admin_is_asked_again_and_nothing_changes(admin_client, merchant):
    old, _ = api_key_create(name="checkout", merchant=merchant)

    response = rotate_in_admin(admin_client, old, grace_hours="-1")

    assert response.status_code == 200 and 'name="grace_hours"' in response.content.decode()
    assert ApiKey.objects.count() == 1
    old.refresh_from_db()
    assert old.expires_at is None


@pytest.mark.parametrize("grace", ["nan", "inf", "-1", "100000000"])
def test_the_rotation_command_refuses_a_grace_that_is_no_number_of_hours_and_changes_nothing(merchant, grace):
    old, _ = api_key_create(name="till", merchant=merchant)
    with pytest.raises(CommandError, match="--grace-hours"):
        call_command("rotate_api_key", old.prefix, "--grace-hours", grace)
    old.refresh_from_db()
    assert old.expires_at is None and not ApiKey.objects.filter(rotated_from=old).exists()
