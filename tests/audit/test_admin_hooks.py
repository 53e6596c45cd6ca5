"""Add, change and delete in the admin, for every model admin: recorded with who, from where and
the fields before and after, secrets never by value, in the transaction of the change."""

import json
import secrets

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import DatabaseError
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from gateways.models import GatewayRoute
from pgi.merchants.models import ApiKey, Merchant
from settlements.models import FeePlan
from tests.factories import MerchantFactory

from .conftest import events

pytestmark = pytest.mark.django_db


def merchant_form(**extra) -> dict:
    return {
        "code": "shop-3", "name": "Shop Three", "is_active": "on", "settlement_iban": "", "settlement_bic": "",
        "currencies-TOTAL_FORMS": "1", "currencies-INITIAL_FORMS": "0",
        "currencies-0-currency": "EUR", "currencies-0-max_amount": "",
        "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
        "gateway_routes-TOTAL_FORMS": "0", "gateway_routes-INITIAL_FORMS": "0",
        **extra,
    }  # fmt: skip


def test_adding_a_merchant_records_it_with_its_currencies_who_and_from_where(admin_client, admin_user):
    response = admin_client.post(reverse("admin:merchants_merchant_add"), merchant_form(), REMOTE_ADDR="198.51.100.4")

    assert response.status_code == 302
    merchant = Merchant.objects.get(code="shop-3")
    [added] = events(object_type="merchants.merchant")
    assert (added.action, added.object_id, added.via) == ("add", str(merchant.pk), "admin")
    assert (added.actor_id, added.actor_username, added.source_ip) == (admin_user.pk, "admin", "198.51.100.4")
    assert added.before is None
    assert added.after["code"] == "shop-3" and added.after["name"] == "Shop Three"
    assert [c["currency"] for c in added.after["merchants.merchantcurrency"]] == ["EUR"]


def test_the_address_is_the_one_the_login_lockout_believes_behind_proxies(admin_client, settings):
    settings.PGI_PROXY_COUNT = 1
    admin_client.post(
        reverse("admin:merchants_merchant_add"), merchant_form(),
        REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.50",
    )  # fmt: skip

    [added] = events(object_type="merchants.merchant")
    assert added.source_ip == "203.0.113.50"


def test_a_route_added_on_the_merchant_page_is_recorded_before_and_after(admin_client):
    merchant = MerchantFactory(code="shop-3", name="Shop Three")
    data = merchant_form(**{
        "currencies-TOTAL_FORMS": "0",
        "gateway_routes-TOTAL_FORMS": "1", "gateway_routes-0-currency": "", "gateway_routes-0-priority": "1",
        "gateway_routes-0-gateway": "simulator", "gateway_routes-0-is_active": "on",
    })  # fmt: skip
    data.pop("code")

    response = admin_client.post(reverse("admin:merchants_merchant_change", args=[merchant.pk]), data)

    assert response.status_code == 302
    route = GatewayRoute.objects.get(merchant=merchant)
    [changed] = events(object_type="merchants.merchant", action="change")
    assert changed.before == {"gateways.gatewayroute": []}
    [recorded] = changed.after["gateways.gatewayroute"]
    assert {k: recorded[k] for k in ("id", "currency", "priority", "gateway", "is_active")} == {
        "id": route.pk, "currency": "", "priority": 1, "gateway": "simulator", "is_active": True
    }


def test_saving_without_a_change_records_nothing(admin_client):
    merchant = MerchantFactory(code="shop-3", name="Shop Three", currencies=[])
    data = merchant_form(**{"currencies-TOTAL_FORMS": "0"})
    data.pop("code")

    assert admin_client.post(reverse("admin:merchants_merchant_change", args=[merchant.pk]), data).status_code == 302

    assert events() == []


def test_an_api_key_issued_in_the_admin_is_recorded_without_its_hash(admin_client, merchant):
    form = {"name": "till", "merchant": merchant.pk, "issue_token": secrets.token_urlsafe(16)}

    response = admin_client.post(reverse("admin:merchants_apikey_add"), form)

    assert response.status_code == 200  # the page that shows the key once
    api_key = ApiKey.objects.get(name="till")
    [added] = events(object_type="merchants.apikey")
    assert added.action == "add" and added.after["prefix"] == api_key.prefix
    assert added.after["key_hash"] == "[secret]"
    assert api_key.key_hash not in json.dumps(added.after)


def test_revoking_keys_in_the_admin_is_recorded_per_key(admin_client, merchant):
    from pgi.merchants.services import api_key_create

    keys = [api_key_create(name=f"k{i}", merchant=merchant)[0] for i in range(2)]

    admin_client.post(
        reverse("admin:merchants_apikey_changelist"), {"action": "revoke_keys", "_selected_action": [k.pk for k in keys]}
    )

    revoked = events(action="api_key.revoke")
    assert sorted(e.object_id for e in revoked) == sorted(str(k.pk) for k in keys)
    assert all(e.actor_username == "admin" and e.before == {"revoked_at": None} for e in revoked)


def test_rotating_a_key_in_the_admin_is_recorded_with_its_successor_and_the_old_keys_expiry(admin_client, merchant):
    from pgi.merchants.services import api_key_create

    old, _ = api_key_create(name="till", merchant=merchant)

    response = admin_client.post(
        reverse("admin:merchants_apikey_changelist"),
        {"action": "rotate_keys", "_selected_action": [old.pk], "apply": "yes", "grace_hours": "2"},
    )

    assert response.status_code == 200
    new = ApiKey.objects.get(rotated_from=old)
    [rotated] = events(action="api_key.rotate")
    assert (rotated.object_id, rotated.actor_username, rotated.via) == (str(old.pk), "admin", "admin")
    assert rotated.before == {"expires_at": None}
    assert rotated.after["successor"] == new.prefix and rotated.after["expires_at"]


