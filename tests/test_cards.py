"""pgi.cards: what is a card number (13 to 19 digits passing Luhn, whole or grouped, anywhere in a
text), what is not (IBANs, dates, references, numbers failing Luhn), masking and redaction."""

import time
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum import iban, luhn

from pgi.cards import (
    KEY_PLACEHOLDER,
    _card_spans,
    _card_spans_searched,
    card_number_paths,
    has_card_number,
    mask,
    redact,
)

DIGITS = st.text(alphabet="0123456789", min_size=12, max_size=18)


def with_check_digit(body: str) -> str:
    return body + luhn.calc_check_digit(body)


def grouped(number: str, sizes: list[int], separator: str) -> str:
    parts, at = [], 0
    for size in sizes:
        if at < len(number):
            parts.append(number[at : at + size])
            at += size
    if at < len(number):
        parts.append(number[at:])
    return separator.join(parts)


@given(body=DIGITS)
def test_every_13_to_19_digit_number_passing_luhn_is_a_card_number(body):
    assert has_card_number(with_check_digit(body))


@given(body=DIGITS, wrong=st.integers(1, 9))
def test_a_number_failing_luhn_is_not(body, wrong):
    good = int(luhn.calc_check_digit(body))
    assert not has_card_number(body + str((good + wrong) % 10))


@given(
    body=DIGITS,
    separator=st.sampled_from([" ", "-"]),
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    before=st.sampled_from(["", "card ", "pay with ", "(", "ref: ", "x\n"]),
    after=st.sampled_from(["", " thanks", ".", ")", " 42", "\n"]),
)
def test_grouped_with_spaces_or_dashes_and_embedded_in_text_it_is_found(body, separator, sizes, before, after):
    assert has_card_number(before + grouped(with_check_digit(body), sizes, separator) + after)


@given(length=st.one_of(st.integers(1, 12), st.integers(20, 40)), data=st.data())
def test_too_few_or_too_many_digits_are_not_a_card_number(length, data):
    digits = data.draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    assert not has_card_number(digits)


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005", "5555555555554444",
     "6011000990139424", "4222222222222", "6304000000000000000"],
)
def test_well_known_test_card_numbers_are_card_numbers(number):
    assert has_card_number(number)


@pytest.mark.parametrize(
    "text",
    [
        "DE89370400440532013000",  # IBANs: letters glue their digits
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "NL91ABNA0417164300",
        "account123",
        "shopper_42:8415718415172200",  # an Adyen stored card id that fails Luhn
        "pm_card_visa",
        "2024-05-17 2024-05-18",  # mixed separators: two dates, not one number
        "order 4111111111111111x",  # glued to a letter
        "card4111111111111111",
        "41111111111111110",  # 17 digits failing Luhn
        "4111111111111111111111",  # 22 digits: too long, and no window inside is taken
        "",
    ],
)
def test_account_ids_ibans_and_other_text_are_not_card_numbers(text):
    assert not has_card_number(text)


def test_a_bare_bank_account_number_passing_luhn_is_refused_as_a_card_number():
    # Decided (docs/04-operations.md): PGI cannot tell it from a card number. Send an IBAN instead.
    assert has_card_number("7992739871300")


def test_mask_shows_the_last_four_only_and_never_the_length():
    assert mask("DE89370400440532013000") == "****3000"
    assert mask("account123") == "****t123"
    assert mask("abcd") == mask("abc") == "****"


@given(body=DIGITS, before=st.text(max_size=20), after=st.text(max_size=20))
def test_redact_leaves_no_card_number_behind(body, before, after):
    number = with_check_digit(body)
    text = f"{before} {number} {after}"
    redacted = redact(text)
    assert number not in redacted
    assert not has_card_number(redacted)
    assert f"[card ****{number[-4:]}]" in redacted


def test_redact_keeps_the_rest_of_the_text():
    assert redact("paid with 4111 1111 1111 1111 today, ref 12") == "paid with [card ****1111] today, ref 12"


