"""Staff see each gateway's circuit breaker and webhook notifications in the admin."""

import pytest
from django.urls import reverse

from gateways.breaker import BreakerState, breaker_for
from gateways.models import GatewayNotification

from ..conftest import simulator_outage_set

pytestmark = pytest.mark.django_db


def test_index_links_to_the_gateway_status(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert reverse("admin:gateways_status") in html


def test_status_page_shows_an_open_breaker_and_staff_reset_it(admin_client, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 1, "window_seconds": 60, "open_seconds": 600}
    breaker_for("simulator").record_failure()
    simulator_outage_set("simulator", True)

    page = admin_client.get(reverse("admin:gateways_status"))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'class="breaker-open">open<' in html
    assert "down (outage)" in html

    response = admin_client.post(reverse("admin:gateways_status"), {"reset": "simulator"}, follow=True)

    assert "The circuit breaker of simulator is closed again." in response.content.decode()
    assert breaker_for("simulator").snapshot().state == BreakerState.CLOSED


def test_reset_of_an_unknown_gateway_is_refused(admin_client):
    assert admin_client.post(reverse("admin:gateways_status"), {"reset": "nosuch"}).status_code == 403


def test_status_page_needs_staff(client):
    response = client.get(reverse("admin:gateways_status"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_unmatched_notifications_are_listed_for_reconciliation(admin_client):
    GatewayNotification.objects.create(
        gateway="simulator", event_id="evt_1", operation="authorize", payment_id="pay_nope", outcome="unmatched"
    )
    GatewayNotification.objects.create(
        gateway="simulator", event_id="evt_2", operation="authorize", payment_id="pay_x", outcome="applied"
    )

    page = admin_client.get(reverse("admin:gateways_gatewaynotification_changelist"), {"outcome__exact": "unmatched"})

    assert [n.event_id for n in page.context["cl"].result_list] == ["evt_1"]


def test_settings_checks_refuse_an_unconfigured_default_gateway_and_a_bad_breaker_policy(settings):
    from gateways.checks import gateway_settings_check

    assert gateway_settings_check() == []

    settings.PGI_DEFAULT_GATEWAY = "nope"
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 0}

    assert sorted(error.id for error in gateway_settings_check()) == ["pgi.E001", "pgi.E002"]


def test_status_page_has_an_admin_url_in_the_navigation_and_the_old_one_redirects(admin_client):
    url = reverse("admin:gateways_status")

    page = admin_client.get(url)
    old = admin_client.get("/admin/gateways/gatewaynotification/status/")

    assert url == "/admin/gateways/status/"
    assert page.status_code == 200
    navigation = [entry["admin_url"] for section in page.context["available_apps"] for entry in section["models"]]
    assert url in navigation
    assert (old.status_code, old["Location"]) == (301, url)


def test_status_page_says_the_state_lives_in_redis_without_its_credentials(admin_client, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://pgi:s3cret@cache.internal:6380/3"}
    }

    html = admin_client.get(reverse("admin:gateways_status")).content.decode()

    assert "Redis at cache.internal:6380/3, shared by every PGI process" in html
    assert "s3cret" not in html


def test_status_page_says_the_state_lives_in_the_local_cache_file(admin_client, settings, tmp_path):
    location = str(tmp_path / "cache.sqlite3")
    settings.CACHES = {"default": {"BACKEND": "pgi.sqlite_cache.SQLiteCache", "LOCATION": location}}

    html = admin_client.get(reverse("admin:gateways_status")).content.decode()

    assert f"the file {location}, shared by every PGI process of this machine" in html
