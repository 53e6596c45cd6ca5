"""Template filters of the finance UI: amounts with their currency's digits, counts with thousands
separators, instants in ISO 8601 UTC (as the API and the admin write them)."""

from decimal import Decimal

from django import template

from pgi.admin_format import instant as format_instant
from pgi.money import UnknownCurrency, quantize

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """1234.5 EUR -> 1,234.50 (the currency is shown in its own column or beside)."""
    if amount is None:
        return "–"
    try:
        amount = quantize(amount, currency)
    except UnknownCurrency:
        pass
    return f"{amount:,}"


@register.filter
def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


@register.filter
def instant(value) -> str:
    return format_instant(value)


@register.filter
def percent(value: Decimal | None) -> str:
    return "–" if value is None else f"{value} %"


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key)
