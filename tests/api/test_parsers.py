"""loads_strict: the JSON reading every JSON endpoint uses, reusable for gateway bodies."""

from decimal import Decimal

import pytest

from pgi.api.parsers import MAX_DEPTH, DuplicateKey, loads_strict


def test_loads_strict_refuses_a_key_repeated_in_a_nested_object():
    with pytest.raises(DuplicateKey) as caught:
        loads_strict('{"a": [{"b": {"c": 1, "c": 2}}]}')

    assert caught.value.key == '"c"'


def test_loads_strict_reads_numbers_as_decimal_and_allows_equal_keys_in_sibling_objects():
    assert loads_strict('{"a": {"k": 1.10}, "b": {"k": 2}}') == {"a": {"k": Decimal("1.10")}, "b": {"k": Decimal("2")}}


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_loads_strict_refuses_non_finite_numbers(text):
    with pytest.raises(ValueError):
        loads_strict(text)


def test_loads_strict_turns_nesting_too_deep_into_a_value_error():
    with pytest.raises(ValueError):
        loads_strict("[" * 100_000 + "]" * 100_000)


def test_loads_strict_reads_nesting_up_to_its_bound_and_refuses_one_level_more():
    assert loads_strict("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(ValueError, match="nested deeper"):
        loads_strict('{"a":' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}")


@pytest.mark.parametrize("text", ['{"\\ud800": 1}', '{"a": "x\\udfffy"}', '["\\udc00"]', '{"a": {"\\ud83d": []}}'])
def test_loads_strict_refuses_a_lone_surrogate_in_any_key_or_value(text):
    with pytest.raises(ValueError, match="surrogate"):
        loads_strict(text)


def test_loads_strict_keeps_a_surrogate_pair_which_is_one_character():
    assert loads_strict('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_a_duplicate_key_is_named_escaped_whatever_it_holds():
    with pytest.raises(DuplicateKey) as caught:
        loads_strict('{"\\u00e9\\n": 1, "\\u00e9\\n": 2}')

    assert caught.value.key == '"\\u00e9\\n"'


@pytest.mark.parametrize(
    "text", ["1e1001", "1E+999999999", "1e99999999999999999999", "-1e-1001", "0E+5000", "1" + "0" * 1001, "0.0e-1001"]
)
def test_loads_strict_refuses_a_number_beyond_its_exponent_bound(text):
    from pgi.api.parsers import NumberOutOfRange

    with pytest.raises(NumberOutOfRange, match="beyond"):
        loads_strict(f'{{"n": {text}}}')


@pytest.mark.parametrize("text", ["1e1000", "1e-1000", "9.99e999", "123456789012345678901234567890", "0.00"])
def test_loads_strict_reads_numbers_within_its_exponent_bound(text):
    assert loads_strict(f'{{"n": {text}}}') == {"n": Decimal(text)}
