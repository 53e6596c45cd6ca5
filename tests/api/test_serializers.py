"""The strict input building blocks refuse to be built lenient."""

import pytest
from rest_framework import serializers

from pgi.api.serializers import StrictCharField, StrictInputSerializer


@pytest.mark.parametrize("field", [serializers.CharField(max_length=5), serializers.BooleanField(), serializers.IntegerField()])
def test_an_input_serializer_with_a_lenient_drf_field_cannot_be_used(field):
    class Lenient(StrictInputSerializer):
        name = field

    with pytest.raises(AssertionError, match="not a strict input field"):
        Lenient(data={"name": "x"}).is_valid()


def test_a_string_field_without_a_length_bound_cannot_be_built():
    with pytest.raises(AssertionError, match="bounded"):
        StrictCharField()
