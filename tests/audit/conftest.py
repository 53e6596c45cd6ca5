import pytest
from django.db import connection

from pgi.audit.models import AuditEvent


def events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


@pytest.fixture
def audit_insert_fails(db):
    """PostgreSQL refuses the next audit event (a trigger of this test's own, rolled back with it):
    the change that records it must fail with it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION audit_test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit insert refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER audit_refuse_insert BEFORE INSERT ON audit_auditevent "
            "FOR EACH ROW EXECUTE FUNCTION audit_test_refuse_insert()"
        )
    yield


# The webhook tests' receiver and endpoints, for redelivery.
from tests.webhooks.conftest import allow_private, endpoint_for, receiver  # noqa: E402,F401
from tests.refunds.conftest import no_send_task  # noqa: E402,F401
