"""Opaque public ids: a type prefix and 26 Crockford base32 characters (48-bit time, 80 random bits).

Time-ordered, so new rows land at the end of the primary-key index instead of at random pages.
"""

import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_BODY = re.compile(f"[{_ALPHABET}]{{26}}")


def new_id(prefix: str) -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def is_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id that new_id(prefix) makes: one that may exist.

    Anything else (another prefix, another length, upper case, any other character) cannot be a
    row's id, so it can be answered as unknown without a query and without storing it anywhere.
    """
    head, _, body = value.partition("_")
    return head == prefix and _BODY.fullmatch(body) is not None
