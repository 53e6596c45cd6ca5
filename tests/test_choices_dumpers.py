"""Choices members sent with their base type's dumpers, registered per class (pgi.choices_dumpers)."""

import psycopg
import pytest
from django.db import connection, models
from psycopg.adapt import AdaptersMap, PyFormat
from psycopg.types.string import StrDumper

from payments.models import OperationKind, OperationStatus, PaymentStatus, PaymentStatusChange
from pgi.choices_dumpers import choices_classes, register

pytestmark = pytest.mark.django_db

FORMATS = (PyFormat.AUTO, PyFormat.TEXT, PyFormat.BINARY)


def test_every_choices_class_of_the_models_is_found():
    found = set(choices_classes())
    assert {PaymentStatus, OperationKind, OperationStatus, PaymentStatusChange.Source} <= found
    assert all(issubclass(cls, (models.TextChoices, models.IntegerChoices)) for cls in found)


def test_a_connection_holds_each_choices_class_in_psycopgs_table_of_exact_classes():
    connection.ensure_connection()
    adapters = connection.connection.adapters
    for cls in choices_classes():
        base = str if issubclass(cls, str) else int
        for fmt in FORMATS:
            # `_dumpers[fmt]` is the table psycopg reads first, by the value's exact class; a class
            # missing from it costs a walk of its MRO on every statement.
            assert adapters._dumpers[fmt].get(cls) is adapters.get_dumper(base, fmt), (cls, fmt)


def test_a_choices_member_reaches_postgresql_as_its_text_does():
    with connection.cursor() as cursor:
        for member in (PaymentStatus.COMPLETED, OperationKind.CAPTURE, PaymentStatusChange.Source.API):
            query = "SELECT %s::text, %s || 'x', %s = 'Completed'"
            cursor.execute(query, [member, member, member])
            sent = cursor.fetchone()
            cursor.execute(query, [str.__str__(member)] * 3)
            assert sent == cursor.fetchone()
            assert type(sent[0]) is str and sent[0] == member.value


def test_binary_parameters_too():
    connection.ensure_connection()
    with connection.connection.cursor(binary=True) as cursor:
        cursor.execute("SELECT %b::text", [PaymentStatus.FAILED])
        assert cursor.fetchone() == (PaymentStatus.FAILED.value,)


def test_a_dumper_of_a_classes_own_is_kept():
    adapters = AdaptersMap(psycopg.adapters)

    class Shouting(StrDumper):
        def dump(self, obj):
            return super().dump(obj.upper())

    adapters.register_dumper(PaymentStatus, Shouting)
    register(adapters)
    assert adapters.get_dumper(PaymentStatus, PyFormat.AUTO) is Shouting
    assert adapters.get_dumper(OperationKind, PyFormat.AUTO) is adapters.get_dumper(str, PyFormat.AUTO)
