"""Request budgets as PGI writes them: `<requests>/<period>`, the period `s`, `min`, `hour` or `day`
(DRF's spelling, as PGI_API_RATE has always been read: `sec`, `m`, `h`, `d` and the like too)."""

import re

from django.core.exceptions import ValidationError

RATE_SHAPE = re.compile(r"(?P<requests>[1-9][0-9]{0,8})/(?P<period>s|sec|second|m|min|minute|h|hour|d|day)")
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_parse(rate: str | None) -> tuple[int, int] | None:
    """(requests, seconds) of a rate; None for an empty one (no budget). Raises ValueError otherwise."""
    if not rate:
        return None
    match = RATE_SHAPE.fullmatch(rate.strip())
    if match is None:
        raise ValueError(f"not a rate: {rate!r}")
    return int(match["requests"]), PERIOD_SECONDS[match["period"][0]]


def validate_rate(value: str) -> None:
    """Model field validator: empty, or a rate such as 600/min."""
    try:
        rate_parse(value)
    except ValueError:
        raise ValidationError(
            "Write it as requests/period, e.g. 600/min (periods: s, min, hour, day), or leave it empty.",
            code="invalid_rate",
        ) from None
