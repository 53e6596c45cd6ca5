"""The few places where the settlement SQL differs between PostgreSQL (production, the benchmark)
and SQLite (`make run`'s embedded default): one query, these fragments chosen by the connection.

SQLite has no exact decimal type: Django stores an amount with NUMERIC affinity (a float unless it
is a whole number) and SQL arithmetic on it is floating point. So on SQLite the run computes in
integers: each stored amount is read as its count of ten-thousandths (amount columns have four
decimal places; ROUND of the float times 10 000 is exact for every amount SQLite holds exactly,
15 significant digits), fees are integer arithmetic (fees.fee_sql), sums are integer sums, and a
computed amount is written back as ten-thousandths / 10000.0: the float nearest the decimal, which
Django's SQLite converter reads back as that decimal. Python converts totals at the edge.
"""

import json
from decimal import Decimal

from django.db import connection

from pgi.money import AMOUNT_DECIMAL_PLACES

SCALE = 10**AMOUNT_DECIMAL_PLACES


def integers() -> bool:
    """True where amounts are computed as integer ten-thousandths (SQLite)."""
    return connection.vendor == "sqlite"


def money(expr: str) -> str:
    """A stored amount as the run computes with it: numeric, or integer ten-thousandths."""
    return f"CAST(ROUND(({expr}) * {SCALE}) AS INTEGER)" if integers() else expr


def stored(expr: str) -> str:
    """A computed amount (money's kind) as the amount column stores it."""
    return f"(({expr}) / {SCALE}.0)" if integers() else expr


def to_decimal(value) -> Decimal:
    """A sum of money(…) as read from the cursor, as a Decimal."""
    return Decimal(value).scaleb(-AMOUNT_DECIMAL_PLACES) if integers() else value


def typed(param: str, pg_type: str) -> str:
    """A parameter that may be NULL: PostgreSQL needs its type to compare it with NULL."""
    return param if integers() else f"{param}::{pg_type}"


def moment(value):
    """A datetime (or date) parameter as the backend compares it with stored ones: SQLite keeps
    them as text in UTC without an offset, so a raw query must pass the same text."""
    if value is None:
        return None
    if hasattr(value, "hour"):
        return connection.ops.adapt_datetimefield_value(value)
    return connection.ops.adapt_datefield_value(value)


# The batches of a run and their fee plans, one row per merchant and currency: (batch_id,
# merchant_id, currency, bps, divisor, unit, fixed, minimum). PostgreSQL: parallel arrays;
# SQLite (no arrays): one JSON array of rows.
_UNNEST = (
    "(SELECT * FROM unnest(%(batch_ids)s::text[], %(merchant_ids)s::bigint[], %(currencies)s::text[],"
    " %(bps)s::integer[], %(divisors)s::numeric[], %(units)s::numeric[], %(fixeds)s::numeric[],"
    " %(minimums)s::numeric[]) AS t(batch_id, merchant_id, currency, bps, divisor, unit, fixed, minimum))"
)
BATCH_COLUMNS = ("batch_id", "merchant_id", "currency", "bps", "divisor", "unit", "fixed", "minimum")


def batches_relation() -> str:
    if not integers():
        return _UNNEST
    columns = ", ".join(f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(BATCH_COLUMNS))
    return f"(SELECT {columns} FROM json_each(%(batches)s))"


def batches_params(rows: list[tuple]) -> dict:
    """The parameters of batches_relation for rows of BATCH_COLUMNS."""
    if integers():
        return {"batches": json.dumps([list(row) for row in rows])}
    columns = list(zip(*rows)) if rows else [()] * len(BATCH_COLUMNS)
    names = ("batch_ids", "merchant_ids", "currencies", "bps", "divisors", "units", "fixeds", "minimums")
    return {name: list(column) for name, column in zip(names, columns)}
