"""How the admin writes an instant and a CSV cell: one helper each, used by every admin page."""

import unicodedata
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
    """The cell as text a spreadsheet shows and never evaluates: '=1+2 stays text. Spreadsheets
    also read a full-width ＝ as =, and skip leading spaces, so the cell is judged as they read it.
    Write the file with every cell quoted (csv.QUOTE_ALL), so that a `;` inside a cell does not
    start a new cell where ';' is the list separator."""
    seen = unicodedata.normalize("NFKC", cell).lstrip(" \u00a0")
    return f"'{cell}" if seen.startswith(FORMULA_STARTS) else cell
