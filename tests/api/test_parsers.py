"""loads_strict: the JSON reading every JSON endpoint uses, reusable for gateway bodies."""

from decimal import Decimal

import pytest

from pgi.api.parsers import DuplicateKey, loads_strict


def test_loads_strict_refuses_a_key_repeated_in_a_nested_object():
    with pytest.raises(DuplicateKey) as caught:
        loads_strict('{"a": [{"b": {"c": 1, "c": 2}}]}')

    assert caught.value.key == "c"


def test_loads_strict_reads_numbers_as_decimal_and_allows_equal_keys_in_sibling_objects():
    assert loads_strict('{"a": {"k": 1.10}, "b": {"k": 2}}') == {"a": {"k": Decimal("1.10")}, "b": {"k": Decimal("2")}}


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_loads_strict_refuses_non_finite_numbers(text):
    with pytest.raises(ValueError):
        loads_strict(text)


def test_loads_strict_turns_nesting_too_deep_into_a_value_error():
    with pytest.raises(ValueError):
        loads_strict("[" * 100_000 + "]" * 100_000)
