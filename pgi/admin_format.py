"""How the admin writes an instant and a CSV cell: one helper each, used by every admin page."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.utils import timezone

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def instant(value: datetime | None) -> str:
    """ISO 8601 in UTC to the second, as the API writes timestamps: 2026-12-01T22:14:54Z."""
    if value is None:
        return "-"
    return timezone.localtime(value, dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def spreadsheet_safe(cell: str) -> str:
    """The cell as text a spreadsheet shows and never evaluates: '=1+2 stays text."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell
