"""The staff admin for merchants and API keys, on real PostgreSQL."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from pgi.merchants.keys import hash_key
from pgi.merchants.models import ApiKey, Merchant, MerchantCurrency
from pgi.merchants.scopes import DEFAULT_SCOPES
from pgi.merchants.services import api_key_create
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

KEY_SHAPE = re.compile(r"pgi_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def issue_form(admin_client, **data):
    """GET the add form (for its one-time token), then POST it with `data` and, as a browser does,
    the scopes ticked on it unless `data` says otherwise."""
    add_url = reverse("admin:merchants_apikey_add")
    page = admin_client.get(add_url)
    form = page.context["adminform"].form
    return admin_client.post(add_url, {"issue_token": form["issue_token"].value(), "scopes": form["scopes"].value(), **data})


def test_merchant_changelist_and_change_page_render_with_currencies_and_keys(admin_client, merchant):
    api_key_create(name="checkout", merchant=merchant)

    listing = admin_client.get(reverse("admin:merchants_merchant_changelist"))
    page = admin_client.get(reverse("admin:merchants_merchant_change", args=[merchant.pk]))

    assert listing.status_code == 200
    assert b"merchant456" in listing.content
    assert page.status_code == 200
    html = page.content.decode()
    assert "accepted currencies" in html.lower()
    assert 'name="currencies-0-max_amount"' in html
    assert "checkout" in html  # the key, listed read-only
    assert 'name="api_keys-0-name"' not in html
    assert reverse("admin:merchants_apikey_add") + f"?merchant={merchant.pk}" in html


def test_merchant_search_by_code_and_name_and_active_filter(admin_client, merchant, other_merchant):
    Merchant.objects.filter(pk=other_merchant.pk).update(is_active=False)
    url = reverse("admin:merchants_merchant_changelist")

    by_code = admin_client.get(url, {"q": "merchant789"})
    by_name = admin_client.get(url, {"q": "Demo Shop"})
    active = admin_client.get(url, {"is_active__exact": "1"})

    assert list(by_code.context["cl"].result_list) == [other_merchant]
    assert list(by_name.context["cl"].result_list) == [merchant]
    assert list(active.context["cl"].result_list) == [merchant]


def test_merchant_is_added_with_currency_limits_and_its_code_cannot_change(admin_client):
    response = admin_client.post(
        reverse("admin:merchants_merchant_add"),
        {
            "code": "shop-1",
            "name": "Shop One",
            "is_active": "on",
            "currencies-TOTAL_FORMS": "2",
            "currencies-INITIAL_FORMS": "0",
            "currencies-0-currency": "usd",
            "currencies-0-max_amount": "500.00",
            "currencies-1-currency": "JPY",
            "currencies-1-max_amount": "",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
            "gateway_routes-TOTAL_FORMS": "0",
            "gateway_routes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    merchant = Merchant.objects.get(code="shop-1")
    limits = dict(MerchantCurrency.objects.filter(merchant=merchant).values_list("currency", "max_amount"))
    assert limits == {"USD": Decimal("500.00"), "JPY": None}

    change = admin_client.get(reverse("admin:merchants_merchant_change", args=[merchant.pk]))
    assert 'name="code"' not in change.content.decode()


def test_merchant_currency_must_be_iso_4217_with_a_limit_in_its_digits(admin_client):
    response = admin_client.post(
        reverse("admin:merchants_merchant_add"),
        {
            "code": "shop-2",
            "name": "Shop Two",
            "currencies-TOTAL_FORMS": "2",
            "currencies-INITIAL_FORMS": "0",
            "currencies-0-currency": "XYZ",
            "currencies-1-currency": "JPY",
            "currencies-1-max_amount": "100.5",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
            "gateway_routes-TOTAL_FORMS": "0",
            "gateway_routes-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Not an ISO 4217 currency" in html
    assert "JPY allows at most 0 decimal places" in html
    assert not Merchant.objects.filter(code="shop-2").exists()


def test_merchants_cannot_be_deleted(admin_client, merchant):
    response = admin_client.get(reverse("admin:merchants_merchant_delete", args=[merchant.pk]))

    assert response.status_code == 403


def test_api_key_changelist_lists_keys_without_their_hash(admin_client, merchant):
    api_key, _ = api_key_create(name="checkout", merchant=merchant)
    platform, _ = api_key_create(name="tps", merchant=None)

    response = admin_client.get(reverse("admin:merchants_apikey_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    assert api_key.prefix in html and platform.prefix in html
    assert "platform (any merchant)" in html
    assert api_key.key_hash not in html and platform.key_hash not in html


def test_api_key_filters_and_search(admin_client, merchant, other_merchant):
    own, _ = api_key_create(name="checkout", merchant=merchant)
    other, _ = api_key_create(name="pos", merchant=other_merchant)
    platform, _ = api_key_create(name="tps", merchant=None)
    ApiKey.objects.filter(pk=other.pk).update(revoked_at="2026-01-01T00:00:00Z")
    url = reverse("admin:merchants_apikey_changelist")

    def found(**params):
        return set(admin_client.get(url, params).context["cl"].result_list)

    assert found(q=own.prefix) == {own}
    assert found(q="merchant789") == {other}
    assert found(q="tps") == {platform}
    assert found(state="revoked") == {other}
    assert found(state="active") == {own, platform}
    assert found(kind="merchant") == {own, other}
    assert found(kind="platform") == {platform}


def test_adding_a_key_shows_it_once_stores_only_its_hash_and_it_authenticates(admin_client, merchant):
    response = issue_form(admin_client, name="shop-frontend", merchant=merchant.pk)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = KEY_SHAPE.findall(response.content.decode())
    assert len(set(shown)) == 1
    full_key = shown[0]
    api_key = ApiKey.objects.get(name="shop-frontend")
    assert api_key.merchant == merchant and not api_key.is_platform
    assert full_key.split("_")[1] == api_key.prefix
    assert api_key.key_hash == hash_key(full_key)
    assert full_key not in {str(getattr(api_key, f.attname)) for f in ApiKey._meta.concrete_fields}

    # Never again: not on the key's page, not in the list.
    change = admin_client.get(reverse("admin:merchants_apikey_change", args=[api_key.pk]))
    listing = admin_client.get(reverse("admin:merchants_apikey_changelist"))
    assert full_key not in change.content.decode() and full_key not in listing.content.decode()
    assert api_key.key_hash not in change.content.decode()

    assert client_for(full_key).get("/v1/payments").status_code == 200


def test_a_platform_key_is_issued_from_the_admin(admin_client):
    response = issue_form(admin_client, name="tps", is_platform="on")

    full_key = KEY_SHAPE.search(response.content.decode()).group()
    api_key = ApiKey.objects.get(name="tps")
    assert api_key.is_platform and api_key.merchant is None
    assert client_for(full_key).get("/v1/payments").status_code == 200


def test_reposting_the_same_add_form_does_not_issue_a_second_key(admin_client, merchant):
    add_url = reverse("admin:merchants_apikey_add")
    token = admin_client.get(add_url).context["adminform"].form["issue_token"].value()
    data = {"issue_token": token, "name": "checkout", "merchant": merchant.pk}

    first = admin_client.post(add_url, data)
    again = admin_client.post(add_url, data)  # what reloading the confirmation page does

    assert first.status_code == 200 and KEY_SHAPE.search(first.content.decode())
    assert again.status_code == 200 and not KEY_SHAPE.search(again.content.decode())
    assert "already issued a key" in again.content.decode()
    assert ApiKey.objects.filter(name="checkout").count() == 1


@pytest.mark.parametrize(
    "owner, message",
    [({}, "Choose the merchant"), ({"is_platform": "on", "merchant": "MERCHANT"}, "not both")],
)
def test_a_key_needs_exactly_one_owner(admin_client, merchant, owner, message):
    owner = {k: (merchant.pk if v == "MERCHANT" else v) for k, v in owner.items()}

    response = issue_form(admin_client, name="checkout", **owner)

    assert message in response.content.decode()
    assert not ApiKey.objects.exists()


def test_only_the_name_scopes_expiry_and_rate_limit_of_a_key_can_be_edited(admin_client, merchant, other_merchant):
    api_key, _ = api_key_create(name="checkout", merchant=merchant)
    before = ApiKey.objects.values().get(pk=api_key.pk)
    url = reverse("admin:merchants_apikey_change", args=[api_key.pk])

    form_html = admin_client.get(url).content.decode()
    response = admin_client.post(
        url,
        {
            "name": "web-checkout",
            "scopes": api_key.scopes,
            "expires_at_0": "",
            "expires_at_1": "",
            "rate_limit": "",
            "merchant": other_merchant.pk,
            "is_platform": "on",
            "prefix": "000000000000",
            "key_hash": "0" * 64,
            "revoked_at": "",
        },
    )

    assert response.status_code == 302
    after = ApiKey.objects.values().get(pk=api_key.pk)
    assert after == {**before, "name": "web-checkout"}
    for field in ("merchant", "is_platform", "prefix", "key_hash", "rotated_from"):
        assert f'name="{field}"' not in form_html


def test_keys_cannot_be_deleted(admin_client, merchant):
    api_key, _ = api_key_create(name="checkout", merchant=merchant)

    assert admin_client.get(reverse("admin:merchants_apikey_delete", args=[api_key.pk])).status_code == 403
    response = admin_client.post(
        reverse("admin:merchants_apikey_changelist"),
        {"action": "delete_selected", "_selected_action": [api_key.pk]},
    )
    assert ApiKey.objects.filter(pk=api_key.pk).exists()
    assert response.status_code in (200, 302)


def test_revoke_action_revokes_the_selected_keys_and_they_get_401(admin_client, merchant):
    revoked, revoked_secret = api_key_create(name="old", merchant=merchant)
    kept, kept_secret = api_key_create(name="current", merchant=merchant)
    assert client_for(revoked_secret).get("/v1/payments").status_code == 200

    response = admin_client.post(
        reverse("admin:merchants_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [revoked.pk]},
        follow=True,
    )

    assert "Revoked 1 key." in response.content.decode()
    revoked.refresh_from_db()
    kept.refresh_from_db()
    assert revoked.revoked_at is not None and kept.revoked_at is None
    denied = client_for(revoked_secret).get("/v1/payments")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "UNAUTHENTICATED"
    assert client_for(kept_secret).get("/v1/payments").status_code == 200


def test_revoking_twice_keeps_the_first_revocation_time(admin_client, merchant):
    api_key, _ = api_key_create(name="old", merchant=merchant)
    url = reverse("admin:merchants_apikey_changelist")
    admin_client.post(url, {"action": "revoke_keys", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    first = api_key.revoked_at

    response = admin_client.post(url, {"action": "revoke_keys", "_selected_action": [api_key.pk]}, follow=True)

    api_key.refresh_from_db()
    assert api_key.revoked_at == first
    assert "1 already revoked" in response.content.decode()


def route_form(**route) -> dict:
    form = {
        "code": "shop-3",
        "name": "Shop Three",
        "is_active": "on",
        "currencies-TOTAL_FORMS": "0",
        "currencies-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "gateway_routes-TOTAL_FORMS": "1",
        "gateway_routes-INITIAL_FORMS": "0",
    }
    form.update({f"gateway_routes-0-{name}": value for name, value in route.items()})
    return form


def test_gateway_routes_are_edited_inline_on_the_merchant(admin_client, settings):
    from gateways.models import GatewayRoute

    settings.PGI_GATEWAYS = {**settings.PGI_GATEWAYS, "simulator_b": settings.PGI_GATEWAYS["simulator"]}
    response = admin_client.post(
        reverse("admin:merchants_merchant_add"),
        route_form(currency="eur", priority="2", gateway="simulator_b", is_active="on"),
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    route = GatewayRoute.objects.get(merchant__code="shop-3")
    assert (route.currency, route.priority, route.gateway, route.is_active) == ("EUR", 2, "simulator_b", True)


@pytest.mark.parametrize(
    "route, message",
    [
        ({"currency": "", "priority": "1", "gateway": "nosuchgateway"}, "Select a valid choice"),
        ({"currency": "XYZ", "priority": "1", "gateway": "simulator"}, "Not an ISO 4217 currency"),
    ],
)
def test_gateway_route_must_name_a_configured_gateway_and_a_real_currency(admin_client, route, message):
    from gateways.models import GatewayRoute

    response = admin_client.post(reverse("admin:merchants_merchant_add"), route_form(**route))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not GatewayRoute.objects.exists()


def merchant_form(**fields) -> dict:
    form = {
        "code": "shop-4",
        "name": "Shop Four",
        "is_active": "on",
        "currencies-TOTAL_FORMS": "0",
        "currencies-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "gateway_routes-TOTAL_FORMS": "0",
        "gateway_routes-INITIAL_FORMS": "0",
    }
    return {**form, **fields}


@pytest.mark.parametrize(("rate", "stored"), [("600/min", "600/min"), ("", ""), ("10 per minute", None), ("0/s", None)])
def test_a_merchants_rate_limit_is_a_rate_or_empty(admin_client, rate, stored):
    response = admin_client.post(reverse("admin:merchants_merchant_add"), merchant_form(api_rate_limit=rate))

    if stored is None:
        assert response.status_code == 200 and "Write it as requests/period" in response.content.decode()
        assert not Merchant.objects.filter(code="shop-4").exists()
    else:
        assert response.status_code == 302
        assert Merchant.objects.get(code="shop-4").api_rate_limit == stored


def test_a_key_is_issued_with_the_scopes_expiry_and_limit_ticked_in_the_admin(admin_client, merchant):
    add = admin_client.get(reverse("admin:merchants_apikey_add"))
    assert add.content.decode().count('type="checkbox" name="scopes"') == 7
    assert add.context["adminform"].form["scopes"].value() == DEFAULT_SCOPES

    response = issue_form(
        admin_client, name="finance", merchant=merchant.pk, scopes=["settlements:read"],
        expires_at_0="2099-01-31", expires_at_1="12:00:00", rate_limit="60/min",
    )  # fmt: skip

    full_key = KEY_SHAPE.search(response.content.decode()).group()
    api_key = ApiKey.objects.get(name="finance")
    assert api_key.scopes == ["settlements:read"] and api_key.rate_limit == "60/min"
    assert api_key.expires_at.isoformat() == "2099-01-31T12:00:00+00:00"
    assert "settlements:read" in response.content.decode()
    assert client_for(full_key).get("/v1/settlements").status_code == 200
    assert client_for(full_key).get("/v1/payments").status_code == 403


def test_a_bad_rate_limit_on_a_key_is_refused_and_no_key_is_issued(admin_client, merchant):
    response = issue_form(admin_client, name="checkout", merchant=merchant.pk, rate_limit="lots")

    assert "Write it as requests/period" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_key_list_shows_scopes_and_filters_expiring_and_expired_keys(admin_client, merchant):
    from datetime import timedelta

    from django.utils import timezone

    lasting, _ = api_key_create(name="lasting", merchant=merchant, scopes=["payments:read"])
    expiring, _ = api_key_create(name="expiring", merchant=merchant, expires_at=timezone.now() + timedelta(days=1))
    expired, _ = api_key_create(name="expired", merchant=merchant, expires_at=timezone.now() - timedelta(days=1))
    url = reverse("admin:merchants_apikey_changelist")

    def found(**params):
        return set(admin_client.get(url, params).context["cl"].result_list)

    assert found(state="active") == {lasting, expiring}
    assert found(state="expiring") == {expiring}
    assert found(state="expired") == {expired}
    html = admin_client.get(url).content.decode()
    assert "payments r<" in html and "expired 20" in html and "expires 20" in html