def test_rotating_a_key_from_the_command_line_is_recorded_as_the_command(merchant):
    from django.core.management import call_command

    from pgi.merchants.services import api_key_create

    old, _ = api_key_create(name="till", merchant=merchant)

    call_command("rotate_api_key", old.prefix, "--grace-hours", "1", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))

    [rotated] = events(action="api_key.rotate")
    assert rotated.via == "command:rotate_api_key"
    assert rotated.after["successor"] == ApiKey.objects.get(rotated_from=old).prefix


def test_a_fee_plan_is_recorded_with_its_currencies(admin_client, merchant):
    data = {
        "merchant": merchant.pk, "basis_points": "140",
        "currencies-TOTAL_FORMS": "1", "currencies-INITIAL_FORMS": "0",
        "currencies-0-currency": "USD", "currencies-0-fixed": "0.30", "currencies-0-minimum": "",
    }  # fmt: skip
    assert admin_client.post(reverse("admin:settlements_feeplan_add"), data).status_code == 302
    plan = FeePlan.objects.get()
    line = plan.currencies.get()
    change = {
        "merchant": merchant.pk, "basis_points": "150",
        "currencies-TOTAL_FORMS": "1", "currencies-INITIAL_FORMS": "1", "currencies-0-id": line.pk,
        "currencies-0-plan": plan.pk, "currencies-0-currency": "USD", "currencies-0-fixed": "0.35",
        "currencies-0-minimum": "",
    }  # fmt: skip

    assert admin_client.post(reverse("admin:settlements_feeplan_change", args=[plan.pk]), change).status_code == 302

    added, changed = events(object_type="settlements.feeplan")
    assert added.after["basis_points"] == 140 and added.after["settlements.feeplancurrency"][0]["fixed"] == "0.3000"
    assert changed.before["basis_points"] == 140 and changed.after["basis_points"] == 150
    assert changed.before["settlements.feeplancurrency"][0]["fixed"] == "0.3000"
    assert changed.after["settlements.feeplancurrency"][0]["fixed"] == "0.3500"


def test_a_password_change_is_recorded_as_changed_never_by_value(admin_client):
    user = User.objects.create_user("teller", password="old-Passw0rd!")
    old_hash = user.password
    url = reverse("admin:auth_user_password_change", args=[user.pk])

    response = admin_client.post(url, {"password1": "n3w-Passw0rd!", "password2": "n3w-Passw0rd!", "usable_password": "true"})

    assert response.status_code == 302
    user.refresh_from_db()
    [changed] = events(object_type="auth.user")
    assert changed.before == {"password": "[secret]"} and changed.after == {"password": "[secret, changed]"}
    text = json.dumps([changed.before, changed.after])
    assert old_hash not in text and user.password not in text


def test_groups_and_their_permissions_are_recorded_added_changed_and_deleted(admin_client):
    view = Permission.objects.get(codename="view_payment")
    add = admin_client.post(reverse("admin:auth_group_add"), {"name": "Tellers", "permissions": [view.pk]})
    assert add.status_code == 302
    group = Group.objects.get(name="Tellers")
    delete = admin_client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert delete.status_code == 302

    added, deleted = events(object_type="auth.group")
    assert added.action == "add" and added.after["permissions"] == [str(view)]
    assert deleted.action == "delete" and deleted.before["name"] == "Tellers" and deleted.after is None


def test_deleting_selected_rows_records_each_in_the_same_transaction(admin_client):
    groups = [Group.objects.create(name=name) for name in ("A", "B")]

    admin_client.post(
        reverse("admin:auth_group_changelist"),
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )

    assert not Group.objects.filter(pk__in=[g.pk for g in groups]).exists()
    assert sorted(e.before["name"] for e in events(action="delete")) == ["A", "B"]


@pytest.fixture
def periodic_task(db):
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    return PeriodicTask.objects.create(name="audit-test", task="pgi.events.tasks.events_prune", interval=every)


def test_switching_a_periodic_task_off_and_on_is_recorded(admin_client, periodic_task):
    url = reverse("admin:django_celery_beat_periodictask_changelist")

    admin_client.post(url, {"action": "disable_tasks", "_selected_action": [periodic_task.pk]})
    admin_client.post(url, {"action": "enable_tasks", "_selected_action": [periodic_task.pk]})

    off, on = events(object_type="django_celery_beat.periodictask")
    assert (off.before, off.after) == ({"enabled": True}, {"enabled": False})
    assert (on.before, on.after) == ({"enabled": False}, {"enabled": True})


def test_a_schedule_edited_on_its_page_is_recorded(admin_client, periodic_task):
    interval = periodic_task.interval
    url = reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk])

    assert admin_client.post(url, {
        "every": "30", "period": "minutes", "periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0",
    }).status_code == 302

    [changed] = events(object_type="django_celery_beat.intervalschedule")
    assert (changed.before, changed.after) == ({"every": 10}, {"every": 30})


def test_a_change_whose_event_cannot_be_written_is_not_saved(admin_client, audit_insert_fails):
    merchant = MerchantFactory(code="shop-3", name="Shop Three", currencies=[])
    data = merchant_form(**{"currencies-TOTAL_FORMS": "0", "name": "Renamed"})
    data.pop("code")

    with pytest.raises(DatabaseError, match="audit insert refused"):
        admin_client.post(reverse("admin:merchants_merchant_change", args=[merchant.pk]), data)

    assert Merchant.objects.get(pk=merchant.pk).name == "Shop Three"
