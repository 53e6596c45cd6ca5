"""The checks of a report's values: in Python (line_problem, SQLite's load) and in SQL
(_problem_sql, PostgreSQL's): the same checks in the same order. _insert_sql checks and casts the
staged lines into GatewayReportLine in one pass; _check_sql names the first bad line."""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal

from iso4217 import Currency

from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, UnknownCurrency, currency_exponent

from .models import GatewayReportLine, LineKind, ReportFormat

LINE_TABLE = GatewayReportLine._meta.db_table
_STAGE = "recon_stage"  # the temporary staging table of text columns (loading._copy_postgresql)

# --- checking the values --------------------------------------------------------------------------

# The record types each format has (lower case): the simulator books captures and refunds only.
FORMAT_KINDS = {
    ReportFormat.SIMULATOR: ("capture", "refund"),
    ReportFormat.PGI: tuple(kind.value for kind in LineKind),
    ReportFormat.STRIPE: tuple(kind.value for kind in LineKind),
    ReportFormat.ADYEN: tuple(kind.value for kind in LineKind),
}
# Kinds that move a payment's or a refund's money: their amount is above zero.
MONEY_KINDS = ("capture", "payment", "refund")
# A plain decimal: digits, optionally a point and digits (no sign, exponent, NaN, `.5` or `5.`).
AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
AMOUNT_INTEGER_DIGITS = AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES
# ISO 8601 with a date, a time and an optional offset (none: UTC).
BOOKED_AT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
FIELD_LIMITS = {"gateway_reference": 128, "payment_id": 64, "refund_id": 64, "status": 32}
_BLANK = "\x1fblank"  # what a blank line is staged as (skipped; the rows after it keep their numbers)


@functools.cache
def currency_digits() -> dict[str, int]:
    """Every ISO 4217 currency that can carry a payment, with its minor-unit digits (pgi.money)."""
    digits = {}
    for currency in Currency:
        try:
            digits[currency.code] = currency_exponent(currency.code)
        except UnknownCurrency:
            continue
    return digits


def _amount_problem(name: str, value: str, digits: int, currency: str) -> str | None:
    if not re.match(AMOUNT_PATTERN, value):
        return f"{name} {value!r} is not a plain decimal number (digits, optionally a point and digits)"
    whole, _, fraction = value.partition(".")
    if len(whole.lstrip("0")) > AMOUNT_INTEGER_DIGITS:
        return f"{name} {value!r} is too large"
    if len(fraction.rstrip("0")) > digits:
        return f"{name} {value!r} has more decimals than {currency}'s {digits}"
    return None


def line_problem(fmt: str, row: list[str], day: dt.date) -> str | None:
    """What is wrong with a row of PGI_COLUMNS (text), or None: the checks _problem_sql makes in SQL."""
    kind, reference, payment_id, refund_id, amount, currency, fee, booked_at, status = row
    if kind.strip().lower() not in FORMAT_KINDS[fmt]:
        return f"record type {kind!r} is not one of {', '.join(FORMAT_KINDS[fmt])}"
    code = currency.strip().upper()
    digits = currency_digits().get(code)
    if digits is None:
        return f"currency {currency!r} is not an ISO 4217 currency"
    if problem := _amount_problem("amount", amount, digits, code):
        return problem
    if kind.strip().lower() in MONEY_KINDS and Decimal(amount) == 0:
        return f"amount {amount!r} is zero"
    if fee != "" and (problem := _amount_problem("fee", fee, digits, code)):
        return problem
    if not re.match(BOOKED_AT_PATTERN, booked_at):
        return f"booked_at {booked_at!r} is not an ISO 8601 time"
    try:
        moment = dt.datetime.fromisoformat(booked_at.replace("Z", "+00:00"))
    except ValueError:
        return f"booked_at {booked_at!r} is not a time"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if moment.astimezone(dt.UTC).date() != day:
        return f"booked_at {booked_at!r} is not on the report's day {day.isoformat()} (UTC)"
    for (name, limit), value in zip(FIELD_LIMITS.items(), (reference, payment_id, refund_id, status)):
        if len(value) > limit:
            return f"{name} is longer than {limit} characters"
    return None


def _problem_sql() -> tuple[str, str]:
    """(the currencies as a VALUES list c, the CASE saying what is wrong with staged row s, else
    NULL): line_problem's checks in their order (CASE evaluates its branches in order, so a value
    is cast only once the checks before it passed)."""
    currencies = ", ".join(f"('{code}', {digits})" for code, digits in sorted(currency_digits().items()))
    checks = []
    for name in ("amount", "fee"):
        value = f"s.{name}"
        present = "TRUE" if name == "amount" else "s.fee <> ''"
        checks += [
            f"WHEN {present} AND COALESCE({value}, '') !~ %(amount_pattern)s"
            f" THEN '{name} ' || quote_literal(COALESCE({value}, '')) || ' is not a plain decimal number'",
            f"WHEN {present} AND length(ltrim(split_part({value}, '.', 1), '0')) > {AMOUNT_INTEGER_DIGITS}"
            f" THEN '{name} ' || quote_literal({value}) || ' is too large'",
            f"WHEN {present} AND length(rtrim(split_part({value}, '.', 2), '0')) > c.digits"
            f" THEN '{name} ' || quote_literal({value}) || ' has more decimals than ' || c.code || '''s ' || c.digits",
        ]
        if name == "amount":
            checks.append(
                "WHEN lower(s.kind) = ANY(%(money_kinds)s) AND s.amount::numeric = 0"
                " THEN 'amount ' || quote_literal(s.amount) || ' is zero'"
            )
    limits = [
        f"WHEN length(COALESCE(s.{name}, '')) > {limit} THEN '{name} is longer than {limit} characters'"
        for name, limit in FIELD_LIMITS.items()
    ]
    problem = f"""CASE
        WHEN NOT (lower(COALESCE(s.kind, '')) = ANY(%(kinds)s))
          THEN 'record type ' || quote_literal(COALESCE(s.kind, '')) || ' is not one of ' || %(kinds_text)s
        WHEN c.code IS NULL THEN 'currency ' || quote_literal(COALESCE(s.currency, '')) || ' is not an ISO 4217 currency'
        {" ".join(checks)}
        WHEN COALESCE(s.booked_at, '') !~ %(booked_pattern)s
          THEN 'booked_at ' || quote_literal(COALESCE(s.booked_at, '')) || ' is not an ISO 8601 time'
        WHEN (s.booked_at::timestamptz AT TIME ZONE 'UTC')::date <> %(day)s
          THEN 'booked_at ' || quote_literal(s.booked_at) || ' is not on the report''s day ' || %(day_text)s || ' (UTC)'
        {" ".join(limits)}
      END"""
    return f"c(code, digits) AS (VALUES {currencies})", problem


def _check_sql() -> str:
    """The first staged line that is not valid, (line number, why), in one scan of the staging
    table: run only when _insert_sql left a line out, to name it."""
    currencies, problem = _problem_sql()
    return f"""
    WITH {currencies}
    SELECT line, problem FROM (
      SELECT COALESCE(s.source_line, s.n + 1) AS line, {problem} AS problem
      FROM {_STAGE} s LEFT JOIN c ON c.code = upper(s.currency)
      WHERE s.kind IS DISTINCT FROM %(blank)s
    ) checked WHERE problem IS NOT NULL ORDER BY line LIMIT 1
    """


def _insert_sql() -> str:
    """The staged lines that pass every check, cast into GatewayReportLine: checked and written in
    one scan of the staging table (a line that fails a check is left out; the caller compares the
    count written with the count staged)."""
    currencies, problem = _problem_sql()
    return f"""
    WITH {currencies}
    INSERT INTO {LINE_TABLE} (report_id, line_no, kind, gateway_reference, payment_id, refund_id, amount, currency,
      fee, booked_at, status)
    SELECT %(report)s, COALESCE(s.source_line, s.n + 1),
      CASE lower(s.kind) WHEN 'capture' THEN 'payment' ELSE lower(s.kind) END,
      COALESCE(s.gateway_reference, ''), COALESCE(s.payment_id, ''), COALESCE(s.refund_id, ''), s.amount::numeric,
      upper(s.currency), NULLIF(s.fee, '')::numeric, s.booked_at::timestamptz, COALESCE(s.status, '')
    FROM {_STAGE} s LEFT JOIN c ON c.code = upper(s.currency)
    WHERE s.kind IS DISTINCT FROM %(blank)s AND ({problem}) IS NULL
    """
