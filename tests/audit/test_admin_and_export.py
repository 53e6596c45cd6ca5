"""Security reads the audit trail in the admin and exports it: nobody edits or deletes an event
there, superusers included; export needs audit.export_auditevent and writes no formula."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse

from pgi.audit.actors import Actor
from pgi.audit.models import AuditEvent
from pgi.audit.services import audit_record

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:audit_auditevent_changelist"
EXPORT = "admin:audit_auditevent_export"


@pytest.fixture
def recorded(merchant):
    with transaction.atomic():
        audit_record(actor=Actor(username="=HYPERLINK(1)", via="admin", user_id=1, source_ip="192.0.2.1"),
                     action="change", obj=merchant, before={"name": "Old"}, after={"name": "+cmd|' /C calc'!A0"},
                     note="@SUM(1)")  # fmt: skip
        audit_record(actor=Actor(username="ops", via="command:create_merchant"), action="add", obj=merchant,
                     after={"code": merchant.code})  # fmt: skip
    return list(AuditEvent.objects.order_by("id"))


def security(client, django_user_model, *codenames):
    user = django_user_model.objects.create_user("sec", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="audit", codename__in=codenames))
    client.force_login(user)
    return client


def test_no_one_adds_changes_or_deletes_an_event_in_the_admin_superusers_included(admin_client, recorded):
    event = recorded[0]

    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    page = admin_client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"note": "x"}).status_code == 403
    assert admin_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    listing = admin_client.get(reverse(CHANGELIST))
    assert "delete_selected" not in listing.context["action_form"].fields["action"].choices.__repr__()
    assert AuditEvent.objects.get(pk=event.pk).note == "@SUM(1)"


def test_the_permissions_to_grant_are_view_and_export_only():
    assert set(Permission.objects.filter(content_type__app_label="audit").values_list("codename", flat=True)) == {
        "view_auditevent", "export_auditevent",
    }  # fmt: skip


def test_the_list_filters_by_actor_action_object_type_and_date_and_searches(client, django_user_model, recorded):
    viewer = security(client, django_user_model, "view_auditevent")

    by_actor = viewer.get(reverse(CHANGELIST), {"actor_username": "ops"})
    by_action = viewer.get(reverse(CHANGELIST), {"action": "change"})
    by_type = viewer.get(reverse(CHANGELIST), {"object_type": "payments.payment"})
    day = recorded[0].created_at
    today = viewer.get(reverse(CHANGELIST), {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day})
    yesterday = viewer.get(reverse(CHANGELIST), {"created_at__lt": f"{day.date().isoformat()} 00:00:00+00:00"})
    searched = viewer.get(reverse(CHANGELIST), {"q": "ops"})

    assert [e.pk for e in by_actor.context["cl"].result_list] == [recorded[1].pk]
    assert [e.pk for e in by_action.context["cl"].result_list] == [recorded[0].pk]
    assert list(by_type.context["cl"].result_list) == []
    assert len(today.context["cl"].result_list) == 2
    assert list(yesterday.context["cl"].result_list) == []
    assert [e.pk for e in searched.context["cl"].result_list] == [recorded[1].pk]


def test_export_needs_its_own_permission(client, django_user_model, recorded):
    viewer = security(client, django_user_model, "view_auditevent")

    assert viewer.get(reverse(EXPORT)).status_code == 403
    assert b'id="export-csv"' not in viewer.get(reverse(CHANGELIST)).content
    action = viewer.post(reverse(CHANGELIST), {"action": "export_selected", "_selected_action": [recorded[0].pk]})
    assert action["Content-Type"].startswith("text/html")  # not offered: the list again, no file


def test_export_streams_the_filtered_events_oldest_first_with_no_formula(client, django_user_model, recorded):
    exporter = security(client, django_user_model, "view_auditevent", "export_auditevent")
    assert b'id="export-csv"' in exporter.get(reverse(CHANGELIST)).content

    response = exporter.get(reverse(EXPORT))

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["id"] for r in rows] == [str(e.pk) for e in recorded]
    first = rows[0]
    assert first["actor_username"] == "'=HYPERLINK(1)" and first["note"] == "'@SUM(1)"
    assert first["after"] == '{"name": "+cmd|\' /C calc\'!A0"}'  # JSON text: starts with {, not a formula
    assert first["source_ip"] == "192.0.2.1" and first["created_at"].endswith("Z")
    filtered = exporter.get(reverse(EXPORT), {"via": "command:create_merchant"})
    assert len(list(csv.DictReader(io.StringIO(b"".join(filtered.streaming_content).decode())))) == 1


def test_exporting_the_selected_events(client, django_user_model, recorded):
    exporter = security(client, django_user_model, "view_auditevent", "export_auditevent")

    response = exporter.post(reverse(CHANGELIST), {"action": "export_selected", "_selected_action": [recorded[1].pk]})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["add"]


@pytest.fixture
def iban_changed(merchant):
    with transaction.atomic():
        audit_record(actor=Actor(username="ops", via="admin", user_id=1), action="change", obj=merchant,
                     before={"settlement_iban": "GB29NWBK60161331926819", "name": "Old"},
                     after={"settlement_iban": "DE89370400440532013000", "name": "New"})  # fmt: skip
    return AuditEvent.objects.get(action="change")


def test_security_sees_account_identifiers_in_before_and_after_masked_on_the_page_and_in_the_export(
    client, django_user_model, iban_changed
):
    viewer = security(client, django_user_model, "view_auditevent", "export_auditevent")

    page = viewer.get(reverse("admin:audit_auditevent_change", args=[iban_changed.pk])).content.decode()
    exported = b"".join(viewer.get(reverse(EXPORT)).streaming_content).decode()

    for shown in (page, exported):
        assert "GB29NWBK60161331926819" not in shown and "DE89370400440532013000" not in shown
        assert "•••• 6819" in shown and "•••• 3000" in shown
        assert "Old" in shown and "New" in shown  # the other fields as recorded
    assert iban_changed.after["settlement_iban"] == "DE89370400440532013000"  # recorded whole


def test_staff_who_may_see_accounts_whole_see_them_whole_in_the_trail(admin_client, iban_changed):
    page = admin_client.get(reverse("admin:audit_auditevent_change", args=[iban_changed.pk])).content.decode()
    exported = b"".join(admin_client.get(reverse(EXPORT)).streaming_content).decode()

    for shown in (page, exported):
        assert "GB29NWBK60161331926819" in shown and "DE89370400440532013000" in shown
