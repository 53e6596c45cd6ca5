"""fromAccount: what the schema's pattern admits is what the field takes, but for an IBAN's checksum."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from pgi.api.serializers import ACCOUNT_PATTERN, AccountField

PATTERN = re.compile(ACCOUNT_PATTERN)
BAD_CHECKSUM = "Not a valid IBAN"


def taken(value: str) -> bool | str:
    """True when the field takes `value`, else the message of its refusal."""
    try:
        AccountField().run_validation(value)
    except serializers.ValidationError as refusal:
        return str(refusal.detail[0])
    return True


def admitted(value: str) -> bool:
    return len(value) <= 64 and PATTERN.fullmatch(value) is not None


@settings(max_examples=300, deadline=None)
@given(st.from_regex(PATTERN, fullmatch=True).filter(lambda value: len(value) <= 64))
def test_a_value_the_pattern_admits_is_taken_or_refused_for_its_iban_checksum_only(value):
    outcome = taken(value)
    assert outcome is True or outcome.startswith(BAD_CHECKSUM), (value, outcome)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=70),
        st.text(alphabet="DEGB0123456789 abcXYZ._:-ßé", max_size=40),
        st.from_regex(r"[A-Za-z]{2}[0-9]{2}[ A-Za-z0-9]{10,40}", fullmatch=True),
    )
)
def test_a_value_the_field_takes_is_admitted_by_the_pattern(value):
    if taken(value) is True:
        assert admitted(value), value


def test_examples():
    for value in ("account123", "DE89 3704 0044 0532 0130 00", "de89370400440532013000", " DE89370400440532013000 "):
        assert taken(value) is True and admitted(value), value
    for value in (" account123", "account123 ", "acc 123", "ab", "DE89 3704 0044 0532 0130 01"):
        assert taken(value) is not True, value
    assert not admitted(" account123") and not admitted("acc 123")
    assert taken("DE89370400440532013000ß") is not True  # "ß".upper() is "SS": not read as an IBAN's letters
