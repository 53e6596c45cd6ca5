"""Opaque public ids: a type prefix and 26 Crockford base32 characters (48-bit time, 80 random bits).

Time-ordered, so new rows land at the end of the primary-key index instead of at random pages.
"""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
