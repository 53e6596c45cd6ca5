"""Routing per merchant and currency, failover on unavailability only, and the circuit breaker,
through POST /v1/payments with two simulator gateways against PostgreSQL and Redis."""

import time

import pytest

from gateways.breaker import BreakerSnapshot, BreakerState, breaker_for
from gateways.models import GatewayRoute, SimulatorCharge
from gateways.routing import gateways_for
from payments.models import GatewayAttempt, Payment, PaymentStatusChange

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from ..conftest import simulator_options, simulator_outage_set

pytestmark = pytest.mark.django_db


def pay(api, **overrides) -> dict:
    response = post_json(api, PAYMENTS_URL, payment_body(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def attempts(payment_id: str) -> list[tuple[str, str, str, str]]:
    return list(
        GatewayAttempt.objects.filter(payment_id=payment_id)
        .order_by("created_at", "id")
        .values_list("operation", "gateway", "idempotency_key", "outcome")
    )


def charges_at(code: str, payment_id: str) -> int:
    return SimulatorCharge.objects.filter(gateway=code, idempotency_key=payment_id).count()


def test_first_gateway_takes_the_payment_when_it_is_up(api, two_simulators):
    body = pay(api)

    assert (body["status"], body["gateway"]) == ("Completed", "simulator")
    assert attempts(body["id"]) == [("authorize", "simulator", body["id"], "succeeded")]
    assert charges_at("simulator_b", body["id"]) == 0


def test_unavailable_gateway_fails_over_to_the_next(api, two_simulators):
    simulator_outage_set("simulator", True)

    body = pay(api)

    assert (body["status"], body["gateway"]) == ("Completed", "simulator_b")
    assert attempts(body["id"]) == [
        ("authorize", "simulator", body["id"], "unavailable"),
        ("authorize", "simulator_b", body["id"], "succeeded"),
    ]
    assert (charges_at("simulator", body["id"]), charges_at("simulator_b", body["id"])) == (0, 1)
    reasons = list(PaymentStatusChange.objects.filter(payment_id=body["id"]).values_list("reason", flat=True))
    assert any(reason.startswith("failover to simulator_b") for reason in reasons), reasons


def test_a_decline_is_final_and_never_tried_elsewhere(api, two_simulators):
    body = pay(api, fromAccount="account0051")

    assert (body["status"], body["failureCode"], body["gateway"]) == ("Failed", "INSUFFICIENT_FUNDS", "simulator")
    assert [a[1] for a in attempts(body["id"])] == ["simulator"]
    assert charges_at("simulator_b", body["id"]) == 0


def test_a_timeout_is_never_failed_over_because_the_first_gateway_may_have_charged(api, two_simulators):
    body = pay(api, fromAccount="account0408")

    assert (body["status"], body["gateway"]) == ("Processing", "simulator")
    assert attempts(body["id"]) == [("authorize", "simulator", body["id"], "timeout")]
    assert (charges_at("simulator", body["id"]), charges_at("simulator_b", body["id"])) == (1, 0)


def test_with_every_gateway_down_the_payment_fails_and_nothing_is_charged(api, two_simulators):
    simulator_outage_set("simulator", True)
    simulator_outage_set("simulator_b", True)

    body = pay(api)

    assert (body["status"], body["failureCode"]) == ("Failed", "GATEWAY_UNAVAILABLE")
    assert [a[3] for a in attempts(body["id"])] == ["unavailable", "unavailable"]
    assert SimulatorCharge.objects.filter(idempotency_key=body["id"]).count() == 0


def test_breaker_keeps_a_failing_gateway_out_then_probes_it_back(api, two_simulators, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 2, "window_seconds": 60, "open_seconds": 1}
    simulator_outage_set("simulator", True)

    first, second = pay(api), pay(api)
    assert [a[3] for a in attempts(first["id"])] == ["unavailable", "succeeded"]
    assert [a[3] for a in attempts(second["id"])] == ["unavailable", "succeeded"]
    assert breaker_for("simulator").snapshot().state == BreakerState.OPEN

    # Open: the dead gateway is not even called.
    kept_out = pay(api)
    assert attempts(kept_out["id"]) == [
        ("authorize", "simulator", kept_out["id"], "circuit_open"),
        ("authorize", "simulator_b", kept_out["id"], "succeeded"),
    ]

    # It comes back; after the open period one probe goes through and closes the circuit.
    simulator_outage_set("simulator", False)
    time.sleep(1.1)
    probe = pay(api)
    assert attempts(probe["id"]) == [("authorize", "simulator", probe["id"], "succeeded")]
    assert breaker_for("simulator").snapshot().state == BreakerState.CLOSED
    assert pay(api)["gateway"] == "simulator"


def test_a_failed_probe_reopens_the_circuit(api, two_simulators, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 1, "window_seconds": 60, "open_seconds": 1}
    simulator_outage_set("simulator", True)
    pay(api)
    assert breaker_for("simulator").snapshot().state == BreakerState.OPEN

    time.sleep(1.1)
    probe = pay(api)

    assert [a[3] for a in attempts(probe["id"])] == ["unavailable", "succeeded"]
    assert breaker_for("simulator").snapshot().state == BreakerState.OPEN
    assert [a[3] for a in attempts(pay(api)["id"])] == ["circuit_open", "succeeded"]


def test_declines_do_not_open_the_circuit(api, two_simulators, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 2, "window_seconds": 60, "open_seconds": 30}

    for _ in range(3):
        pay(api, fromAccount="account0002")

    assert breaker_for("simulator").snapshot().state == BreakerState.CLOSED


@pytest.mark.parametrize("account", ["account0503", "account0504", "account0408"])
def test_the_simulators_per_payment_failures_do_not_open_the_circuit(api, settings, account):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 2, "window_seconds": 60, "open_seconds": 30}

    staged = [pay(api, fromAccount=account) for _ in range(4)]
    ordinary = pay(api)

    assert all(attempts(p["id"])[-1][3] in {"unavailable", "timeout"} for p in staged)
    assert breaker_for("simulator").snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=0, open_until=None)
    assert (ordinary["status"], ordinary["gateway"]) == ("Completed", "simulator")


def test_the_simulators_outage_switch_counts_and_opens_the_circuit(api, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 2, "window_seconds": 60, "open_seconds": 30}
    simulator_outage_set("simulator", True)

    failed = [pay(api) for _ in range(2)]

    assert [(p["status"], p["failureCode"]) for p in failed] == [("Failed", "GATEWAY_UNAVAILABLE")] * 2
    assert breaker_for("simulator").snapshot().state == BreakerState.OPEN
    assert attempts(pay(api)["id"])[-1][3] == "circuit_open"


def test_routes_for_the_currency_win_over_routes_for_any_currency(merchant, settings):
    settings.PGI_GATEWAYS = {"simulator": simulator_options(), "simulator_b": simulator_options()}
    GatewayRoute.objects.create(merchant=merchant, currency="", gateway="simulator", priority=1)
    GatewayRoute.objects.create(merchant=merchant, currency="EUR", gateway="simulator_b", priority=1)
    GatewayRoute.objects.create(merchant=merchant, currency="EUR", gateway="simulator", priority=2)

    assert gateways_for(merchant_id=merchant.pk, currency="EUR") == ["simulator_b", "simulator"]
    assert gateways_for(merchant_id=merchant.pk, currency="USD") == ["simulator"]


def test_inactive_and_unconfigured_routes_are_left_out_and_no_routes_means_the_default(merchant, settings):
    settings.PGI_GATEWAYS = {"simulator": simulator_options(), "simulator_b": simulator_options()}
    settings.PGI_DEFAULT_GATEWAY = "simulator"
    assert gateways_for(merchant_id=merchant.pk, currency="USD") == ["simulator"]

    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="stripe", priority=1)
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator_b", priority=2, is_active=False)
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=3)

    assert gateways_for(merchant_id=merchant.pk, currency="USD") == ["simulator"]


def test_the_payment_id_is_the_idempotency_key_so_a_second_send_charges_once(api, two_simulators):
    from gateways.registry import get_connector
    from payments.services.authorize import payment_request_for

    body = pay(api)
    payment = Payment.objects.select_related("merchant").get(pk=body["id"])

    again = get_connector("simulator").authorize(payment_request_for(payment))

    assert again.reference == body["gatewayReference"]
    assert charges_at("simulator", body["id"]) == 1


def test_a_merchant_whose_routes_are_all_off_is_not_sent_to_the_default_gateway(api, merchant, settings):
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=1, is_active=False)
    assert gateways_for(merchant_id=merchant.pk, currency="USD") == []

    body = pay(api)

    assert (body["status"], body["failureCode"], body["gateway"]) == ("Failed", "GATEWAY_UNAVAILABLE", None)
    assert not GatewayAttempt.objects.filter(payment_id=body["id"]).exists()
    assert SimulatorCharge.objects.filter(idempotency_key=body["id"]).count() == 0
    assert PaymentStatusChange.objects.filter(payment_id=body["id"], reason="no active gateway route").exists()


def test_a_deployment_without_any_gateway_fails_payments_as_gateway_unavailable(api, merchant, settings):
    settings.PGI_GATEWAYS = {}  # the simulator is off outside the sandbox and no real gateway is set
    settings.PGI_DEFAULT_GATEWAY = ""

    body = pay(api)

    assert (body["status"], body["failureCode"]) == ("Failed", "GATEWAY_UNAVAILABLE")
    assert PaymentStatusChange.objects.filter(payment_id=body["id"], reason="no active gateway route").exists()
