import re

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")
LIMIT_TEXT = re.compile(r"[0-9]{1,4}")


def _is_datetime(text: str) -> bool:
    try:
        return parse_datetime(text) is not None
    except ValueError:  # well-formed but impossible, such as month 13
        return False


class CreatedCursorPagination(CursorPagination):
    """Newest first, stable under concurrent inserts: the cursor encodes a position, not an offset."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    invalid_cursor_message = "The cursor is invalid or has been tampered with."

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:  # a bad cursor is a bad request, not a missing page
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from exc
        # DRF's base64 decoding skips characters outside the alphabet and does not check the
        # position, which then reaches the query as a created_at value: a 500 instead of a 400.
        if cursor is not None and (
            not BASE64_TEXT.fullmatch(encoded) or (cursor.position is not None and not _is_datetime(cursor.position))
        ):
            raise ValidationError({"cursor": [self.invalid_cursor_message]})
        return cursor

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        # str.isdigit() is true for "²", which int() refuses: match ASCII digits only.
        if raw is not None and (not LIMIT_TEXT.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({"limit": [f"Must be a whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)
