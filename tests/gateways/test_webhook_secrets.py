"""No gateway webhook can be verified with a secret that is public: the simulator runs outside the
sandbox only when enabled, never with a default secret; a gateway without its own secret answers
503 WEBHOOK_NOT_CONFIGURED, and `manage.py check --deploy` reports it as an error."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateways.checks import gateway_webhook_secrets_check
from gateways.models import GatewayNotification
from gateways.registry import get_connector
from gateways.simulator.webhooks import PUBLIC_SECRETS, SIGNATURE_HEADER, sign
from payments.models import Payment, PaymentStatus

from ..api.helpers import assert_error
from ..conftest import simulator_options
from ..factories import PaymentFactory
from .fakes.adyen_server import notification_body, notification_item, running_fake_adyen
from .fakes.stripe_server import API_KEY, sign_webhook, stripe_event

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_SECRET = "whsec_simulator_local"
STRONG_SECRET = "whsec_" + "7f" * 32


def production_env(tmp_path, **overrides) -> dict:
    """The environment of a deployment: none of PGI's own variables but those given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PGI_", "DJANGO_", "DATABASE_"))}
    env.update(PGI_VAR_DIR=str(tmp_path / "var"), DJANGO_SECRET_KEY="x" * 64, DJANGO_SETTINGS_MODULE="pgi.settings")
    env.update(overrides)
    return env


