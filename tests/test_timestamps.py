"""timestamptz read by psycopg's compiled loader (pgi.timestamps): the values Django's own loader reads."""

from datetime import timezone

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import pq

from pgi.timestamps import TIMESTAMPTZ_OID
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db

TEXTS = [
    "2026-12-02 20:22:10.874103+00",
    "2026-12-02 20:22:10+00",
    "2026-01-01 10:00:00.1+05",
    "2026-06-30 23:59:59.999999-09:30",
    "2024-02-29 12:00:00+14",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "1970-01-01 00:00:00+00:00:30",
]


def read(cursor) -> list:
    cursor.execute("SELECT " + ", ".join(f"'{text}'::timestamptz" for text in TEXTS))
    return list(cursor.fetchone())


def test_django_cursors_read_timestamps_with_the_compiled_loader():
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
    assert loader.__name__ == "UtcTimestamptzLoader" and loader.timezone is timezone.utc


def test_the_compiled_loader_reads_what_djangos_reads():
    with connection.cursor() as cursor:
        ours = read(cursor)
    with connection.cursor() as cursor:
        register_tzloader(timezone.utc, cursor.cursor)  # Django's own, on this cursor only
        assert "SpecificTzLoader" in cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT).__name__
        theirs = read(cursor)

    assert ours == theirs
    assert all(value.tzinfo is timezone.utc for value in ours)


def test_a_payment_reads_back_its_instants_aware_in_utc():
    payment = PaymentFactory()
    loaded = type(payment).objects.get(pk=payment.pk)
    assert loaded.created_at == payment.created_at and loaded.created_at.tzinfo is timezone.utc
