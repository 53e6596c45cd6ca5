import re
import time

from pgi.ids import new_id

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