def gateway_settings_in(env: dict) -> dict:
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps({'gateways': {c: o.get('webhook_secret', '') for c, o in settings.PGI_GATEWAYS.items()}, "
        "'default': settings.PGI_DEFAULT_GATEWAY}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# --- settings -----------------------------------------------------------------------------------


def test_outside_the_sandbox_the_simulator_is_off_unless_enabled(tmp_path):
    assert gateway_settings_in(production_env(tmp_path))["gateways"] == {}


def test_enabled_simulator_outside_the_sandbox_has_no_default_secret(tmp_path):
    found = gateway_settings_in(production_env(tmp_path, PGI_SIMULATOR_ENABLED="true"))

    assert found == {"gateways": {"simulator": ""}, "default": "simulator"}


def test_default_gateway_is_the_first_real_gateway_when_the_simulator_is_off(tmp_path):
    found = gateway_settings_in(production_env(tmp_path, PGI_STRIPE_API_KEY="sk_test_x"))

    assert found["default"] == "stripe"
    assert list(found["gateways"]) == ["stripe"]


def test_sandbox_simulator_secret_is_random_owner_only_and_shared_by_every_process(tmp_path):
    env = production_env(tmp_path, PGI_SANDBOX="true")

    first = gateway_settings_in(env)["gateways"]["simulator"]
    second = gateway_settings_in(env)["gateways"]["simulator"]
    elsewhere = gateway_settings_in(production_env(tmp_path / "other", PGI_SANDBOX="true"))["gateways"]["simulator"]

    assert first == second != elsewhere
    assert len(first) >= 32 and first not in PUBLIC_SECRETS
    secret_file = tmp_path / "var" / "simulator-webhook-secret"
    assert secret_file.read_text().strip() == first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_sandbox_uses_the_simulator_secret_it_is_given(tmp_path):
    env = production_env(tmp_path, PGI_SANDBOX="true", PGI_SIMULATOR_WEBHOOK_SECRET=STRONG_SECRET)

    assert gateway_settings_in(env)["gateways"]["simulator"] == STRONG_SECRET
    assert not (tmp_path / "var" / "simulator-webhook-secret").exists()


# --- check --deploy -----------------------------------------------------------------------------


def test_check_deploy_reports_every_gateway_whose_webhooks_cannot_be_verified(tmp_path):
    env = production_env(
        tmp_path,
        PGI_SIMULATOR_ENABLED="true",
        PGI_SIMULATOR_WEBHOOK_SECRET=DOCUMENTED_SECRET,
        PGI_STRIPE_API_KEY="sk_test_x",
        PGI_ADYEN_API_KEY="adyen_key",
        PGI_ADYEN_MERCHANT_ACCOUNT="PGI",
    )

    done = check_deploy(env)

    assert done.returncode != 0
    flagged = {line.split("Gateway '", 1)[1].split("'", 1)[0] for line in done.stderr.splitlines() if "(pgi.E010)" in line}
    assert flagged == {"simulator", "stripe", "adyen"}


@pytest.mark.parametrize("secret", ["", "short_secret"])
def test_check_deploy_refuses_an_enabled_simulator_without_a_strong_secret(tmp_path, secret):
    done = check_deploy(production_env(tmp_path, PGI_SIMULATOR_ENABLED="true", PGI_SIMULATOR_WEBHOOK_SECRET=secret))

    assert done.returncode != 0
    assert "(pgi.E010) Gateway 'simulator'" in done.stderr


def test_check_deploy_accepts_gateways_with_secrets_of_their_own(tmp_path):
    env = production_env(
        tmp_path,
        PGI_SIMULATOR_ENABLED="true",
        PGI_SIMULATOR_WEBHOOK_SECRET=STRONG_SECRET,
        PGI_STRIPE_API_KEY="sk_test_x",
        PGI_STRIPE_WEBHOOK_SECRET="whsec_stripe_endpoint_secret",
    )

    done = check_deploy(env)

    assert "pgi.E010" not in done.stdout + done.stderr


def test_sandbox_simulator_passes_the_deploy_check(settings):
    assert settings.PGI_SANDBOX
    assert gateway_webhook_secrets_check() == []


def test_public_simulator_secret_fails_the_deploy_check_even_in_the_sandbox(settings):
    settings.PGI_GATEWAYS = {"simulator": simulator_options(webhook_secret=DOCUMENTED_SECRET)}

    assert [error.id for error in gateway_webhook_secrets_check()] == ["pgi.E010"]


# --- the endpoint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, DOCUMENTED_SECRET, STRONG_SECRET])
def test_outside_the_sandbox_the_endpoint_refuses_exactly_the_secrets_check_deploy_reports(settings, secret):
    settings.PGI_SANDBOX = False
    settings.PGI_GATEWAYS = {"simulator": simulator_options(webhook_secret=secret)}

    reported = [error.id for error in gateway_webhook_secrets_check()]
    refused = bool(get_connector("simulator").webhook_problem())

    assert (reported == ["pgi.E010"], refused) == (secret != STRONG_SECRET, secret != STRONG_SECRET)


@pytest.mark.django_db
@pytest.mark.parametrize(("secret", "sandbox"), [("", True), (DOCUMENTED_SECRET, True), ("short", False)])
def test_simulator_without_a_secret_of_its_own_accepts_no_webhook(settings, client, secret, sandbox):
    settings.PGI_SANDBOX = sandbox
    settings.PGI_GATEWAYS = {"simulator": simulator_options(webhook_secret=secret)}
    payment = PaymentFactory(status=PaymentStatus.PROCESSING, gateway="simulator")
    body = json.dumps(
        {
            "id": "evt_forged",
            "type": "charge.declined",
            "created": int(time.time()),
            "data": {"reference": "sim_x", "merchantReference": payment.id, "status": "declined",
                     "amount": str(payment.amount), "currency": payment.currency, "declineCode": "DECLINED"},
        }
    ).encode()

    response = client.post(
        "/v1/gateways/simulator/webhooks",
        data=body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: sign(secret=secret, timestamp=int(time.time()), body=body)},
    )

    assert_error(response, 503, "WEBHOOK_NOT_CONFIGURED")
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING
    assert not GatewayNotification.objects.exists()


@pytest.mark.django_db
def test_stripe_without_a_webhook_secret_accepts_no_webhook(settings, client):
    settings.PGI_GATEWAYS = {
        "stripe": {"class": "gateways.stripe.connector.StripeConnector", "api_key": API_KEY, "webhook_secret": ""}
    }
    body = stripe_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})

    response = client.post(
        "/v1/gateways/stripe/webhooks", data=body, content_type="application/json",
        headers={"Stripe-Signature": sign_webhook(body, "")},
    )

    assert_error(response, 503, "WEBHOOK_NOT_CONFIGURED")


@pytest.mark.django_db
def test_adyen_without_an_hmac_key_accepts_no_webhook(settings, client):
    with running_fake_adyen() as fake:
        settings.PGI_GATEWAYS = {
            "adyen": {"class": "gateways.adyen.connector.AdyenConnector", **fake.connector_options(hmac_key="")}
        }
        item = notification_item(
            event_code="AUTHORISATION", psp_reference="PSP1", merchant_reference="pay_1", value=100, currency="EUR"
        )

        response = client.post(
            "/v1/gateways/adyen/webhooks", data=notification_body([item], hmac_key=None), content_type="application/json"
        )

    assert_error(response, 503, "WEBHOOK_NOT_CONFIGURED")
    assert not GatewayNotification.objects.exists()