def test_paths_name_values_keys_list_items_and_numbers_never_the_number():
    data = {
        "fromAccount": "4111111111111111",
        "amount": Decimal("50.00"),
        "metadata": {"note": "card 4111-1111-1111-1111", "4111111111111111": "x", "ok": "fine"},
        "items": ["a", "5555 5555 5555 4444"],
        "raw": 4111111111111111,
        "long": 6304000000000000000,  # 19 digits: beyond a float's exact integers
        "flag": True,
    }
    paths = card_number_paths(data)
    assert paths == ["fromAccount", "metadata.note", f"metadata.{KEY_PLACEHOLDER}", "items[1]", "raw", "long"]
    assert all("4111" not in path for path in paths)


@given(text=st.text(max_size=60))
def test_any_text_either_has_a_card_number_or_redacts_to_itself(text):
    assume(not has_card_number(text))
    assert redact(text) == text


def iban_of(country: str, bban: str) -> str:
    return next(f"{country}{check:02d}{bban}" for check in range(100) if iban.is_valid(f"{country}{check:02d}{bban}"))


@given(bban=st.text(alphabet="0123456789", min_size=18, max_size=18))
def test_a_valid_iban_printed_in_groups_of_four_is_not_a_card_number(bban):
    account = iban_of("DE", bban)
    printed = " ".join(account[at : at + 4] for at in range(0, len(account), 4))
    assert not has_card_number(printed)
    assert not has_card_number(f"Refund to {printed}, thanks")


def test_a_card_number_beside_a_printed_iban_is_still_found():
    printed = "DE74 2914 1777 6317 0669 07"  # its groups pass Luhn: a card number but for the IBAN
    assert has_card_number(printed.replace("DE74", "XX74"))
    assert not has_card_number(printed)
    assert has_card_number(f"{printed} 4111 1111 1111 1111")
    assert redact(f"{printed} 4111111111111111") == f"{printed} [card ****1111]"


def test_a_long_run_of_short_digit_groups_is_checked_in_linear_time():
    """An unauthenticated path of 8 KB, `/1-1-1-…`, is logged (and so checked) twice: it took over a
    second of CPU before each window was built up group by group."""
    started = time.monotonic()
    assert not has_card_number("1 " * 10_000)
    assert not has_card_number("-".join("1" * 10_000))
    assert time.monotonic() - started < 2  # about 0.3 s; the quadratic check took about 10 s


@pytest.mark.parametrize(
    "disguised",
    [
        "card 4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u20091111\u20091111\u20091111",  # thin spaces
        "4111\t1111\t1111\t1111",
        "4111\n1111\n1111\n1111",
        "4111  1111  1111  1111",
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "4111\u00ad1111\u00ad1111\u00ad1111",  # soft hyphens
        "4111\u200b1111\u200b1111\u200b1111",  # zero-width spaces
        "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",  # full width
        "\u0664" + "\u0661" * 15,  # Arabic-Indic digits
    ],
)
def test_a_card_number_in_disguise_is_found_and_redacted(disguised):
    assert has_card_number(disguised)
    redacted = redact(disguised)
    assert "[card ****1111]" in redacted and not has_card_number(redacted)


@pytest.mark.parametrize("text", ["2024-05-17 - 2024-05-18", "DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000"])
def test_undoing_disguises_makes_no_card_number_of_dates_or_ibans(text):
    assert not has_card_number(text)


@given(body=DIGITS, blank=st.sampled_from(["\u00a0", "\u2009", "\u202f", "\u3000", "\t", "\r\n", "\u200b"]))
def test_any_blank_between_groups_of_four_hides_nothing(body, blank):
    number = with_check_digit(body)
    grouped = blank.join(number[i : i + 4] for i in range(0, len(number), 4))
    assert has_card_number(f"note {grouped} end")


@given(text=st.text(alphabet="0123456789 -ab", max_size=60) | st.text(max_size=40))
def test_texts_passed_over_for_lack_of_thirteen_digits_hold_no_card_number(text):
    assert list(_card_spans(text)) == list(_card_spans_searched(text))
