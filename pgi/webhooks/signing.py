"""The signature on every delivery: HMAC-SHA256 over `<unix timestamp>.<body>`, Stripe's scheme.

`PGI-Signature: t=1717171717,v1=<hex>[,v1=<hex>]`: one v1 per secret valid now (two during a
rotation). A receiver accepts the delivery when any v1 matches its secret and t is recent.
"""

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "PGI-Signature"
SECRET_PREFIX = "whsec_"


def secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `timestamp.body` under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(*, secrets: list[str], timestamp: int, body: bytes) -> str:
    signed = ",".join(f"v1={signature(secret=secret, timestamp=timestamp, body=body)}" for secret in secrets)
    return f"t={timestamp},{signed}"
