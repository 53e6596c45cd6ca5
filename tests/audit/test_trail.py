"""The audit trail itself: append-only in Python and in PostgreSQL, written only inside the
transaction of the change, and with it or not at all."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from pgi.audit.actors import Actor
from pgi.audit.models import AppendOnly, AuditEvent
from pgi.audit.services import NotInTransaction, audit_record
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_create, api_key_revoke

from .conftest import events

pytestmark = pytest.mark.django_db

STAFF = Actor(username="sec", via="admin", user_id=7, source_ip="203.0.113.9")


@pytest.fixture
def event(merchant):
    with transaction.atomic():
        return audit_record(actor=STAFF, action="add", obj=merchant, after={"code": merchant.code})


def test_an_event_names_who_when_where_and_what(event, merchant):
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_id, stored.actor_username, stored.via, stored.source_ip) == (7, "sec", "admin", "203.0.113.9")
    assert (stored.action, stored.object_type, stored.object_id) == ("add", "merchants.merchant", str(merchant.pk))
    assert stored.after == {"code": "merchant456"} and stored.created_at is not None


def test_the_model_refuses_to_change_or_delete_an_event(event):
    event.note = "rewritten"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(note="rewritten")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).note == ""


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET note = 'rewritten'",
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditevent WHERE false",  # refused even when it would match nothing
        "TRUNCATE audit_auditevent",
    ],
)
def test_postgresql_refuses_update_delete_and_truncate_by_raw_sql(event, statement):
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL pgi.audit_truncate = 'deny'")  # the tests' own flush allows TRUNCATE
            cursor.execute(statement)
    assert AuditEvent.objects.filter(pk=event.pk, note="").exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_outside_a_transaction_is_refused(merchant):
    with pytest.raises(NotInTransaction):
        audit_record(actor=STAFF, action="add", obj=merchant)
    assert not AuditEvent.objects.exists()


def test_no_actor_records_nothing(merchant):
    with transaction.atomic():
        assert audit_record(actor=None, action="add", obj=merchant) is None
    assert not AuditEvent.objects.exists()


def test_a_change_that_rolls_back_leaves_no_event(merchant):
    api_key, _ = api_key_create(name="k", merchant=merchant)

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        api_key_revoke(api_key=api_key, actor=STAFF)
        1 / 0

    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None
    assert events() == []


def test_an_event_that_cannot_be_written_rolls_the_change_back(merchant, audit_insert_fails):
    api_key, _ = api_key_create(name="k", merchant=merchant)

    with pytest.raises(DatabaseError, match="audit insert refused"):
        api_key_revoke(api_key=api_key, actor=STAFF)

    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_revoking_records_once_and_a_second_revocation_nothing(merchant):
    api_key, _ = api_key_create(name="k", merchant=merchant)

    api_key_revoke(api_key=api_key, actor=STAFF)
    api_key_revoke(api_key=api_key, actor=STAFF)

    [revoked] = events(action="api_key.revoke")
    assert revoked.before == {"revoked_at": None} and revoked.after["revoked_at"].startswith("20")


def test_the_truncate_flag_opens_nothing_outside_a_test_database():
    """The flag the test suite sets to empty its own database is no way in elsewhere: the trigger's
    function (migrations 0001 and 0002) applied in a database not named test_*, TRUNCATE refused."""
    import importlib
    import uuid

    import psycopg

    first = importlib.import_module("pgi.audit.migrations.0001_audit_trail_audit")
    second = importlib.import_module("pgi.audit.migrations.0002_audit_truncate_test_databases_only")
    settings_dict = connection.settings_dict
    server = psycopg.conninfo.make_conninfo(
        host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"], password=settings_dict["PASSWORD"] or None, dbname="postgres",
    )  # fmt: skip
    name = f"pgi_audit_check_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(server, dbname=name), autocommit=True) as db:
            db.execute("CREATE TABLE audit_auditevent (id int)")
            db.execute("INSERT INTO audit_auditevent VALUES (1)")
            db.execute(first.PG_FORWARD)
            db.execute(second.PG_FORWARD)
            with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
                with db.transaction():
                    db.execute("SET LOCAL pgi.audit_truncate = 'allow'")
                    db.execute("TRUNCATE audit_auditevent")
            assert db.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] == 1
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
