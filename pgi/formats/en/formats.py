"""Dates as PGI writes them everywhere (the API, events, exports): ISO 8601 in UTC.

Django renders a date or time it is given without a format (admin lists and read-only fields of
every app, the finance pages) with these instead of its localised "Dec. 1, 2026, 10:14 p.m.".
TIME_ZONE is UTC, so the "Z" is true; pgi.admin_format.instant() writes the same text.
"""

DATETIME_FORMAT = r"Y-m-d\TH:i:s\Z"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i:s"
