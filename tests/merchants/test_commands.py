"""create_merchant and create_api_key: what `make run`, operators and scripts use to issue access."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from payments.models import Payment
from pgi.merchants.models import ApiKey, Merchant
from pgi.merchants.selectors import api_key_get_active

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from ..conftest import client_for
from ..factories import MerchantFactory

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_merchant_creates_it_with_its_currencies():
    out, _ = run("create_merchant", "shop-one", "--name", "Shop One", "--currencies", "USD,EUR")

    merchant = Merchant.objects.get(code="shop-one")
    assert merchant.name == "Shop One"
    assert merchant.is_active
    assert sorted(merchant.currencies.values_list("currency", flat=True)) == ["EUR", "USD"]
    assert "shop-one" in out


def test_create_merchant_defaults_to_usd_and_no_limit():
    run("create_merchant", "shop-two", "--name", "Shop Two")

    currencies = Merchant.objects.get(code="shop-two").currencies.all()
    assert [(c.currency, c.max_amount) for c in currencies] == [("USD", None)]


def test_create_merchant_sets_the_limit_in_every_currency():
    run("create_merchant", "shop-three", "--name", "Shop Three", "--currencies", "USD, JPY", "--max-amount", "250.50")

    limits = dict(Merchant.objects.get(code="shop-three").currencies.values_list("currency", "max_amount"))
    assert limits == {"USD": Decimal("250.50"), "JPY": Decimal("250.50")}


@pytest.mark.parametrize("currencies", ["USD,XYZ", "usd", "XAU", "USD,EURO"])
def test_create_merchant_with_a_bad_currency_is_a_command_error_and_creates_nothing(currencies):
    with pytest.raises(CommandError, match="currencies"):
        run("create_merchant", "shop-bad", "--name", "Bad", "--currencies", currencies)

    assert not Merchant.objects.filter(code="shop-bad").exists()


@pytest.mark.parametrize("code", ["Shop", "x", "-shop", "shop one", "a" * 65])
def test_create_merchant_with_a_bad_code_is_a_command_error(code):
    with pytest.raises(CommandError, match="code"):
        run("create_merchant", code, "--name", "Bad")

    assert not Merchant.objects.exists()


def test_create_merchant_with_a_taken_code_is_a_command_error():
    MerchantFactory(code="shop-taken")

    with pytest.raises(CommandError, match="code"):
        run("create_merchant", "shop-taken", "--name", "Again")


def test_create_merchant_with_a_bad_limit_is_a_command_error():
    with pytest.raises(CommandError, match="max-amount"):
        run("create_merchant", "shop-limit", "--name", "Limit", "--max-amount", "lots")


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_it_authenticates():
    run("create_merchant", "merchant456", "--name", "Demo Shop", "--currencies", "USD")

    out, _ = run("create_api_key", "merchant456")

    key = out.strip().splitlines()[-1]
    assert key == key.strip() and " " not in key
    api_key = api_key_get_active(full_key=key)
    assert api_key is not None and api_key.merchant.code == "merchant456" and not api_key.is_platform
    response = post_json(client_for(key), PAYMENTS_URL, payment_body())
    assert response.status_code == 201, response.content
    assert Payment.objects.get().api_key == api_key


def test_create_api_key_labels_the_key():
    MerchantFactory(code="shop-label")

    run("create_api_key", "shop-label", "--name", "checkout-eu")

    assert ApiKey.objects.get().name == "checkout-eu"


def test_create_api_key_with_a_name_over_100_characters_is_a_command_error():
    MerchantFactory(code="shop-label")

    with pytest.raises(CommandError, match="name"):
        run("create_api_key", "shop-label", "--name", "x" * 101)

    assert not ApiKey.objects.exists()


def test_create_api_key_for_an_unknown_merchant_is_a_command_error():
    with pytest.raises(CommandError, match="create_merchant"):
        run("create_api_key", "nobody")

    assert not ApiKey.objects.exists()


def test_create_api_key_platform_makes_a_key_that_may_name_any_merchant():
    MerchantFactory(code="shop-a")
    MerchantFactory(code="shop-b")

    out, _ = run("create_api_key", "tps", "--platform")

    key = out.strip().splitlines()[-1]
    api_key = api_key_get_active(full_key=key)
    assert api_key.is_platform and api_key.merchant is None and api_key.name == "tps"
    for code in ("shop-a", "shop-b"):
        response = post_json(client_for(key), PAYMENTS_URL, payment_body(toMerchant=code))
        assert response.status_code == 201, response.content


@pytest.mark.parametrize("limit", ["0", "-5", "NaN", "Infinity", "1e20", "0.00001"])
def test_create_merchant_with_a_limit_that_is_not_a_positive_storable_amount_is_a_command_error(limit):
    with pytest.raises(CommandError, match="max"):
        run("create_merchant", "shop-limit", "--name", "Limit", "--max-amount", limit)

    assert not Merchant.objects.filter(code="shop-limit").exists()
