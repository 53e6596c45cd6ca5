"""The strict input building blocks refuse to be built lenient."""

import datetime
import zoneinfo

import pytest
from rest_framework import serializers

from pgi.api.serializers import StrictCharField, StrictInputSerializer, utc_text


@pytest.mark.parametrize("field", [serializers.CharField(max_length=5), serializers.BooleanField(), serializers.IntegerField()])
def test_an_input_serializer_with_a_lenient_drf_field_cannot_be_used(field):
    class Lenient(StrictInputSerializer):
        name = field

    with pytest.raises(AssertionError, match="not a strict input field"):
        Lenient(data={"name": "x"}).is_valid()


def test_a_string_field_without_a_length_bound_cannot_be_built():
    with pytest.raises(AssertionError, match="bounded"):
        StrictCharField()


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=datetime.UTC),
        datetime.datetime(2026, 12, 3, 14, 0, tzinfo=zoneinfo.ZoneInfo("UTC")),
        datetime.datetime(2026, 12, 3, 15, 30, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1, minutes=30))),
        datetime.datetime(2026, 12, 3, 9, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
        None,
    ],
)
def test_utc_text_writes_what_drfs_datetime_field_writes_in_utc(value, settings):
    settings.TIME_ZONE = "UTC"
    expected = None if value is None else serializers.DateTimeField(default_timezone=datetime.UTC).to_representation(value)
    assert utc_text(value) == expected
    if value is not None:
        assert expected.endswith("Z")


def test_utc_text_follows_a_datetime_format_setting(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DATETIME_FORMAT": "%Y-%m-%d %H:%M"}
    assert utc_text(datetime.datetime(2026, 12, 3, 14, 5, tzinfo=datetime.UTC)) == "2026-12-03 14:05"


def test_each_serializer_gets_its_own_bound_fields_and_the_declared_ones_stay_unbound():
    from payments.apis import PaymentInputSerializer

    first, second = PaymentInputSerializer(data={}), PaymentInputSerializer(data={})
    for name, declared in PaymentInputSerializer._declared_fields.items():
        mine, theirs = first.fields[name], second.fields[name]
        assert mine is not theirs and mine is not declared
        assert mine.parent is first and theirs.parent is second
        assert declared.parent is None and declared.field_name is None
    # A field with a child of its own (metadata: a dict of strings) gets its own child too.
    assert first.fields["metadata"].child is not second.fields["metadata"].child
    assert first.fields["metadata"].child.parent is first.fields["metadata"]
    # One serializer's errors are its own.
    assert not first.is_valid() and not second.is_valid()
    assert first.errors is not second.errors and first.errors == second.errors
