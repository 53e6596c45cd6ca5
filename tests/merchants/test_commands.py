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


# --- demo_setup: the demo credentials of `make run` -------------------------------------------


def demo_setup() -> dict[str, str]:
    out, _ = run("demo_setup")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def signs_in(password: str) -> bool:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="admin").check_password(password)


def test_demo_setup_keeps_its_keys_and_password_across_runs_on_the_same_var_dir(var_dir):
    first = demo_setup()
    second = demo_setup()

    assert second == first
    for name in ("PGI_DEMO_MERCHANT_KEY", "PGI_DEMO_PLATFORM_KEY"):
        assert api_key_get_active(full_key=second[name]) is not None
    assert signs_in(second["PGI_ADMIN_PASSWORD"])
    assert sorted(ApiKey.objects.filter(revoked_at=None).values_list("name", flat=True)) == ["demo", "demo-platform"]
    assert not ApiKey.objects.exclude(revoked_at=None).exists()
    response = post_json(client_for(second["PGI_DEMO_MERCHANT_KEY"]), PAYMENTS_URL, payment_body(toMerchant="merchant456"))
    assert response.status_code == 201, response.content


def test_demo_setup_keeps_its_credentials_in_an_owner_only_file_of_the_var_dir(var_dir):
    values = demo_setup()

    path = var_dir / "demo-credentials.env"
    assert values["PGI_DEMO_CREDENTIALS_FILE"] == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    saved = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert saved == {name: values[name] for name in saved}
    assert set(saved) == {"PGI_DEMO_MERCHANT", "PGI_DEMO_MERCHANT_KEY", "PGI_DEMO_PLATFORM_KEY", "PGI_ADMIN_USER", "PGI_ADMIN_PASSWORD"}


def test_demo_setup_without_its_file_issues_new_credentials_and_revokes_the_old_keys(var_dir):
    first = demo_setup()
    (var_dir / "demo-credentials.env").unlink()

    second = demo_setup()

    for name in ("PGI_DEMO_MERCHANT_KEY", "PGI_DEMO_PLATFORM_KEY", "PGI_ADMIN_PASSWORD"):
        assert second[name] != first[name]
        assert (var_dir / "demo-credentials.env").read_text().count(second[name]) == 1
    assert api_key_get_active(full_key=first["PGI_DEMO_MERCHANT_KEY"]) is None
    assert api_key_get_active(full_key=first["PGI_DEMO_PLATFORM_KEY"]) is None
    assert api_key_get_active(full_key=second["PGI_DEMO_MERCHANT_KEY"]) is not None
    assert signs_in(second["PGI_ADMIN_PASSWORD"]) and not signs_in(first["PGI_ADMIN_PASSWORD"])


def test_demo_setup_replaces_a_saved_key_that_was_revoked_and_a_password_that_was_changed(var_dir):
    from django.contrib.auth import get_user_model

    first = demo_setup()
    api_key_revoke_by_key(first["PGI_DEMO_MERCHANT_KEY"])
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed-in-the-admin-9931")
    admin.save()

    second = demo_setup()

    assert second["PGI_DEMO_MERCHANT_KEY"] != first["PGI_DEMO_MERCHANT_KEY"]
    assert api_key_get_active(full_key=second["PGI_DEMO_MERCHANT_KEY"]) is not None
    assert second["PGI_DEMO_PLATFORM_KEY"] == first["PGI_DEMO_PLATFORM_KEY"]
    assert second["PGI_ADMIN_PASSWORD"] != first["PGI_ADMIN_PASSWORD"] and signs_in(second["PGI_ADMIN_PASSWORD"])


def test_demo_setup_does_not_take_a_saved_key_of_another_holder(var_dir):
    MerchantFactory(code="shop-other")
    other_out, _ = run("create_api_key", "shop-other", "--name", "demo")
    other_key = other_out.strip().splitlines()[-1]
    (var_dir / "demo-credentials.env").write_text(f"PGI_DEMO_MERCHANT_KEY={other_key}\n")

    values = demo_setup()

    assert values["PGI_DEMO_MERCHANT_KEY"] != other_key
    assert api_key_get_active(full_key=values["PGI_DEMO_MERCHANT_KEY"]).merchant.code == "merchant456"
    assert api_key_get_active(full_key=other_key) is not None  # another merchant's key is left alone


def test_create_api_key_still_shows_its_key_once_and_keeps_it_nowhere(var_dir):
    MerchantFactory(code="shop-once")

    out, _ = run("create_api_key", "shop-once")

    key = out.strip().splitlines()[-1]
    assert api_key_get_active(full_key=key) is not None
    assert list(var_dir.iterdir()) == []


def api_key_revoke_by_key(full_key: str) -> None:
    from pgi.merchants.services import api_key_revoke

    api_key_revoke(api_key=api_key_get_active(full_key=full_key))
