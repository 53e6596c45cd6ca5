import re
import time

from pgi.ids import is_id, new_id

ID_SHAPE = re.compile(r"^pay_[0-9abcdefghjkmnpqrstvwxyz]{26}$")


def test_new_id_is_the_prefix_and_26_crockford_base32_characters():
    assert ID_SHAPE.match(new_id("pay"))


def test_new_ids_are_unique():
    ids = {new_id("pay") for _ in range(10_000)}

    assert len(ids) == 10_000


def test_ids_sort_by_creation_time_across_milliseconds():
    first = new_id("pay")
    time.sleep(0.002)
    second = new_id("pay")

    assert first < second


def test_id_leads_with_the_creation_time_in_milliseconds():
    before = int(time.time() * 1000)
    value = new_id("evt").split("_", 1)[1]
    after = int(time.time() * 1000)

    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    number = 0
    for char in value:
        number = number * 32 + alphabet.index(char)
    assert before <= number >> 80 <= after


def test_a_new_id_has_the_shape_of_an_id_of_its_prefix():
    assert is_id(new_id("pay"), "pay")
    assert not is_id(new_id("pay"), "ref")


def test_only_the_exact_shape_of_an_id_may_exist():
    good = "pay_" + "0" * 26

    assert is_id(good, "pay")
    for cannot_exist in [
        "pay_" + "0" * 25,
        "pay_" + "0" * 27,
        "pay_" + "x" * 240,
        "PAY_" + "0" * 26,
        "pay_" + "O" * 26,  # upper case: ids are written in lower case only
        "pay_" + "i" * 26,  # not in Crockford's alphabet
        "pay_" + "0" * 25 + "\x00",
        "pay_" + "0" * 25 + "/",
        "pay" + "0" * 27,
        "",
    ]:
        assert not is_id(cannot_exist, "pay"), cannot_exist
