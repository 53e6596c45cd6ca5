"""The audit trail as CSV, streamed: one line per event, instants ISO 8601 UTC, before and after as
JSON, no cell a spreadsheet would run as a formula (pgi.admin_format.spreadsheet_safe)."""

import csv
import json
from collections.abc import Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils import timezone

from pgi.admin_format import instant, spreadsheet_safe
from pgi.admin_masking import accounts_masked

from .models import AuditEvent

COLUMNS = ["id", "created_at", "actor_id", "actor_username", "via", "source_ip", "action", "object_type",
           "object_id", "object_repr", "before", "after", "note"]  # fmt: skip


class _Echo:
    """csv.writer wants a file; each row is handed on as the text it writes."""

    def write(self, text: str) -> str:
        return text


def _cell(event: AuditEvent, name: str, mask_accounts: bool) -> str:
    value = getattr(event, name)
    if name == "created_at":
        return instant(value)
    if name in ("before", "after"):
        if value is None:
            return ""
        value = accounts_masked(value) if mask_accounts else value
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)
    return "" if value is None else str(value)


def audit_csv_lines(events: Iterable[AuditEvent], *, mask_accounts: bool = False) -> Iterator[str]:
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL)
    yield writer.writerow(COLUMNS)
    for event in events:
        yield writer.writerow([spreadsheet_safe(_cell(event, name, mask_accounts)) for name in COLUMNS])


def audit_csv_response(queryset, *, mask_accounts: bool) -> StreamingHttpResponse:
    """The events of `queryset`, oldest first, read in chunks: the trail only grows. With
    `mask_accounts`, account identifiers in before and after show their last four characters only."""
    events = queryset.order_by("created_at", "id").iterator(chunk_size=2000)
    lines = audit_csv_lines(events, mask_accounts=mask_accounts)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = instant(timezone.now()).replace(":", "").replace("-", "")
    response["Content-Disposition"] = f'attachment; filename="pgi-audit-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response
