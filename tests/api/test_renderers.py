"""The API's JSON renderer: orjson's bytes are simplejson's, whatever the answer holds."""

import datetime
import uuid
from decimal import Decimal

import simplejson
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from pgi.api.renderers import DecimalJSONRenderer, simplejson_render
from tests.json_values import json_values

# What answers hold: text (any Unicode but lone surrogates, which the parser refuses), whole numbers,
# booleans, null, exact amounts, and objects and arrays of these.
_json = json_values(st.text(st.characters(exclude_categories=("Cs",)), max_size=20))


def render(data) -> bytes:
    return DecimalJSONRenderer().render(data)


@given(_json.filter(lambda data: data is not None))
def test_the_bytes_are_simplejsons(data):
    assert render(data) == simplejson_render(data)


@given(_json.filter(lambda data: data is not None))  # None is an empty body, below
def test_the_bytes_read_back_as_the_data(data):
    assert simplejson.loads(render(data).decode(), use_decimal=True) == data


def test_amounts_keep_their_digits():
    assert render({"amount": Decimal("50.00"), "tiny": Decimal("0.00000001"), "big": Decimal("1E+3")}) == (
        b'{"amount":50.00,"tiny":1E-8,"big":1E+3}'
    )
    assert render({"amount": Decimal("50.00")}) == simplejson_render({"amount": Decimal("50.00")})


def test_datetimes_uuids_lazy_text_and_drf_containers_as_drf_writes_them():
    moment = datetime.datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=datetime.UTC)
    data = ReturnDict(
        {
            "at": moment,
            "naive": datetime.datetime(2026, 12, 3, 14, 0),
            "day": datetime.date(2026, 12, 3),
            "time": datetime.time(14, 0, 1),
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "detail": gettext_lazy("Not found."),
            "items": ReturnList([Decimal("1.50"), moment], serializer=None),
            "pair": (1, "two"),
        },
        serializer=None,
    )
    body = render(data)
    assert body == simplejson_render(data)
    assert b'"at":"2026-12-03T14:00:00.123456Z"' in body
    assert b'"id":"12345678-1234-5678-1234-567812345678"' in body


def test_what_orjson_refuses_is_written_by_simplejson():
    # A lone surrogate echoed from a request body, an integer past 64 bits, a key that is not text.
    for data in ({"echo": "a\ud800b"}, {"n": 2**64 + 1}, {1: "one", "n": Decimal("2.00")}):
        assert render(data) == simplejson_render(data)
    assert render({"echo": "a\ud800b"}) == b'{"echo":"a\\ud800b"}'
    assert render({1: "one"}) == b'{"1":"one"}'


def test_none_is_an_empty_body():
    assert render(None) == b""
