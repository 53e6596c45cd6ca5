"""Sent rows are pruned after the retention, in batches; the outbox is listed for engineers only,
and the relay's lag is shown on its list and on the index to whoever may view it."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from pgi.events.models import OutboxEvent
from pgi.events.services import events_prune
from pgi.events.tasks import events_prune as events_prune_task

pytestmark = pytest.mark.django_db


def outbox_row(*, sent_days_ago: float | None, event_type="PAYMENT_PROCESSED", key="pay_x") -> OutboxEvent:
    sent_at = None if sent_days_ago is None else timezone.now() - timedelta(days=sent_days_ago)
    # Fanned out to merchant webhooks when sent (a row not fanned out is kept: tests/webhooks).
    return OutboxEvent.objects.create(
        topic="payment-events", key=key, event_type=event_type, body="{}", payload={}, sent_at=sent_at,
        webhooks_at=sent_at,
    )


def test_sent_rows_past_the_retention_are_deleted_in_batches_and_nothing_else():
    old = [outbox_row(sent_days_ago=8) for _ in range(5)]
    recent = outbox_row(sent_days_ago=6)
    unsent_old = outbox_row(sent_days_ago=None)
    OutboxEvent.objects.filter(pk=unsent_old.pk).update(created_at=timezone.now() - timedelta(days=30))

    assert events_prune(batch_size=2) == 5

    assert not OutboxEvent.objects.filter(pk__in=[row.pk for row in old]).exists()
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, unsent_old.pk}


def test_the_prune_walks_past_more_rows_it_must_keep_than_a_batch_holds():
    # A relay down for a while: old unsent rows, more than a batch, before the old sent ones.
    waiting = [outbox_row(sent_days_ago=None) for _ in range(5)]
    OutboxEvent.objects.filter(pk__in=[row.pk for row in waiting]).update(created_at=timezone.now() - timedelta(days=9))
    old = [outbox_row(sent_days_ago=8) for _ in range(3)]

    assert events_prune(batch_size=2) == 3

    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {row.pk for row in waiting}
    assert not OutboxEvent.objects.filter(pk__in=[row.pk for row in old]).exists()


def test_the_prune_stops_at_the_first_batch_written_after_the_cutoff(django_assert_num_queries):
    """The walk reads no further than the rows of the retention: no index on sent_at to serve it."""
    for _ in range(30):
        outbox_row(sent_days_ago=1)

    with django_assert_num_queries(1):
        assert events_prune(batch_size=10) == 0


def test_the_beat_task_takes_the_retention_from_settings(settings):
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "retention_days": 1, "prune_batch_size": 10}
    outbox_row(sent_days_ago=2)
    kept = outbox_row(sent_days_ago=0.5)

    assert events_prune_task.apply().get() == 1

    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [kept.pk]


def test_the_prune_task_is_on_the_beat_schedule():
    entries = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "pgi.events.tasks.events_prune" in entries


def test_superusers_see_the_outbox_under_engineering_filtered_by_sent(admin_client):
    waiting = outbox_row(sent_days_ago=None, key="pay_waiting")
    outbox_row(sent_days_ago=1, key="pay_sent")
    url = reverse("admin:events_outboxevent_changelist")

    index = admin_client.get(reverse("admin:index"))
    engineering = next(s for s in index.context["app_list"] if s["name"] == "Engineering")
    unsent = admin_client.get(url, {"sent": "no"})
    by_type = admin_client.get(url, {"event_type": "PAYMENT_PROCESSED"})
    detail = admin_client.get(reverse("admin:events_outboxevent_change", args=[waiting.pk]))

    assert url in [entry["admin_url"] for entry in engineering["models"]]
    assert [row.pk for row in unsent.context["cl"].result_list] == [waiting.pk]
    assert by_type.context["cl"].result_count == 2
    assert detail.status_code == 200
    assert not detail.context["has_change_permission"] and not detail.context["has_delete_permission"]


def test_the_outbox_is_listed_only_to_staff_who_may_view_it(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("teller", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_payment"]))
    client.force_login(staff)
    teller = client.get(reverse("admin:index"))
    staff.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    engineer = client.get(reverse("admin:index"))

    def listed(index) -> set[str]:
        return {entry["admin_url"] for s in index.context["app_list"] for entry in s["models"]}

    assert reverse("admin:events_outboxevent_changelist") not in listed(teller)
    assert reverse("admin:events_outboxevent_changelist") in listed(engineer)


RELAY_PANEL = "admin/events/relay_lag_panel.html"


def panels(response) -> dict[str, dict]:
    return {panel["template"]: panel for panel in response.context["panels"]}


def test_the_index_and_the_outbox_list_show_the_lag_in_red_once_the_oldest_waits_too_long(admin_client, settings):
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "lag_warn_seconds": 60}
    oldest = outbox_row(sent_days_ago=None, key="pay_old")
    OutboxEvent.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - timedelta(minutes=5), attempts=3, last_error="KafkaError{code=_MSG_TIMED_OUT}"
    )
    outbox_row(sent_days_ago=None, key="pay_new")
    outbox_row(sent_days_ago=1, key="pay_sent")

    index = admin_client.get(reverse("admin:index"))
    listing = admin_client.get(reverse("admin:events_outboxevent_changelist"))

    panel = panels(index)[RELAY_PANEL]
    assert (panel["unsent"], panel["late"], panel["oldest"].pk) == (2, True, oldest.pk)
    assert 300 <= panel["oldest_seconds"] < 310 and panel["oldest_age"].startswith("5 min")
    assert listing.context["relay_lag"]["unsent"] == 2 and listing.context["relay_lag"]["late"]
    for page in (index, listing):
        html = page.content.decode()
        assert 'id="relay-lag" data-unsent="2" data-late="yes"' in html
        assert "pgi-lag-late" in html and "KafkaError{code=_MSG_TIMED_OUT}" in html
        assert reverse("admin:events_outboxevent_change", args=[oldest.pk]) in html
    assert 'id="pgi-relay"' in index.content.decode()


def test_a_fresh_backlog_is_not_late_and_an_empty_outbox_says_everything_is_published(admin_client, settings):
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "lag_warn_seconds": 60}
    waiting = outbox_row(sent_days_ago=None)

    fresh = panels(admin_client.get(reverse("admin:index")))[RELAY_PANEL]
    OutboxEvent.objects.filter(pk=waiting.pk).update(sent_at=timezone.now())
    drained = admin_client.get(reverse("admin:index"))

    assert (fresh["unsent"], fresh["late"]) == (1, False)
    assert (panels(drained)[RELAY_PANEL]["unsent"], panels(drained)[RELAY_PANEL]["late"]) == (0, False)
    assert 'data-unsent="0" data-late="no"' in drained.content.decode()
    assert "Every event is published" in drained.content.decode()


@pytest.mark.parametrize(("codenames", "shown"), [(["view_payment"], False), (["view_payment", "view_outboxevent"], True)])
def test_the_lag_panel_is_shown_to_staff_who_may_view_the_outbox(client, django_user_model, codenames, shown):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("teller", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(staff)

    index = client.get(reverse("admin:index"))

    assert (RELAY_PANEL in panels(index)) is shown
    assert "admin/payments/dashboard.html" in panels(index)
    assert (client.get(reverse("admin:events_outboxevent_changelist")).status_code == 200) is shown
