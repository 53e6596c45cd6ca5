"""API key format: `pgi_<prefix>_<secret>`. The prefix is shown in lists; the secret never again."""

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "pgi"
PREFIX_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32
# Only what generate_key makes: anything else (a NUL byte, say) must not reach a database query.
PREFIX_SHAPE = re.compile(rf"[0-9a-f]{{{PREFIX_BYTES * 2}}}")


def generate_key() -> tuple[str, str]:
    """A new (full_key, prefix) pair."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{KEY_PREFIX}_{prefix}_{secret}", prefix


def hash_key(full_key: str) -> str:
    # The key has 256 bits of entropy, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(full_key.encode()).hexdigest()


def split_prefix(full_key: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    parts = full_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not PREFIX_SHAPE.fullmatch(parts[1]) or not parts[2]:
        return None
    return parts[1]


def hashes_match(full_key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(full_key), stored_hash)
